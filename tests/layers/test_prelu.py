"""PReLU: per-channel and shared slopes, default filler 0.25, gradients of x and slope, in-place."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import ShapeError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import prelu, random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


def layer(shared):
    return f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} }}'


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.booleans())
def test_forward_matches_reference(shape, seed, shared):
    x = random_array(seed, shape, 2.0)
    slope = random_array(seed + 1, () if shared else (shape[1],))
    (y,) = run_layer(layer(shared), [x], params=[slope])
    np.testing.assert_allclose(y, prelu(x, slope, shared), rtol=1e-6, atol=1e-7)


def test_default_filler_and_blob_shapes():
    x = random_array(0, (2, 3, 4))
    lyr, _, _ = make_layer('type: "PReLU"', [x])
    assert lyr.blobs[0].shape == (3,)
    np.testing.assert_array_equal(lyr.blobs[0].data, 0.25)
    lyr, _, _ = make_layer(layer(True), [x])
    assert lyr.blobs[0].shape == ()
    np.testing.assert_array_equal(lyr.blobs[0].data, 0.25)
    lyr, _, _ = make_layer('type: "PReLU" prelu_param { filler { type: "constant" value: -0.5 } }', [x])
    np.testing.assert_array_equal(lyr.blobs[0].data, -0.5)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple), seeds, st.booleans())
def test_gradient(shape, seed, shared):
    slope = random_array(seed + 1, () if shared else (shape[1],))
    check_gradient(layer(shared), [random_array(seed, shape)], params=[slope], kink=0.0)


def test_slope_gradient_accumulates():
    x = random_array(0, (2, 3, 2))
    lyr, b, t = build_layer('type: "PReLU"', [x])
    lyr.forward(b, t)
    t[0].diff[...] = 1.0
    lyr.blobs[0].diff[...] = 0.0
    lyr.backward(t, [True], b)
    once = lyr.blobs[0].diff.copy()
    lyr.backward(t, [True], b)
    np.testing.assert_allclose(lyr.blobs[0].diff, 2 * once)
    expected = np.minimum(x, 0).sum(axis=(0, 2))
    np.testing.assert_allclose(once, expected, rtol=1e-6)


def test_in_place_keeps_the_input_for_backward():
    x = random_array(1, (2, 3, 4))
    dy = random_array(2, x.shape)
    slope = np.array([0.1, -0.3, 2.0])
    top, dx, dp, _ = forward_backward('type: "PReLU"', [x], [dy], params=[slope])
    top_ip, dx_ip, dp_ip, _ = forward_backward('type: "PReLU"', [x], [dy], params=[slope], in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-6)
    np.testing.assert_allclose(dp[0], dp_ip[0], rtol=1e-6)


def test_needs_two_axes():
    with pytest.raises(ShapeError, match="at least 2 axes"):
        make_layer('type: "PReLU"', [np.ones(4)])


def test_channel_change_is_an_error():
    lyr, b, t = make_layer('type: "PReLU"', [np.ones((2, 3))])
    b[0].reshape((2, 4))
    with pytest.raises(ShapeError, match="4 channels"):
        lyr.reshape(b, t)
