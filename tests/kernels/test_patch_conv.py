"""The patch-based convolution forward (numba_patch_conv) against the NumPy reference.

Its eligibility limits are lowered here so that small random shapes take the
path: every remainder of its 4-pixel x 4-channel blocks, strides, padding,
bias, fused ReLU, the pixel blocks, and images split over threads.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe import kernels
from tinycaffe.kernels import reference as ref
from tinycaffe.kernels import sizes, threads

from .helpers import FAST, NO_NUMBA, assert_close, values

if kernels.numba_kernels is None:
    pytest.skip(NO_NUMBA, allow_module_level=True)
from tinycaffe.kernels import numba_conv, numba_patch_conv

shapes = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 6), "m": st.integers(1, 9),
    "h": st.integers(1, 9), "w": st.integers(1, 9),
    "k": st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5), (1, 3)]),
    "s": st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    "p": st.sampled_from([(0, 0), (1, 1), (2, 1)]),
    "bias": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})


# The limits as shipped, read before any test lowers them.
DEFAULT_LIMITS = (numba_patch_conv.MIN_RUN, numba_patch_conv.MAX_WEIGHTS, numba_patch_conv.MIN_PIXELS)


@pytest.fixture(scope="module")
def patch_path():
    """Send every group-1, dilation-1 shape down the patch path; restore after."""
    saved = (numba_patch_conv.MIN_RUN, numba_patch_conv.MAX_WEIGHTS, numba_patch_conv.MIN_PIXELS,
             numba_patch_conv.PIXEL_BLOCK, threads.get_num_threads(), threads.SERIAL_BELOW_US)
    numba_patch_conv.MIN_RUN, numba_patch_conv.MAX_WEIGHTS, numba_patch_conv.MIN_PIXELS = 1, 1 << 30, 1
    yield
    (numba_patch_conv.MIN_RUN, numba_patch_conv.MAX_WEIGHTS, numba_patch_conv.MIN_PIXELS,
     numba_patch_conv.PIXEL_BLOCK) = saved[:4]
    threads.set_num_threads(saved[4])
    threads.SERIAL_BELOW_US = saved[5]
    numba_conv._plans.clear()


@FAST
@given(c=shapes, relu=st.booleans(), n_threads=st.sampled_from([1, 2]),
       pixel_block=st.sampled_from([4, 5, 16]))
def test_forward_matches_reference(patch_path, c, relu, n_threads, pixel_block):
    threads.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0  # split even tiny problems (images, or one image's pixels)
    numba_patch_conv.PIXEL_BLOCK = pixel_block
    kh, kw = c["k"]
    oh = sizes.conv_out_size(c["h"], kh, c["s"][0], c["p"][0], 1)
    ow = sizes.conv_out_size(c["w"], kw, c["s"][1], c["p"][1], 1)
    assume(oh >= 1 and ow >= 1)
    stride, pad = c["s"], c["p"]
    assert numba_patch_conv.eligible(c["c"], c["m"], kh, kw, stride, (1, 1), 1, c["n"] * oh * ow) == (
        (kh, kw, stride) != (1, 1, (1, 1)))  # 1x1 stride 1 stays a plain GEMM
    rng = np.random.default_rng(c["seed"])
    x = values(rng, (c["n"], c["c"], c["h"], c["w"]))
    w = values(rng, (c["m"], c["c"], kh, kw))
    b = values(rng, (c["m"],)) if c["bias"] else None
    expected = ref.conv_forward(x.astype(np.float64), w.astype(np.float64),
                                None if b is None else b.astype(np.float64), stride, pad)
    if relu:
        expected = np.maximum(expected, 0)
    out = np.full(expected.shape, np.nan, np.float32)  # every element must be written
    y = kernels.conv_forward(x, w, b, stride, pad, out=out, relu=relu)
    assert y is out
    assert_close(y, expected, rtol=1e-4, atol=1e-4)


def test_relu_keeps_nan_and_inf_propagates(patch_path):
    """Only contract/reassoc fastmath: a NaN input stays NaN through the fused
    ReLU (as Caffe's ReLU keeps it) and an inf reaches the outputs it touches."""
    threads.set_num_threads(1)
    x = np.ones((1, 4, 6, 6), np.float32)
    x[0, 1, 2, 2] = np.nan
    x[0, 2, 5, 5] = np.inf
    w = np.full((5, 4, 3, 3), -1.0, np.float32)
    y = kernels.conv_forward(x, w, None, 1, 1, relu=True)
    expected = np.maximum(ref.conv_forward(x.astype(np.float64), w.astype(np.float64), None, 1, 1), 0)
    assert np.isnan(y[0, :, 1:4, 1:4]).all()
    assert_close(y, expected)
    w[:] = 1.0
    y = kernels.conv_forward(x, w, None, 1, 1)
    assert np.isposinf(y[0, :, 4:, 4:]).all()


def test_cifar_shapes_take_the_path_they_were_measured_on(monkeypatch):
    """The limits as documented: cifar10_full conv2/conv3 here, conv1 (kw*C = 15)
    and large BVLC layers (weights beyond MAX_WEIGHTS) through im2col + BLAS,
    grouped or dilated convolutions never."""
    monkeypatch.setattr(numba_patch_conv, "MIN_RUN", DEFAULT_LIMITS[0])
    monkeypatch.setattr(numba_patch_conv, "MAX_WEIGHTS", DEFAULT_LIMITS[1])
    monkeypatch.setattr(numba_patch_conv, "MIN_PIXELS", DEFAULT_LIMITS[2])
    elig = numba_patch_conv.eligible
    assert elig(32, 32, 5, 5, (1, 1), (1, 1), 1, 100 * 256)  # conv2, batch 100
    assert elig(32, 32, 5, 5, (1, 1), (1, 1), 1, 256)  # conv2, batch 1
    assert elig(32, 64, 5, 5, (1, 1), (1, 1), 1, 100 * 64)  # conv3, batch 100
    assert not elig(32, 64, 5, 5, (1, 1), (1, 1), 1, 64)  # conv3, batch 1: repack > gain
    assert not elig(3, 32, 5, 5, (1, 1), (1, 1), 1, 100 * 1024)  # conv1
    assert not elig(3, 96, 11, 11, (4, 4), (1, 1), 1, 55 * 55)  # AlexNet conv1
    assert not elig(512, 512, 3, 3, (1, 1), (1, 1), 1, 784)
    assert not elig(64, 192, 3, 3, (1, 1), (1, 1), 1, 56 * 56)  # GoogLeNet conv2/3x3
    assert not elig(32, 32, 5, 5, (1, 1), (2, 2), 1, 25600)
    assert not elig(32, 32, 5, 5, (1, 1), (1, 1), 2, 25600)


def test_warm_call_allocates_no_weight_copy(patch_path):
    """The repacked weights live in scratch: a warm call on cifar10_full conv3's
    shape (200 KB of weights) allocates far less than one copy of them."""
    import tracemalloc

    threads.set_num_threads(1)
    rng = np.random.default_rng(1)
    x, w, b = values(rng, (2, 32, 8, 8)), values(rng, (64, 32, 5, 5)), values(rng, (64,))
    y = np.empty((2, 64, 8, 8), np.float32)
    kernels.conv_forward(x, w, b, 1, 2, out=y)
    tracemalloc.start()
    try:
        kernels.conv_forward(x, w, b, 1, 2, out=y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024, f"a warm patch conv allocated {peak} bytes"


def test_scratch_aligned_starts_on_a_cache_line():
    """scratch_aligned's promise: the view starts on the boundary, has the size
    asked for, and stays the same buffer for the same role when called again."""
    from tinycaffe.kernels.scratch import scratch_aligned

    for size, dtype in ((1, np.float32), (1000, np.float32), (37, np.float64)):
        a = scratch_aligned("test-aligned", size, dtype)
        assert a.ctypes.data % 64 == 0 and a.size == size and a.dtype == dtype
        a[:] = 7
        b = scratch_aligned("test-aligned", size, dtype)
        assert b.ctypes.data == a.ctypes.data and (b == 7).all()
