"""The tiled CPU convolution (numba_conv) and the conv keywords of the public API.

Tile sizes are shrunk here so that small random shapes go through every path
the real nets take at full size: row blocks within an image, several images
per tile (through the tile buffer), the 1x1 no-im2col path, one or two threads.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe import kernels
from tinycaffe.kernels import numpy_kernels, sizes, threads
from tinycaffe.kernels import reference as ref

from .helpers import FAST, NO_NUMBA, assert_close, conv_settings_restored, values

if kernels.numba_kernels is None:
    pytest.skip(NO_NUMBA, allow_module_level=True)
from tinycaffe.kernels import numba_conv  # noqa: E402

geometry = st.fixed_dictionaries({
    "n": st.integers(1, 4), "group": st.integers(1, 2), "cg": st.integers(1, 3),
    "mg": st.integers(1, 3), "h": st.integers(1, 9), "w": st.integers(1, 9),
    "k": st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5)]), "s": st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    "p": st.sampled_from([(0, 0), (1, 1), (2, 1)]), "d": st.sampled_from([(1, 1), (2, 1)]),
    "bias": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})
# (MIN_TILE_COLS, COL_BYTES, BIG_COL_BYTES): tiny tiles (row blocks), mid (several
# images), the large-K rule (whole images up to BIG_COL_BYTES), the defaults.
tilings = st.sampled_from([(1, 4, 4), (8, 64, 64), (64, 4096, 4096), (16, 8, 512),
                           (numba_conv.MIN_TILE_COLS, numba_conv.COL_BYTES, numba_conv.BIG_COL_BYTES)])


@pytest.fixture(scope="module")
def restore():
    """Put threads, the serial threshold and the tile sizes back after a test."""
    with conv_settings_restored():
        yield


def _configure(n_threads, tiling):
    threads.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0  # split even the tiny test problems over the pool
    numba_conv.MIN_TILE_COLS, numba_conv.COL_BYTES, numba_conv.BIG_COL_BYTES = tiling
    numba_conv._plans.clear()


def _case(c):
    kh, kw = c["k"]
    oh = sizes.conv_out_size(c["h"], kh, c["s"][0], c["p"][0], c["d"][0])
    ow = sizes.conv_out_size(c["w"], kw, c["s"][1], c["p"][1], c["d"][1])
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(c["seed"])
    x = values(rng, (c["n"], c["group"] * c["cg"], c["h"], c["w"]))
    w = values(rng, (c["group"] * c["mg"], c["cg"], kh, kw))
    b = values(rng, (c["group"] * c["mg"],)) if c["bias"] else None
    dy = values(rng, (c["n"], c["group"] * c["mg"], oh, ow))
    geo = dict(stride=c["s"], pad=c["p"], dilation=c["d"], group=c["group"])
    return x, w, b, dy, geo


def _f64(a):
    return None if a is None else a.astype(np.float64)


@FAST
@given(c=geometry, relu=st.booleans(), n_threads=st.sampled_from([1, 2, 3]), tiling=tilings,
       min_block_m=st.sampled_from([1, 2, 16]))
def test_forward_matches_reference(restore, c, relu, n_threads, tiling, min_block_m):
    _configure(n_threads, tiling)
    numba_conv.MIN_BLOCK_M = min_block_m  # small: the threads share output channels
    x, w, b, _, geo = _case(c)
    expected = ref.conv_forward(_f64(x), _f64(w), _f64(b), **geo)
    if relu:
        expected = np.maximum(expected, 0)
    out = np.full(expected.shape, np.nan, np.float32)  # every element must be written
    y = numba_conv.conv_forward(x, w, b, **geo, out=out, relu=relu)
    assert y is out
    assert_close(y, expected)


@FAST
@given(c=geometry, need_dx=st.booleans(), n_threads=st.sampled_from([1, 2]), tiling=tilings,
       dw_transposed=st.booleans())
def test_backward_matches_reference_and_accumulates(restore, c, need_dx, n_threads, tiling,
                                                    dw_transposed):
    _configure(n_threads, tiling)
    numba_conv.DW_TRANSPOSED_BELOW = 1000 if dw_transposed else 0  # both dW orientations
    x, w, _, dy, geo = _case(c)
    rdx, rdw, rdb = ref.conv_backward(_f64(x), _f64(w), _f64(dy), **geo)
    rng = np.random.default_rng(c["seed"] + 1)
    dw0 = values(rng, w.shape)
    db0 = values(rng, (w.shape[0],))
    dw_out, db_out = dw0.copy(), db0.copy()
    dx_out = np.full(x.shape, np.nan, np.float32) if need_dx else None
    dx, dw, db = numba_conv.conv_backward(x, w, dy, **geo, need_dx=need_dx, dx_out=dx_out,
                                          dw_out=dw_out, db_out=db_out)
    assert dw is dw_out and db is db_out
    assert_close(dw, dw0 + rdw, rtol=1e-4, atol=1e-4)  # added to what was there
    assert_close(db, db0 + rdb, rtol=1e-4, atol=1e-4)
    if need_dx:
        assert dx is dx_out
        assert_close(dx, rdx)
    else:
        assert dx is None


@FAST
@given(c=geometry, tiling=tilings)
def test_one_and_two_threads_agree(restore, c, tiling):
    x, w, b, dy, geo = _case(c)
    results = []
    for n_threads in (1, 2):
        _configure(n_threads, tiling)
        numba_conv.MIN_BLOCK_M = 1
        y = numba_conv.conv_forward(x, w, b, **geo, relu=True)
        results.append((y,) + numba_conv.conv_backward(x, w, dy, **geo))
    for one, two in zip(*results):
        assert_close(two, one, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pref", ["numba", "numpy"])
def test_public_api_relu_and_buffers(monkeypatch, pref):
    monkeypatch.setenv("TINYCAFFE_KERNELS", pref)
    rng = np.random.default_rng(3)
    x = values(rng, (3, 4, 7, 6))
    w = values(rng, (6, 2, 3, 3))
    b = values(rng, (6,))
    x[0, 1, 2, 3] = np.nan  # ReLU keeps NaN, as Caffe's (and np.maximum) do
    expected = np.maximum(ref.conv_forward(_f64(x), _f64(w), _f64(b), 1, 1, 1, 2), 0)
    y = kernels.conv_forward(x, w, b, 1, 1, 1, 2, relu=True)
    assert np.isnan(y).any()
    assert_close(y, expected)
    x[0, 1, 2, 3] = 0.5
    dy = values(rng, y.shape)
    dw_out = np.ones(w.shape, np.float32)
    db_out = np.ones(6, np.float32)
    dx_out = np.empty_like(x)
    dx, dw, db = kernels.conv_backward(x, w, dy, 1, 1, 1, 2, dx_out=dx_out, dw_out=dw_out, db_out=db_out)
    rdx, rdw, rdb = ref.conv_backward(_f64(x), _f64(w), _f64(dy), 1, 1, 1, 2)
    assert dx is dx_out and dw is dw_out and db is db_out
    assert_close(dx, rdx)
    assert_close(dw, rdw + 1, rtol=1e-4, atol=1e-4)
    assert_close(db, rdb + 1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("module", [numba_conv, numpy_kernels])
def test_bad_buffers_are_refused(module):
    x = np.zeros((2, 3, 5, 5), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    dy = np.zeros((2, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="dw_out"):
        module.conv_backward(x, w, dy, dw_out=np.zeros((4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="dx_out"):
        module.conv_backward(x, w, dy, dx_out=np.zeros((2, 3, 5, 5), np.float64))
    with pytest.raises(ValueError, match="db_out"):
        module.conv_backward(x, w, dy, db_out=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="out"):
        module.conv_forward(x, w, None, out=np.zeros((2, 4, 3, 3), np.float64))


@pytest.mark.parametrize("k", [1, 5])
def test_warm_calls_reuse_their_scratch(restore, k):
    """Once a shape has run, calling it again allocates nothing proportional to
    the column matrix (one 1 MB im2col tile here): the scratch is reused."""
    threads.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = values(rng, (8, 32, 16, 16))
    w = values(rng, (32, 32, k, k))
    b = values(rng, (32,))
    y = np.empty((8, 32, 16 - k + 1, 16 - k + 1), np.float32)
    numba_conv.conv_forward(x, w, b, out=y, relu=True)  # warm: compile, plan, scratch
    tracemalloc.start()
    try:
        numba_conv.conv_forward(x, w, b, out=y, relu=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024, f"a warm conv_forward allocated {peak} bytes"
    dy = values(rng, y.shape)
    numba_conv.conv_backward(x, w, dy)
    col_bytes = 32 * k * k * 4 * max(numba_conv.MIN_TILE_COLS, y.shape[2] * y.shape[3])
    tracemalloc.start()
    try:
        numba_conv.conv_backward(x, w, dy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # dx, dw, db and the dW partials; not the column matrices (2 x col_bytes)
    assert peak < x.nbytes + 3 * w.nbytes + 32 * 1024, (peak, col_bytes)


@pytest.mark.parametrize("n, c, m, h, k, s, p, g", [
    (1, 3, 96, 227, 11, 4, 0, 1),   # AlexNet conv1
    (2, 96, 256, 27, 5, 1, 2, 2),   # AlexNet conv2 (grouped)
    (1, 832, 384, 7, 1, 1, 0, 1),   # GoogLeNet inception_5b/1x1
    (2, 256, 128, 28, 1, 2, 0, 1),  # ResNet-style 1x1 stride 2
    (3, 32, 32, 16, 5, 1, 2, 1),    # cifar10_full conv2
], ids=["alexnet1", "alexnet2", "googlenet5b1x1", "resnet1x1s2", "cifar_conv2"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_real_layer_shapes_match_the_numpy_path(restore, n, c, m, h, k, s, p, g, n_threads):
    """Full-size BVLC layer shapes (default tiles and threshold) against the
    vectorised NumPy kernels; the tolerance scales with the sums' length."""
    threads.set_num_threads(n_threads)
    numba_conv._plans.clear()
    rng = np.random.default_rng(1)
    x = values(rng, (n, c, h, h))
    w = values(rng, (m, c // g, k, k)) * np.float32(1 / np.sqrt(c // g * k * k))
    b = values(rng, (m,))
    y = numba_conv.conv_forward(x, w, b, s, p, 1, g, relu=True)
    assert_close(y, numpy_kernels.conv_forward(x, w, b, s, p, 1, g, relu=True), rtol=1e-4, atol=1e-4)
    dy = values(rng, y.shape)
    got = numba_conv.conv_backward(x, w, dy, s, p, 1, g)
    want = numpy_kernels.conv_backward(x, w, dy, s, p, 1, g)
    scale = np.sqrt(n * y.shape[2] * y.shape[3])  # dW sums n*OH*OW products of N(0,1) values
    for a, e, tol in zip(got, want, (1e-4, 1e-4 * scale, 1e-4 * scale)):
        assert_close(a, e, rtol=1e-4, atol=tol)


@FAST
@given(c=geometry, n_threads=st.sampled_from([1, 2]), tiling=tilings)
def test_transpose_matches_the_numpy_path(restore, c, n_threads, tiling):
    """conv_transpose (Deconvolution's forward) is the dx of a convolution: the
    Numba one against the vectorised NumPy one, with and without bias."""
    _configure(n_threads, tiling)
    x, w, _, dy, geo = _case(c)  # dy plays the deconvolution's input, x its output
    out_hw = x.shape[2:]
    b = values(np.random.default_rng(c["seed"] + 3), (x.shape[1],)) if c["bias"] else None
    got = numba_conv.conv_transpose(dy, w, b, **geo, out_hw=out_hw)
    want = numpy_kernels.conv_transpose(dy, w, b, **geo, out_hw=out_hw)
    assert got.shape == x.shape
    assert_close(got, want, rtol=1e-4, atol=1e-4)
    # and it is the adjoint of conv_forward: <conv(x), dy> == <x, convT(dy)>
    lhs = np.sum(ref.conv_forward(_f64(x), _f64(w), None, **geo) * dy)
    rhs = np.sum(x.astype(np.float64) * numba_conv.conv_transpose(dy, w, None, **geo, out_hw=out_hw))
    assert abs(lhs - rhs) <= 1e-4 * (1 + abs(lhs))


def test_scratch_can_be_released(restore):
    from tinycaffe.kernels import scratch

    threads.set_num_threads(2)
    threads.SERIAL_BELOW_US = 0.0
    rng = np.random.default_rng(0)
    x = values(rng, (4, 8, 12, 12))
    w = values(rng, (8, 8, 3, 3))
    y = numba_conv.conv_forward(x, w, None, 1, 1)
    assert scratch.scratch_bytes() > 0
    scratch.release_all_scratch()
    assert scratch.scratch_bytes() == 0
    assert_close(numba_conv.conv_forward(x, w, None, 1, 1), y)  # buffers come back on demand


def test_a_finished_threads_scratch_is_freed():
    import gc
    import threading

    from tinycaffe.kernels import scratch

    before = scratch.scratch_bytes()
    t = threading.Thread(target=lambda: scratch.scratch("probe", 1 << 20, np.float32))
    t.start()
    t.join()
    gc.collect()
    assert scratch.scratch_bytes() <= before
