"""Within-channel LRN's flat sweeps (numba_lrn._box_sum): the row sums cross row ends and
are redone at each row's first and last p entries, so planes narrower than the window,
one-row and one-column planes and every local_size are checked against the plain-loop
reference, forward and backward, on 1 and 2 threads (the work threshold off)."""
from __future__ import annotations

import numpy as np
import pytest

from tinycaffe import kernels
from tinycaffe.kernels import reference as ref
from tinycaffe.kernels import threads

from .helpers import NO_NUMBA, assert_close

if kernels.numba_kernels is None:  # Numba absent or older than kernels.MIN_NUMBA
    pytest.skip(NO_NUMBA, allow_module_level=True)
from tinycaffe.kernels import numba_lrn  # noqa: E402

SHAPES = [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (4, 4), (8, 8), (16, 16), (5, 9)]


@pytest.mark.parametrize("size", [1, 3, 5, 7])
@pytest.mark.parametrize("hw", SHAPES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_narrow_planes_match_the_reference(size, hw, n_threads):
    rng = np.random.default_rng(size * 100 + hw[0] * 10 + hw[1])
    x = rng.standard_normal((2, 3, *hw)).astype(np.float32) * 2
    dy = rng.standard_normal(x.shape).astype(np.float32)
    args = (size, 0.7, 0.75, 1.0, "within")
    old_n, old_below = threads.get_num_threads(), threads.SERIAL_BELOW_US
    kernels.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0
    try:
        y = numba_lrn.lrn_forward(x, *args)
        dx = numba_lrn.lrn_backward(x, y, dy, *args)
    finally:
        threads.SERIAL_BELOW_US = old_below
        kernels.set_num_threads(old_n)
    y_ref = ref.lrn_forward(x.astype(np.float64), *args)
    assert_close(y, y_ref)
    assert_close(dx, ref.lrn_backward(x.astype(np.float64), y_ref, dy.astype(np.float64), *args), rtol=1e-4)
