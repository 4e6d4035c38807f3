"""A training run's memory stays flat: nothing grows with the iteration count."""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from tinycaffe.solver import Solver

from .helpers import solver_param

# EuclideanLoss rather than SoftmaxWithLoss: numpy's meshgrid (used there) keeps a
# small internal cache that wobbles by kilobytes and would blur the measurement.
NET = """
name: "flat"
layer { name: "in" type: "Input" top: "data" top: "target"
        input_param { shape { dim: [6, 4] } shape { dim: [6, 3] } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "act" type: "TanH" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "target" top: "loss" }
"""


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_no_growth_per_iteration(kind):
    # Display, testing, clipping and iter_size all run inside the measured window.
    p = solver_param(NET, type=kind, momentum=0.9, weight_decay=0.01, display=5, test_iter=[2],
                     test_interval=7, iter_size=2, clip_gradients=0.1)
    solver = Solver(p, log=lambda line: None)
    rng = np.random.default_rng(0)
    for net in (solver.net, *solver.test_nets):
        net.blobs["data"].data[...] = rng.standard_normal((6, 4))
        net.blobs["target"].data[...] = rng.standard_normal((6, 3))
    tracemalloc.start()
    try:
        solver.step(100)  # warm up numpy's and Python's internal caches
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        solver.step(400)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        solver.close()
    # 4 KB over 400 iterations: even one float kept per iteration would show.
    assert grown < 4096, f"{grown} bytes more after 400 iterations"
