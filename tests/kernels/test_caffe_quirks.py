"""Hand-computed cases for the places where Caffe's semantics are unusual."""
from __future__ import annotations

import numpy as np
import pytest

from tinycaffe import kernels
from tinycaffe.kernels import reference as ref

from .helpers import IMPL_PARAMS, assert_close, make_impl

FLT_MAX = np.finfo(np.float32).max


@pytest.fixture(params=IMPL_PARAMS, scope="module")
def impl(request):
    return make_impl(request.param)


@pytest.mark.parametrize("size,kernel,stride,pad,expected", [
    (32, 3, 2, 0, 16),  # ceil(29/2)+1: the last window hangs over the edge (floor gives 15)
    (7, 3, 2, 1, 4),    # ceil(6/2)+1, last window starts at 5 < 7+1: kept
    (5, 2, 2, 1, 3),    # ceil(5/2)+1 = 4, but window 3 would start at 6 >= 5+1: dropped
    (6, 3, 3, 0, 2),    # exact fit
    (6, 1, 3, 0, 3),    # pad 0: no drop even though the last window starts at 6 >= 6
    (16, 3, 2, 0, 8),
    (8, 3, 2, 0, 4),
    (4, 4, 1, 0, 1),    # global pooling
])
def test_pool_out_size(size, kernel, stride, pad, expected):
    assert kernels.pool_out_size(size, kernel, stride, pad) == expected


@pytest.mark.parametrize("size,kernel,stride,pad,dilation,expected", [
    (32, 5, 1, 2, 1, 32), (32, 3, 2, 0, 1, 15), (7, 3, 2, 1, 1, 4), (9, 3, 1, 0, 2, 5),
    (227, 11, 4, 0, 1, 55), (5, 1, 1, 0, 1, 5),
])
def test_conv_out_size_floors(size, kernel, stride, pad, dilation, expected):
    assert kernels.conv_out_size(size, kernel, stride, pad, dilation) == expected


def test_ave_divides_by_window_clipped_to_padded_input(impl):
    # H=W=4, k=3, s=2, p=1 -> 3x3 outputs.  Per axis the windows are [-1,2), [1,4),
    # [3,6)->[3,5): divisors 3, 3, 2 (padding counted, beyond-padding not).
    x = np.ones((1, 1, 4, 4), np.float32)
    y = impl.run("pool_forward", x, "ave", 3, 2, 1)
    real = np.array([2, 3, 1], np.float32)    # real input rows/cols in each window
    div = np.array([3, 3, 2], np.float32)
    assert_close(y[0, 0], np.outer(real, real) / np.outer(div, div), rtol=1e-6)
    g = impl.run("pool_backward", x, None, np.ones_like(y), "ave", 3, 2, 1)
    expected = ref.pool_backward(x.astype(np.float64), None, np.ones((1, 1, 3, 3)), "ave", 3, 2, 1)
    assert_close(g, expected)
    # Cell (3, 3) lies in windows 1 and 2 along each axis: divisors 3*3, 3*2, 2*3, 2*2.
    assert_close(g[0, 0, 3, 3], 1 / 9 + 1 / 6 + 1 / 6 + 1 / 4)


def test_max_pool_clips_and_starts_at_minus_flt_max(impl):
    x = np.full((1, 2, 3, 3), -np.inf, np.float32)
    x[0, 1] = np.arange(9, dtype=np.float32).reshape(3, 3)
    x[0, 1, 0, 0] = np.nan  # Caffe's strict '>' never picks NaN
    y = impl.run("pool_forward", x, "max", 2, 2, 1)  # 3x3 -> 2x2, windows clipped
    assert np.all(y[0, 0] == -FLT_MAX)                # nothing beats -FLT_MAX
    np.testing.assert_array_equal(y[0, 1], [[-FLT_MAX, 2], [6, 8]])
    g = impl.run("pool_backward", x, y, np.ones_like(y), "max", 2, 2, 1)
    assert np.all(g[0, 0] == 0)                       # no maximum, no gradient
    assert g[0, 1, 0, 2] == 1 and g[0, 1, 2, 0] == 1 and g[0, 1, 2, 2] == 1 and g[0, 1].sum() == 3


def test_max_pool_gradient_goes_to_first_max_in_scan_order(impl):
    x = np.array([[[[1, 5, 5], [5, 0, 5], [5, 5, 5]]]], np.float32)
    y = impl.run("pool_forward", x, "max", 3, 1, 0)
    g = impl.run("pool_backward", x, y, np.ones_like(y), "max", 3, 1, 0)
    expected = np.zeros((3, 3), np.float32)
    expected[0, 1] = 1  # row-major scan: (0,1) is the first 5
    np.testing.assert_array_equal(g[0, 0], expected)


def test_lrn_across_divides_alpha_by_local_size(impl):
    x = np.zeros((1, 5, 1, 1), np.float32)
    x[0, 2] = 2.0
    alpha, beta, k, n = 0.3, 0.75, 1.5, 3
    y = impl.run("lrn_forward", x, n, alpha, beta, k, "across")
    scale = k + alpha / n * 4.0
    assert_close(y[0, 2, 0, 0], 2.0 * scale ** -beta, rtol=1e-6)
    assert np.all(y[0, [0, 1, 3, 4]] == 0)


def test_lrn_within_divides_by_size_squared_even_at_borders(impl):
    # AVE pooling with pad (n-1)//2 and stride 1 keeps every window inside the padded
    # input, so the divisor is n*n at a corner too; k is not used.
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = 3.0
    alpha, beta, n = 0.2, 0.75, 3
    for k in (1.0, 7.0):
        y = impl.run("lrn_forward", x, n, alpha, beta, k, "within")
        assert_close(y[0, 0, 0, 0], 3.0 * (1 + alpha * 9.0 / 9) ** -beta, rtol=1e-6)


def test_ave_zero_size_window_gives_nan_like_caffe(impl):
    # pad 0, stride > kernel: the last ceil-rounded window starts at W and has
    # Caffe pool_size 0, so Caffe's 0/0 yields NaN.  We reproduce, not fix, it.
    x = np.ones((1, 1, 6, 6), np.float32)
    y = impl.run("pool_forward", x, "ave", 1, 3, 0)
    assert y.shape == (1, 1, 3, 3)
    assert np.isnan(y[0, 0, 2]).all() and np.isnan(y[0, 0, :, 2]).all()
    assert np.all(y[0, 0, :2, :2] == 1)
