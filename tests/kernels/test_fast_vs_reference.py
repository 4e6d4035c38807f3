"""Every fast kernel (NumPy/xp, Numba, CuPy) against reference.py on random cases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe.kernels import reference as ref
from tinycaffe.kernels import sizes

from .helpers import FAST, IMPL_PARAMS, assert_close, make_impl, pool_ok, values


@pytest.fixture(params=IMPL_PARAMS, scope="module")
def impl(request):
    return make_impl(request.param)


conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "group": st.integers(1, 3), "cg": st.integers(1, 3),
    "mg": st.integers(1, 3), "h": st.integers(1, 9), "w": st.integers(1, 9),
    "kh": st.integers(1, 4), "kw": st.integers(1, 4), "sh": st.integers(1, 3),
    "sw": st.integers(1, 3), "ph": st.integers(0, 2), "pw": st.integers(0, 2),
    "dh": st.integers(1, 2), "dw": st.integers(1, 2), "bias": st.booleans(),
    "seed": st.integers(0, 2**32 - 1),
})


def _conv_setup(c):
    oh = sizes.conv_out_size(c["h"], c["kh"], c["sh"], c["ph"], c["dh"])
    ow = sizes.conv_out_size(c["w"], c["kw"], c["sw"], c["pw"], c["dw"])
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(c["seed"])
    x = values(rng, (c["n"], c["group"] * c["cg"], c["h"], c["w"]))
    w = values(rng, (c["group"] * c["mg"], c["cg"], c["kh"], c["kw"]))
    b = values(rng, (c["group"] * c["mg"],)) if c["bias"] else None
    dy = values(rng, (c["n"], c["group"] * c["mg"], oh, ow))
    geo = dict(stride=(c["sh"], c["sw"]), pad=(c["ph"], c["pw"]),
               dilation=(c["dh"], c["dw"]), group=c["group"])
    return x, w, b, dy, geo


def _f64(a):
    return None if a is None else a.astype(np.float64)


@FAST
@given(c=conv_cases)
def test_conv_forward(impl, c):
    x, w, b, _, geo = _conv_setup(c)
    assert_close(impl.run("conv_forward", x, w, b, **geo),
                 ref.conv_forward(_f64(x), _f64(w), _f64(b), **geo))


@FAST
@given(c=conv_cases, need_dx=st.booleans())
def test_conv_backward(impl, c, need_dx):
    x, w, _, dy, geo = _conv_setup(c)
    dx, dw, db = impl.run("conv_backward", x, w, dy, **geo, need_dx=need_dx)
    rdx, rdw, rdb = ref.conv_backward(_f64(x), _f64(w), _f64(dy), **geo)
    assert dw.shape == w.shape and db.shape == (w.shape[0],)
    assert_close(dw, rdw, rtol=1e-4)
    assert_close(db, rdb)
    if need_dx:
        assert_close(dx, rdx)
    else:
        assert dx is None


pool_cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 3), "h": st.integers(1, 10),
    "w": st.integers(1, 10), "kh": st.integers(1, 4), "kw": st.integers(1, 4),
    "sh": st.integers(1, 4), "sw": st.integers(1, 4), "ph": st.integers(0, 3),
    "pw": st.integers(0, 3), "method": st.sampled_from(["max", "ave"]),
    "kind": st.sampled_from(["normal", "ties", "distinct"]), "seed": st.integers(0, 2**32 - 1),
})


def _pool_setup(c):
    assume(pool_ok(c["h"], c["kh"], c["sh"], c["ph"]) and pool_ok(c["w"], c["kw"], c["sw"], c["pw"]))
    rng = np.random.default_rng(c["seed"])
    x = values(rng, (c["n"], c["c"], c["h"], c["w"]), c["kind"])
    oh = sizes.pool_out_size(c["h"], c["kh"], c["sh"], c["ph"])
    ow = sizes.pool_out_size(c["w"], c["kw"], c["sw"], c["pw"])
    dy = values(rng, (c["n"], c["c"], oh, ow))
    geo = dict(kernel=(c["kh"], c["kw"]), stride=(c["sh"], c["sw"]), pad=(c["ph"], c["pw"]))
    return x, dy, geo


@FAST
@given(c=pool_cases)
def test_pool_forward(impl, c):
    x, _, geo = _pool_setup(c)
    y = impl.run("pool_forward", x, c["method"], **geo)
    with np.errstate(all="ignore"):
        expected = ref.pool_forward(x, c["method"], **geo)  # float32, like Caffe
    if c["method"] == "max":
        np.testing.assert_array_equal(y, expected)  # max is exact, NaN-free here
    else:
        assert_close(y, expected, rtol=1e-6, atol=1e-6)


@FAST
@given(c=pool_cases)
def test_pool_backward(impl, c):
    x, dy, geo = _pool_setup(c)
    y = ref.pool_forward(x, c["method"], **geo) if c["method"] == "max" else None
    dx = impl.run("pool_backward", x, y, dy, c["method"], **geo)
    with np.errstate(all="ignore"):
        expected = ref.pool_backward(_f64(x), None, _f64(dy), c["method"], **geo)
    assert_close(dx, expected)


lrn_cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 7), "h": st.integers(1, 7), "w": st.integers(1, 7),
    "size": st.sampled_from([1, 3, 5, 7]), "alpha": st.floats(1e-4, 2.0),
    "beta": st.sampled_from([0.75, 0.5, 1.0, 0.6, 1.3]), "k": st.floats(0.5, 3.0),
    "region": st.sampled_from(["across", "within"]), "seed": st.integers(0, 2**32 - 1),
})


def _lrn_setup(c):
    rng = np.random.default_rng(c["seed"])
    x = values(rng, (c["n"], c["c"], c["h"], c["w"]))
    dy = values(rng, x.shape)
    args = (c["size"], c["alpha"], c["beta"], c["k"], c["region"])
    return x, dy, args


@FAST
@given(c=lrn_cases)
def test_lrn_forward(impl, c):
    x, _, args = _lrn_setup(c)
    assert_close(impl.run("lrn_forward", x, *args), ref.lrn_forward(_f64(x), *args))


@FAST
@given(c=lrn_cases)
def test_lrn_backward(impl, c):
    x, dy, args = _lrn_setup(c)
    y = ref.lrn_forward(_f64(x), *args)
    dx = impl.run("lrn_backward", x, y.astype(np.float32), dy, *args)
    assert_close(dx, ref.lrn_backward(_f64(x), y, _f64(dy), *args), rtol=1e-4)
