"""The pooling kernels (numba_pool, and numpy_kernels' mask/relu/out options)
against the plain-loop reference: values, Caffe's mask, gradients, threads.

Shapes are drawn to reach every code path: the straight-line 3x3/2, 2x2/2 and
3x1 windows and the generic one, the flat whole-plane run (W == OW * stride)
and the per-row one, windows clipped at both borders, ceil-rounded last
windows, global pooling and batch 1.
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe.kernels import reference as ref
from tinycaffe.kernels import sizes, threads

from .helpers import FAST, assert_close, make_impl, pool_ok, threads_splitting, values

from .helpers import NO_NUMBA, numba_kernels

numba_pool = None
if numba_kernels is not None:
    from tinycaffe.kernels import numba_pool

IMPLS = [pytest.param("numpy", id="numpy"),
         pytest.param("numba", id="numba",
                      marks=pytest.mark.skipif(numba_pool is None, reason=NO_NUMBA))]


@pytest.fixture(params=IMPLS, scope="module")
def impl(request):
    return make_impl(request.param)


# kernel/stride pairs: the specialised ones most of the time, anything else too.
window = st.one_of(st.sampled_from([(3, 2), (2, 2), (3, 1)]),
                   st.tuples(st.integers(1, 5), st.integers(1, 4)))

cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 3), "h": st.integers(1, 12), "w": st.integers(1, 12),
    "win_h": window, "win_w": window, "ph": st.integers(0, 2), "pw": st.integers(0, 2),
    "kind": st.sampled_from(["normal", "ties", "distinct", "specials"]),
    "global_": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})


def _data(c):
    (kh, sh), (kw, sw) = c["win_h"], c["win_w"]
    ph, pw = c["ph"], c["pw"]
    if c["global_"]:
        kh, kw, sh, sw, ph, pw = c["h"], c["w"], 1, 1, 0, 0
    assume(pool_ok(c["h"], kh, sh, ph) and pool_ok(c["w"], kw, sw, pw))
    rng = np.random.default_rng(c["seed"])
    shape = (c["n"], c["c"], c["h"], c["w"])
    if c["kind"] == "specials":  # NaN never wins; -inf never beats -FLT_MAX; signed zeros tie
        pool = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, 1.0, -1.0, np.finfo(np.float32).max,
                         -np.finfo(np.float32).max], np.float32)
        x = rng.choice(pool, size=shape).astype(np.float32)
    else:
        x = values(rng, shape, c["kind"])
    oh, ow = sizes.pool_out_size(c["h"], kh, sh, ph), sizes.pool_out_size(c["w"], kw, sw, pw)
    dy = values(rng, (c["n"], c["c"], oh, ow))
    return x, dy, dict(kernel=(kh, kw), stride=(sh, sw), pad=(ph, pw))


def _same_bits(a, b):
    """Equal values and, for zeros, equal signs (Caffe's first maximum decides the sign)."""
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


@FAST
@given(c=cases)
def test_max_forward_and_mask_match_caffe(impl, c):
    x, _, geo = _data(c)
    want_y = ref.pool_forward(x, "max", **geo)
    want_mask = ref.pool_max_mask(x, **geo)
    y = impl.run("pool_forward", x, "max", **geo)
    mask = np.full(want_mask.shape, 7, np.int32)
    y2 = impl.run("pool_forward", x, "max", **geo, mask=mask)
    _same_bits(y, want_y)
    _same_bits(y2, want_y)
    np.testing.assert_array_equal(mask, want_mask)


@FAST
@given(c=cases)
def test_max_backward_with_and_without_mask(impl, c):
    x, dy, geo = _data(c)
    want = ref.pool_backward(x.astype(np.float64), None, dy.astype(np.float64), "max", **geo)
    mask = ref.pool_max_mask(x, **geo)
    assert_close(impl.run("pool_backward", x, None, dy, "max", **geo), want)
    assert_close(impl.run("pool_backward", x, None, dy, "max", **geo, mask=mask), want)


@FAST
@given(c=cases)
def test_ave_forward_and_backward(impl, c):
    x, dy, geo = _data(c)
    assume(c["kind"] != "specials")
    with np.errstate(all="ignore"):
        want_y = ref.pool_forward(x.astype(np.float64), "ave", **geo)
        want_dx = ref.pool_backward(x.astype(np.float64), None, dy.astype(np.float64), "ave", **geo)
        y = impl.run("pool_forward", x, "ave", **geo)
        dx = impl.run("pool_backward", x, None, dy, "ave", **geo)
    assert_close(y, want_y)
    assert_close(dx, want_dx)


@FAST
@given(c=cases, method=st.sampled_from(["max", "ave"]))
def test_relu_option_is_pooling_then_caffe_relu(impl, c, method):
    x, _, geo = _data(c)
    assume(method == "max" or c["kind"] != "specials")
    with np.errstate(all="ignore"):
        plain = impl.run("pool_forward", x, method, **geo)
        fused = impl.run("pool_forward", x, method, **geo, relu=True)
    want = np.where(plain < 0, np.float32(0), plain)  # Caffe's ReLU keeps -0.0 and NaN
    _same_bits(fused, want)


@pytest.mark.skipif(numba_pool is None, reason=NO_NUMBA)
@FAST
@given(c=cases)
def test_two_threads_give_the_same_bits_as_one(c):
    x, dy, geo = _data(c)
    results = []
    for n in (1, 2):
        with threads_splitting(n):
            assert threads.will_split(x.shape[0] * x.shape[1], 1.0) == (n == 2 and x.shape[0] * x.shape[1] > 1)
            mask = np.empty(ref.pool_max_mask(x, **geo).shape, np.int32)
            y = numba_pool.pool_forward(x, "max", **geo, mask=mask)
            with np.errstate(all="ignore"):
                a = numba_pool.pool_forward(x, "ave", **geo)
                da = numba_pool.pool_backward(x, None, dy, "ave", **geo)
            dm = numba_pool.pool_backward(x, None, dy, "max", **geo, mask=mask)
            dr = numba_pool.pool_backward(x, None, dy, "max", **geo)
            results.append((y, mask, a, da, dm, dr))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(results[1][0], ref.pool_forward(x, "max", **geo))
    np.testing.assert_array_equal(results[1][1], ref.pool_max_mask(x, **geo))


def test_cifar10_shapes(impl):
    """The exact layers of cifar10_full/quick (pool1 MAX 3/2 on 32x32, pool2/3 AVE 3/2)."""
    rng = np.random.default_rng(0)
    for shape, method in [((2, 32, 32, 32), "max"), ((2, 32, 16, 16), "ave"), ((2, 64, 8, 8), "ave")]:
        x = values(rng, shape)
        y = impl.run("pool_forward", x, method, 3, 2, 0)
        assert_close(y, ref.pool_forward(x.astype(np.float64), method, 3, 2, 0))
        dy = values(rng, y.shape)
        dx = impl.run("pool_backward", x, None, dy, method, 3, 2, 0)
        assert_close(dx, ref.pool_backward(x.astype(np.float64), None, dy.astype(np.float64), method, 3, 2, 0))


def test_signed_zero_follows_caffe_scan_order(impl):
    # Window 2x2: row 0 = (-1, +0.0), row 1 = (-0.0, -1).  Caffe's first maximum in
    # row-major order is +0.0 at (0, 1); a column-first search would find -0.0.
    x = np.array([[[[-1.0, 0.0], [-0.0, -1.0]]]], np.float32)
    mask = np.empty((1, 1, 1, 1), np.int32)
    y = impl.run("pool_forward", x, "max", 2, 2, 0, mask=mask)
    assert y[0, 0, 0, 0] == 0 and not np.signbit(y[0, 0, 0, 0])
    assert mask[0, 0, 0, 0] == 1


def test_out_buffers_are_used_and_checked(impl):
    rng = np.random.default_rng(1)
    x = values(rng, (1, 2, 6, 6))
    out = np.empty((1, 2, 3, 3), np.float32)
    assert impl.run("pool_forward", x, "max", 2, 2, 0, out=out) is not None
    np.testing.assert_array_equal(out, ref.pool_forward(x, "max", 2, 2, 0))
    dx = np.full(x.shape, 5, np.float32)
    impl.run("pool_backward", x, None, np.ones((1, 2, 3, 3), np.float32), "ave", 2, 2, 0, out=dx)
    np.testing.assert_allclose(dx, 0.25)
    with pytest.raises(ValueError, match="out must be"):
        impl.run("pool_forward", x, "max", 2, 2, 0, out=np.empty((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="mask must be"):
        impl.run("pool_forward", x, "max", 2, 2, 0, mask=np.empty((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="only for MAX"):
        impl.run("pool_forward", x, "ave", 2, 2, 0, mask=np.empty((1, 2, 3, 3), np.int32))


@pytest.mark.skipif(numba_pool is None, reason=NO_NUMBA)
def test_jit_options_match_the_package_wide_ones():
    from tinycaffe.kernels import numba_kernels, numba_lrn

    assert numba_pool._JIT == numba_kernels._JIT == numba_lrn._JIT


def test_a_mask_that_is_not_this_inputs_is_refused(impl):
    """Indices outside the plane would write outside dx: refused, nothing written out of bounds."""
    x = np.zeros((2, 3, 4, 4), np.float32)
    dy = np.ones((2, 3, 2, 2), np.float32)
    for value in (16, 1 << 30, -2):
        mask = ref.pool_max_mask(x + np.arange(16, dtype=np.float32).reshape(4, 4), 2, 2, 0)
        mask[1, 2, 1, 0] = value
        with pytest.raises(ValueError, match="mask holds 1 index"):
            impl.run("pool_backward", x, None, dy, "max", 2, 2, 0, mask=mask)
