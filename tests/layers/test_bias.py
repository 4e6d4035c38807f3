"""Bias: learned or second-bottom bias over any axis window, gradients, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import random_array, scale_bias
from .test_scale import operand_shape, window
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=50, deadline=None)
@given(window(), seeds, st.booleans())
def test_forward_matches_reference(w, seed, two_bottoms):
    shape, written, axis, num_axes = w
    x = random_array(seed, shape)
    b = random_array(seed + 1, operand_shape(shape, axis, num_axes))
    text = f'type: "Bias" bias_param {{ axis: {written} num_axes: {num_axes} }}'
    if two_bottoms:
        (y,) = run_layer(text, [x, b])
    else:
        (y,) = run_layer(text, [x], params=[b])
    np.testing.assert_allclose(y, scale_bias(x, axis, bias=b), rtol=1e-6, atol=1e-6)


def test_default_filler_is_zero_and_filler_is_used():
    layer, _, _ = make_layer('type: "Bias"', [np.zeros((2, 3, 4))])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.0)
    layer, _, _ = make_layer('type: "Bias" bias_param { filler { type: "constant" value: 2 } }', [np.zeros((2, 3))])
    np.testing.assert_array_equal(layer.blobs[0].data, 2.0)


@settings(max_examples=15, deadline=None)
@given(window(max_dim=3), seeds, st.booleans())
def test_gradient(w, seed, two_bottoms):
    shape, written, axis, num_axes = w
    x = random_array(seed, shape)
    b = random_array(seed + 1, operand_shape(shape, axis, num_axes))
    text = f'type: "Bias" bias_param {{ axis: {written} num_axes: {num_axes} }}'
    if two_bottoms:
        check_gradient(text, [x, b])
    else:
        check_gradient(text, [x], params=[b])


def test_in_place():
    x = random_array(1, (2, 3, 4))
    dy = random_array(2, x.shape)
    b = random_array(3, (3,))
    top, dx, dp, _ = forward_backward('type: "Bias"', [x], [dy], params=[b])
    top_ip, dx_ip, dp_ip, _ = forward_backward('type: "Bias"', [x], [dy], params=[b], in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_array_equal(dx[0], dx_ip[0])
    np.testing.assert_allclose(dp[0], dp_ip[0], rtol=1e-6)


def test_param_gradient_accumulates():
    layer, bb, tb = build_layer('type: "Bias"', [np.zeros((2, 3))])
    layer.forward(bb, tb)
    tb[0].diff[...] = 1.0
    layer.backward(tb, [True], bb)
    layer.backward(tb, [True], bb)
    np.testing.assert_array_equal(layer.blobs[0].diff, [4.0, 4.0, 4.0])


def test_shape_mismatch():
    with pytest.raises(ShapeError, match="does not match"):
        make_layer('type: "Bias"', [np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(NetError, match="num_axes"):
        make_layer('type: "Bias" bias_param { num_axes: 2 }', [np.zeros((2, 3))])
