"""The ReLU kernels (numba_eltwise) against Caffe's formulas written in NumPy:
values including NaN/inf/zeros, leaky slopes, in place or not, and the
same bits on 1 and 2 threads with the work threshold off (so even small
arrays are cut into several slices)."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycaffe import kernels

from .helpers import FAST, NO_NUMBA, threads_splitting

if kernels.numba_kernels is None:  # Numba absent or older than kernels.MIN_NUMBA
    pytest.skip(NO_NUMBA, allow_module_level=True)
from tinycaffe.kernels import numba_eltwise  # noqa: E402

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -1.5, 1e-45, -1e-45,
                     np.finfo(np.float32).max, -np.finfo(np.float32).max], np.float32)


def ref_forward(x, slope):
    """Caffe's ReLUForward: max(x, 0) + slope * min(x, 0), in float32; with slope 0
    just max(x, 0), as the layer always computed it (Caffe's 0 * min(-inf, 0) would
    turn -inf into NaN there)."""
    x = x.astype(np.float32)
    if slope == 0.0:
        return np.maximum(x, np.float32(0))
    with np.errstate(all="ignore"):  # inf * 0 is meant
        return (np.maximum(x, np.float32(0)) + np.float32(slope) * np.minimum(x, np.float32(0))).astype(np.float32)


def ref_backward(x, dy, slope):
    """Caffe's ReLUBackward: dy * ((x > 0) + slope * (x <= 0)), in float32."""
    scale = (x > 0).astype(np.float32) + np.float32(slope) * (x <= 0).astype(np.float32)
    with np.errstate(all="ignore"):  # inf * 0 is meant
        return (dy * scale).astype(np.float32)


def same(actual, expected):
    """Equal values, NaN where NaN (the formulas are the same float32 operations)."""
    np.testing.assert_array_equal(actual, expected)


cases = st.fixed_dictionaries({
    "size": st.integers(0, 3000),
    "slope": st.sampled_from([0.0, 0.0, 0.1, -0.5, 1.0, 2.5]),
    "specials": st.booleans(),
    "seed": st.integers(0, 2**32 - 1),
})


def _data(c):
    rng = np.random.default_rng(c["seed"])
    n = c["size"]
    if c["specials"]:
        x = rng.choice(SPECIALS, n)
        dy = rng.choice(SPECIALS, n)
    else:
        x = rng.standard_normal(n).astype(np.float32)
        x[rng.random(n) < 0.1] = 0.0
        dy = rng.standard_normal(n).astype(np.float32)
    shape = (n,) if n % 6 else (n // 6, 2, 3)  # flat and 3-d blobs alike
    return x.reshape(shape), dy.reshape(shape)


@FAST
@given(c=cases)
def test_forward_matches_caffe(c):
    x, _ = _data(c)
    out = np.full_like(x, 7.0)
    assert numba_eltwise.relu_forward(x, c["slope"], out) is out
    same(out, ref_forward(x, c["slope"]))
    inplace = x.copy()
    numba_eltwise.relu_forward(inplace, c["slope"], inplace)
    same(inplace, ref_forward(x, c["slope"]))


@FAST
@given(c=cases)
def test_backward_matches_caffe(c):
    x, dy = _data(c)
    expected = ref_backward(x, dy, c["slope"])
    out = np.full_like(x, 7.0)
    assert numba_eltwise.relu_backward(x, dy, c["slope"], out) is out
    same(out, expected)
    inplace = dy.copy()
    numba_eltwise.relu_backward(x, inplace, c["slope"], inplace)
    same(inplace, expected)


@FAST
@given(c=cases)
def test_two_threads_give_the_same_bits_as_one(c):
    x, dy = _data(c)
    results = []
    for n in (1, 2):
        with threads_splitting(n):
            y = numba_eltwise.relu_forward(x, c["slope"], np.empty_like(x))
            d = dy.copy()
            numba_eltwise.relu_backward(x, d, c["slope"], d)
            results.append((y, d))
    for one, two in zip(*results):
        same(one, two)
    same(results[1][1], ref_backward(x, dy, c["slope"]))


def test_the_output_of_an_in_place_relu_gives_the_same_gradient():
    """An in-place ReLU keeps only its output; its sign decides as the input's would."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(10_000).astype(np.float32)
    dy = rng.standard_normal(10_000).astype(np.float32)
    y = ref_forward(x, 0.0)
    same(numba_eltwise.relu_backward(y, dy, 0.0, np.empty_like(dy)), ref_backward(x, dy, 0.0))


@pytest.mark.parametrize("bad", ["dtype", "size", "strided", "overlap"])
def test_bad_buffers_are_refused(bad):
    x = np.ones(8, np.float32)
    dy = np.ones(8, np.float32)
    out = np.ones(8, np.float32)
    if bad == "dtype":
        out = out.astype(np.float64)
    elif bad == "size":
        out = np.ones(9, np.float32)
    elif bad == "strided":
        out = np.ones(16, np.float32)[::2]
    elif bad == "overlap":
        buf = np.ones(9, np.float32)
        dy, out = buf[:8], buf[1:]
    with pytest.raises(ValueError, match="dy|out"):
        numba_eltwise.relu_backward(x, dy, 0.0, out)
