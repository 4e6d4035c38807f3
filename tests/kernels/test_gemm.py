"""gemm.matmul: the pool-split matrix product against NumPy's."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.kernels import gemm, threads


@pytest.fixture(scope="module")
def restore_threads():
    before, threshold = threads.get_num_threads(), threads.SERIAL_BELOW_US
    yield
    threads.set_num_threads(before)
    threads.SERIAL_BELOW_US = threshold


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9), accumulate=st.booleans(),
       transposed=st.booleans(), n_threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_matches_numpy(restore_threads, m, k, n, accumulate, transposed, n_threads, seed):
    threads.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0  # split even these tiny products
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32).T if transposed else \
        rng.standard_normal((k, n)).astype(np.float32)
    start = rng.standard_normal((m, n)).astype(np.float32)
    out = start.copy()
    got = gemm.matmul(a, b, out=out, accumulate=accumulate)
    assert got is out
    expected = a.astype(np.float64) @ b + (start if accumulate else 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_refuses_mismatched_shapes():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="chain"):
        gemm.matmul(a, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="out"):
        gemm.matmul(a, np.zeros((3, 2), np.float32), out=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="accumulate"):
        gemm.matmul(a, np.zeros((3, 2), np.float32), accumulate=True)
