"""A training run's memory stays flat: nothing grows with the iteration count."""
from __future__ import annotations

import gc
import tracemalloc

import pytest

from .helpers import tiny_solver


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_no_growth_per_iteration(kind):
    # Display, testing and snapshot-free training all run inside the measured window.
    solver = tiny_solver(type=kind, momentum=0.9, weight_decay=0.01, display=5,
                         test_iter=[2], test_interval=7, iter_size=2, clip_gradients=0.1)
    tracemalloc.start()
    try:
        solver.step(150)  # warm up numpy's and Python's internal caches
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        solver.step(400)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        solver.close()
    assert grown < 16 * 1024, f"{grown} bytes more after 400 iterations"
