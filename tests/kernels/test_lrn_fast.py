"""The LRN kernels (numba_lrn) against the plain-loop reference, both regions,
forward and backward, one and two threads, out= buffers."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycaffe.kernels import reference as ref

from .helpers import FAST, assert_close, threads_splitting, values

from .helpers import numba_kernels, requires_numba

if numba_kernels is not None:
    from tinycaffe.kernels import numba_lrn

pytestmark = requires_numba

cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 9), "h": st.integers(1, 10), "w": st.integers(1, 10),
    "size": st.sampled_from([1, 3, 5]), "alpha": st.floats(1e-4, 2.0),
    # 0.75 / 0.5 / 1 take the sqrt/division paths, the others pow.
    "beta": st.sampled_from([0.75, 0.5, 1.0, 0.6, 1.3]), "k": st.floats(0.5, 3.0),
    "region": st.sampled_from(["across", "within"]), "seed": st.integers(0, 2**32 - 1),
})


def _data(c):
    rng = np.random.default_rng(c["seed"])
    x = values(rng, (c["n"], c["c"], c["h"], c["w"]))
    dy = values(rng, x.shape)
    return x, dy, (c["size"], c["alpha"], c["beta"], c["k"], c["region"])


@FAST
@given(c=cases)
def test_forward_matches_reference(c):
    x, _, args = _data(c)
    out = np.empty_like(x)
    y = numba_lrn.lrn_forward(x, *args, out=out)
    assert y is out
    assert_close(y, ref.lrn_forward(x.astype(np.float64), *args))


@FAST
@given(c=cases)
def test_backward_matches_reference(c):
    x, dy, args = _data(c)
    y = ref.lrn_forward(x.astype(np.float64), *args)
    out = np.full_like(x, np.nan)
    dx = numba_lrn.lrn_backward(x, y.astype(np.float32), dy, *args, out=out)
    assert dx is out
    assert_close(dx, ref.lrn_backward(x.astype(np.float64), y, dy.astype(np.float64), *args), rtol=1e-4)


@FAST
@given(c=cases)
def test_two_threads_give_the_same_bits_as_one(c):
    x, dy, args = _data(c)
    results = []
    for n in (1, 2):
        with threads_splitting(n):
            y = numba_lrn.lrn_forward(x, *args)
            results.append((y, numba_lrn.lrn_backward(x, y, dy, *args)))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    assert_close(results[1][0], ref.lrn_forward(x.astype(np.float64), *args))


def test_cifar10_full_norm_layers():
    """norm1 / norm2 of cifar10_full: WITHIN_CHANNEL, local_size 3, alpha 5e-5, beta 0.75."""
    rng = np.random.default_rng(0)
    for shape in [(2, 32, 16, 16), (2, 32, 8, 8)]:
        x = values(rng, shape) * 3
        dy = values(rng, shape)
        args = (3, 5e-5, 0.75, 1.0, "within")
        y = numba_lrn.lrn_forward(x, *args)
        want_y = ref.lrn_forward(x.astype(np.float64), *args)
        assert_close(y, want_y)
        assert_close(numba_lrn.lrn_backward(x, y, dy, *args),
                     ref.lrn_backward(x.astype(np.float64), want_y, dy.astype(np.float64), *args))


def test_bad_out_buffer_is_refused():
    x = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="out must be"):
        numba_lrn.lrn_forward(x, 3, 1.0, 0.75, 1.0, "within", out=np.empty((1, 2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        numba_lrn.lrn_backward(x, x, x, 3, 1.0, 0.75, 1.0, "across", out=np.empty((1, 2, 3, 3), np.float64))


@pytest.mark.parametrize("size", [0, 2, 4])
def test_even_or_zero_local_size_is_refused(size):
    x = np.zeros((1, 4, 3, 3), np.float32)
    for region in ("across", "within"):
        with pytest.raises(ValueError, match="odd"):
            numba_lrn.lrn_forward(x, size, 1.0, 0.75, 1.0, region)
        with pytest.raises(ValueError, match="odd"):
            numba_lrn.lrn_backward(x, x, x, size, 1.0, 0.75, 1.0, region)
