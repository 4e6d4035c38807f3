"""ReLU layer: forward and backward against Caffe's formulas, plain and leaky, in place
or not, on the Numba kernels and on the NumPy fallback (TINYCAFFE_KERNELS=numpy),
and a central-difference gradient check away from the kink."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array

seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
slopes = st.sampled_from([0.0, 0.0, 0.01, 0.3, -0.2])


def layer(slope):
    return f'type: "ReLU" relu_param {{ negative_slope: {slope} }}'


def reference(x, dy, slope, in_place):
    """Caffe's ReLU; its backward reads the bottom data, which in place is the output
    (so a negative slope, which flips the sign, misleads Caffe's backward there too)."""
    x = x.astype(np.float32)
    y = np.maximum(x, 0) + np.float32(slope) * np.minimum(x, 0)
    seen = y if in_place else x
    dx = dy * ((seen > 0).astype(np.float32) + np.float32(slope) * (seen <= 0).astype(np.float32))
    return y, dx


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=seeds, slope=slopes, in_place=st.booleans())
def test_forward_backward_match_caffe(kernels, shape, seed, slope, in_place):
    x = random_array(seed, shape, 2.0)
    x.reshape(-1)[:: 3] = 0.0  # Caffe's gradient at exactly 0 is the slope's side
    dy = random_array(seed + 1, shape)
    with pytest.MonkeyPatch.context() as mp:
        if kernels == "numpy":
            mp.setenv("TINYCAFFE_KERNELS", "numpy")
        else:
            mp.delenv("TINYCAFFE_KERNELS", raising=False)
        (y,), (dx,), _, _ = forward_backward(layer(slope), [x], [dy], in_place=in_place)
    y_ref, dx_ref = reference(x, dy, slope, in_place)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-7)


def test_fast_and_numpy_paths_agree_on_a_training_sized_blob(monkeypatch):
    """conv2's ReLU of cifar10_full at batch 8, in place as the net runs it."""
    x = random_array(3, (8, 32, 16, 16), 2.0)
    dy = random_array(4, (8, 32, 16, 16))
    monkeypatch.delenv("TINYCAFFE_KERNELS", raising=False)
    fast = forward_backward(layer(0.0), [x], [dy], in_place=True)
    monkeypatch.setenv("TINYCAFFE_KERNELS", "numpy")
    slow = forward_backward(layer(0.0), [x], [dy], in_place=True)
    np.testing.assert_array_equal(fast[0][0], slow[0][0])
    np.testing.assert_array_equal(fast[1][0], slow[1][0])


@pytest.mark.parametrize("slope", [0.0, 0.25])
def test_gradient(slope):
    x = random_array(7, (2, 3, 4), 1.0)
    assert check_gradient(layer(slope), [x], kink=0.0, kink_range=0.02) > 0
