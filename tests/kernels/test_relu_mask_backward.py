"""``relu_mask`` of pool_backward and lrn_backward (an in-place ReLU's backward folded into
the next layer's kernel): the same numbers as the plain backward followed by Caffe's ReLU
backward ``dx * (x > 0)``, bit for bit, on the Numba kernels and the NumPy fallback, for
MAX (with and without the forward's mask) and AVE pooling and both LRN regions, on 1 and
2 threads (the work threshold off)."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycaffe import kernels

from .helpers import FAST, threads_splitting


@contextlib.contextmanager
def setup(impl, n_threads, monkeypatch):
    if impl == "numpy":
        monkeypatch.setenv("TINYCAFFE_KERNELS", "numpy")
    else:
        monkeypatch.delenv("TINYCAFFE_KERNELS", raising=False)
    with threads_splitting(n_threads):
        yield


def relu_output(rng, shape):
    """What an in-place ReLU leaves in its blob: zeros where the input was negative."""
    x = np.maximum(rng.standard_normal(shape).astype(np.float32), 0)
    x.reshape(-1)[::7] = -0.0  # a signed zero is not > 0 either
    return x


cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 4), "h": st.integers(3, 12), "w": st.integers(3, 12),
    "seed": st.integers(0, 2**32 - 1),
})


@pytest.mark.parametrize("impl", ["numba", "numpy"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("kind", ["max_mask", "max_search", "ave"])
@FAST
@given(c=cases)
def test_pool_backward_with_relu_mask(impl, n_threads, kind, c):
    rng = np.random.default_rng(c["seed"])
    x = relu_output(rng, (c["n"], c["c"], c["h"], c["w"]))
    method = "ave" if kind == "ave" else "max"
    with pytest.MonkeyPatch.context() as mp, setup(impl, n_threads, mp):
        mask = None
        if kind == "max_mask":
            mask = np.empty((c["n"], c["c"], *kernels.pool_forward(x, "max", 3, 2, 1).shape[2:]), np.int32)
        y = kernels.pool_forward(x, method, 3, 2, 1, mask=mask)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        plain = kernels.pool_backward(x, y, dy, method, 3, 2, 1, mask=mask)
        out = np.full_like(x, np.nan)
        fused = kernels.pool_backward(x, y, dy, method, 3, 2, 1, out=out, mask=mask, relu_mask=True)
    assert fused is out
    np.testing.assert_array_equal(fused, plain * (x > 0))
    assert (fused[x <= 0] == 0).all() and np.array_equal(fused[x > 0], plain[x > 0])


@pytest.mark.parametrize("impl", ["numba", "numpy"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("region", ["within", "across"])
@FAST
@given(c=cases)
def test_lrn_backward_with_relu_mask(impl, n_threads, region, c):
    rng = np.random.default_rng(c["seed"])
    x = relu_output(rng, (c["n"], c["c"], c["h"], c["w"])) * 3
    args = (3, 0.5, 0.75, 1.0, region)
    with pytest.MonkeyPatch.context() as mp, setup(impl, n_threads, mp):
        y = kernels.lrn_forward(x, *args)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        plain = kernels.lrn_backward(x, y, dy, *args)
        fused = kernels.lrn_backward(x, y, dy, *args, relu_mask=True)
    np.testing.assert_array_equal(fused, plain * (x > 0))
