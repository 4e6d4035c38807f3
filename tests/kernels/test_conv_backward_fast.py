"""The convolution backward's own fast paths: col2im through a bordered plane, the bias
gradient folded into the weight-gradient GEMM, single-image tiles read in place.

col2im_planes is checked against a plain loop (the adjoint of im2col, written from
its definition) and must equal it bit for bit, since both add the taps in the same
order; conv_backward and conv_transpose are checked against the NumPy reference in
float64 at float32 tolerances, on shapes and tilings that reach every path.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe import kernels
from tinycaffe.kernels import reference as ref
from tinycaffe.kernels import sizes, threads

from .helpers import FAST, NO_NUMBA, assert_close, conv_settings_restored, values

if kernels.numba_kernels is None:
    pytest.skip(NO_NUMBA, allow_module_level=True)
from numba import njit

from tinycaffe.kernels import numba_cblas as cblas
from tinycaffe.kernels import numba_conv
from tinycaffe.kernels.numba_col2im import col2im_planes


def col2im_loops(col, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, dx, n0, n1):
    """The definition: every column-matrix entry added onto the input pixel it was read
    from (entries that were read from the padding are dropped), taps in order."""
    c_n, h_n, w_n = dx.shape[1:]
    for n in range(n0, n1):
        dx[n] = 0
        for c in range(c_n):
            for i in range(kh):
                for j in range(kw):
                    row = col[(c * kh + i) * kw + j]
                    for oh in range(oh_n):
                        hh = oh * sh - ph + i * dh
                        if not 0 <= hh < h_n:
                            continue
                        for ow in range(ow_n):
                            ww = ow * sw - pw + j * dw
                            if 0 <= ww < w_n:
                                dx[n, c, hh, ww] += row[(n - n0) * oh_n * ow_n + oh * ow_n + ow]


col2im_case = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 3), "h": st.integers(1, 9), "w": st.integers(1, 9),
    "k": st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5)]), "s": st.sampled_from([(1, 1), (2, 2), (1, 2), (3, 1)]),
    "p": st.sampled_from([(0, 0), (1, 1), (2, 1), (2, 2)]), "d": st.sampled_from([(1, 1), (2, 1), (2, 2)]),
    "seed": st.integers(0, 2**32 - 1),
})


@FAST
@given(case=col2im_case, data=st.data())
def test_col2im_planes_equals_the_definition_bit_for_bit(case, data):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = case["k"], case["s"], case["p"], case["d"]
    n, c, h, w = case["n"], case["c"], case["h"], case["w"]
    oh = sizes.conv_out_size(h, kh, sh, ph, dh)
    ow = sizes.conv_out_size(w, kw, sw, pw, dw)
    assume(oh >= 1 and ow >= 1)
    n0 = data.draw(st.integers(0, n - 1))
    n1 = data.draw(st.integers(n0 + 1, n))
    rng = np.random.default_rng(case["seed"])
    extra = data.draw(st.integers(0, 3))  # col may be wider than the images need
    col = values(rng, (c * kh * kw, (n1 - n0) * oh * ow + extra))
    got = np.full((n, c, h, w), 7.0, np.float32)  # images outside [n0, n1) must stay 7
    want = got.copy()
    plane = np.full((h + 2 * ph) * (w + 2 * pw) + 5, np.nan, np.float32)  # stale scratch
    col2im_planes(col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, got, n0, n1, plane)
    col2im_loops(col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, want, n0, n1)
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def restore():
    with conv_settings_restored():
        yield


backward_case = st.fixed_dictionaries({
    "n": st.integers(1, 5), "group": st.sampled_from([1, 1, 2]), "cg": st.integers(1, 3),
    "mg": st.integers(1, 4), "h": st.integers(2, 8), "w": st.integers(2, 8),
    "k": st.sampled_from([(1, 1), (3, 3), (5, 5), (2, 3)]), "s": st.sampled_from([(1, 1), (2, 2)]),
    "p": st.sampled_from([(0, 0), (1, 1), (2, 2)]), "seed": st.integers(0, 2**32 - 1),
    # one image per tile (dy read in place) or several (gathered); 1 or 2 threads
    "tile_cols": st.sampled_from([1, 40, 10_000]), "threads": st.sampled_from([1, 2]),
    "dw_transposed": st.booleans(),
    # the slice as one Numba call that calls BLAS itself, or the NumPy-driven loop
    "numpy_loop": st.booleans(),
})


@FAST
@given(case=backward_case)
def test_backward_with_folded_bias_matches_reference(restore, case):
    kh, kw = case["k"]
    oh = sizes.conv_out_size(case["h"], kh, case["s"][0], case["p"][0], 1)
    ow = sizes.conv_out_size(case["w"], kw, case["s"][1], case["p"][1], 1)
    assume(oh >= 1 and ow >= 1)
    threads.set_num_threads(case["threads"])
    threads.SERIAL_BELOW_US = 0.0
    numba_conv.MIN_TILE_COLS = case["tile_cols"]
    numba_conv.COL_BYTES = numba_conv.BIG_COL_BYTES = 4 * case["tile_cols"] * 200
    numba_conv.DW_TRANSPOSED_BELOW = 1000 if case["dw_transposed"] else 0
    cblas.DISABLED = case["numpy_loop"]
    numba_conv._plans.clear()
    rng = np.random.default_rng(case["seed"])
    g, m = case["group"], case["group"] * case["mg"]
    x = values(rng, (case["n"], g * case["cg"], case["h"], case["w"]))
    w = values(rng, (m, case["cg"], kh, kw))
    dy = values(rng, (case["n"], m, oh, ow))
    geo = dict(stride=case["s"], pad=case["p"], dilation=(1, 1), group=g)
    rdx, rdw, rdb = ref.conv_backward(x.astype(np.float64), w.astype(np.float64),
                                      dy.astype(np.float64), **geo)
    dx, dw, db = numba_conv.conv_backward(x, w, dy, **geo)  # new arrays, no out=
    assert dw.shape == w.shape and dw.flags.c_contiguous
    assert db.shape == (m,) and db.flags.c_contiguous
    assert_close(dw, rdw, rtol=1e-4, atol=1e-4)
    assert_close(db, rdb, rtol=1e-4, atol=1e-4)
    assert_close(dx, rdx, rtol=1e-4, atol=1e-4)


def test_backward_leaves_dy_and_x_unchanged():
    """Single-image tiles multiply dy and (for 1x1) x in place: neither may be written."""
    rng = np.random.default_rng(5)
    for k in (1, 3):
        x = values(rng, (3, 4, 6, 6))
        w = values(rng, (5, 4, k, k))
        dy = values(rng, (3, 5, 6 - k + 1, 6 - k + 1))
        x0, dy0 = x.copy(), dy.copy()
        numba_conv.conv_backward(x, w, dy)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(dy, dy0)


@FAST
@given(case=col2im_case, bias=st.booleans(), n_threads=st.sampled_from([1, 2]))
def test_conv_transpose_matches_reference_dx(restore, case, bias, n_threads):
    """Deconvolution's forward is the convolution's dx (plus a bias): through col2im_planes."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = case["k"], case["s"], case["p"], case["d"]
    n, c, h, w = case["n"], case["c"], case["h"], case["w"]
    oh = sizes.conv_out_size(h, kh, sh, ph, dh)
    ow = sizes.conv_out_size(w, kw, sw, pw, dw)
    assume(oh >= 1 and ow >= 1)
    threads.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0
    numba_conv._plans.clear()
    rng = np.random.default_rng(case["seed"])
    m = 3
    x = values(rng, (n, m, oh, ow))
    wt = values(rng, (m, c, kh, kw))
    b = values(rng, (c,)) if bias else None
    geo = dict(stride=(sh, sw), pad=(ph, pw), dilation=(dh, dw), group=1)
    rdx, _, _ = ref.conv_backward(np.zeros((n, c, h, w)), wt.astype(np.float64),
                                  x.astype(np.float64), **geo)
    if bias:
        rdx = rdx + b[None, :, None, None]
    y = numba_conv.conv_transpose(x, wt, b, **geo, out_hw=(h, w))
    assert_close(y, rdx, rtol=1e-4, atol=1e-4)


@njit(cache=False)
def _sgemm_in_numba(addr, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    cblas.sgemm(addr, np.int32(ta), np.int32(tb), m, n, k, np.float32(alpha), a.ctypes.data, lda,
                b.ctypes.data, ldb, np.float32(beta), c.ctypes.data, ldc)


@pytest.mark.skipif(cblas.sgemm_address() == 0, reason="NumPy's bundled OpenBLAS not found here")
@FAST
@given(m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(1, 9), ta=st.booleans(), tb=st.booleans(),
       pad=st.integers(0, 3), beta=st.sampled_from([0.0, 1.0, 0.5]), seed=st.integers(0, 2**32 - 1))
def test_sgemm_called_from_numba_matches_numpy(restore, m, n, k, ta, tb, pad, beta, seed):
    """Every transpose combination, leading dimensions wider than the matrices (views)."""
    cblas.DISABLED = False  # an earlier test may have left the NumPy path forced
    rng = np.random.default_rng(seed)
    a_shape = (k, m) if ta else (m, k)
    b_shape = (n, k) if tb else (k, n)
    a = values(rng, (a_shape[0], a_shape[1] + pad))
    b = values(rng, (b_shape[0], b_shape[1] + pad))
    c = values(rng, (m, n + pad))
    want = c.astype(np.float64).copy()
    av, bv = a[:, :a_shape[1]].astype(np.float64), b[:, :b_shape[1]].astype(np.float64)
    want[:, :n] = (av.T if ta else av) @ (bv.T if tb else bv) + beta * want[:, :n]
    _sgemm_in_numba(cblas.sgemm_address(), cblas.TRANS if ta else cblas.NO_TRANS,
                    cblas.TRANS if tb else cblas.NO_TRANS, m, n, k, 1.0, a, a.shape[1], b, b.shape[1],
                    beta, c, c.shape[1])
    assert_close(c, want, rtol=1e-5, atol=1e-5)  # the padding columns of c are untouched too


def test_sgemm_address_is_zero_when_disabled(restore):
    cblas.DISABLED = True
    assert cblas.sgemm_address() == 0


def test_the_blas_numpy_uses_is_found_when_it_is_numpys_bundled_openblas():
    """Where NumPy runs its wheel's scipy-openblas64 (threadpoolctl names its file), the
    in-kernel GEMM must find it: otherwise the fast backward would silently never run."""
    from numba import config

    if config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT: kernels run as Python, the NumPy path is used by design")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    libs = [info.get("filepath", "") for info in threadpoolctl.threadpool_info()
            if info.get("user_api") == "blas"]
    if not any("scipy_openblas64_" in path for path in libs):
        pytest.skip(f"NumPy uses another BLAS here: {libs}")
    saved = cblas.DISABLED
    cblas.DISABLED = False
    try:
        assert cblas.sgemm_address() != 0
    finally:
        cblas.DISABLED = saved


def test_float64_dy_with_float32_x_is_not_read_as_float32():
    """The in-kernel BLAS reads raw float32 memory: a float64 dy must take the NumPy path."""
    rng = np.random.default_rng(9)
    x = values(rng, (2, 3, 6, 6))
    w = values(rng, (4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 6, 6))  # float64
    rdx, rdw, rdb = ref.conv_backward(x.astype(np.float64), w.astype(np.float64), dy, pad=1)
    dx, dw, db = numba_conv.conv_backward(x, w, dy, pad=1)
    assert_close(dw, rdw, rtol=1e-4, atol=1e-4)
    assert_close(db, rdb, rtol=1e-4, atol=1e-4)
    assert_close(dx, rdx, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("numpy_loop", [False, True])
@pytest.mark.parametrize("n_threads, tile_cols", [(1, 1), (2, 1), (1, 10_000), (2, 30)])
@pytest.mark.parametrize("need_dx", [True, False])
def test_1x1_backward_matches_reference(restore, numpy_loop, n_threads, tile_cols, need_dx):
    """1x1 convolutions: one image per tile (dx written in place) and several (gathered)."""
    threads.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0
    numba_conv.MIN_TILE_COLS = tile_cols
    numba_conv.COL_BYTES = numba_conv.BIG_COL_BYTES = 4 * tile_cols * 40
    cblas.DISABLED = numpy_loop
    numba_conv._plans.clear()
    rng = np.random.default_rng(n_threads * 7 + tile_cols)
    x = values(rng, (5, 6, 3, 4))
    w = values(rng, (7, 6, 1, 1))
    dy = values(rng, (5, 7, 3, 4))
    rdx, rdw, rdb = ref.conv_backward(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64))
    dw0, db0 = values(rng, w.shape), values(rng, (7,))
    dw_out, db_out = dw0.copy(), db0.copy()
    dx, dw, db = numba_conv.conv_backward(x, w, dy, need_dx=need_dx, dw_out=dw_out, db_out=db_out)
    assert_close(dw, dw0 + rdw, rtol=1e-4, atol=1e-4)
    assert_close(db, db0 + rdb, rtol=1e-4, atol=1e-4)
    if need_dx:
        assert_close(dx, rdx, rtol=1e-4, atol=1e-4)
    else:
        assert dx is None
