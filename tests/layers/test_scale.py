"""Scale: learned or second-bottom scale over any axis window, bias_term, gradients, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array, scale_bias
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


@st.composite
def window(draw, max_dim=4):
    """(bottom shape, axis as written, canonical axis, num_axes)."""
    shape = tuple(draw(st.lists(st.integers(1, max_dim), min_size=1, max_size=4)))
    n = len(shape)
    axis = draw(st.integers(0, n - 1))
    num_axes = draw(st.integers(0, n - axis))
    if num_axes == n - axis and draw(st.booleans()):
        num_axes = -1
    return shape, draw(st.sampled_from([axis, axis - n])), axis, num_axes


def operand_shape(shape, axis, num_axes):
    return shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes]


@settings(max_examples=50, deadline=None)
@given(window(), seeds, st.booleans())
def test_learned_scale_and_bias(w, seed, bias_term):
    shape, written, axis, num_axes = w
    x = random_array(seed, shape)
    s = random_array(seed + 1, operand_shape(shape, axis, num_axes))
    bb = random_array(seed + 2, s.shape)
    text = (f'type: "Scale" scale_param {{ axis: {written} num_axes: {num_axes} '
            f'bias_term: {str(bias_term).lower()} }}')
    params = [s, bb] if bias_term else [s]
    (y,) = run_layer(text, [x], params=params)
    np.testing.assert_allclose(y, scale_bias(x, axis, s, bb if bias_term else None), rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(window(), seeds)
def test_scale_from_second_bottom(w, seed):
    shape, written, axis, num_axes = w
    x = random_array(seed, shape)
    s = random_array(seed + 1, operand_shape(shape, axis, num_axes))
    (y,) = run_layer(f'type: "Scale" scale_param {{ axis: {written} }}', [x, s])
    np.testing.assert_allclose(y, scale_bias(x, axis, s), rtol=1e-6, atol=1e-6)


def test_defaults():
    x = random_array(0, (2, 3, 4))
    layer, _, _ = make_layer('type: "Scale" scale_param { bias_term: true }', [x])
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    np.testing.assert_array_equal(layer.blobs[0].data, 1.0)
    np.testing.assert_array_equal(layer.blobs[1].data, 0.0)
    layer, _, _ = make_layer('type: "Scale" scale_param { bias_term: true filler { type: "constant" value: 3 }'
                             ' bias_filler { type: "constant" value: -1 } }', [x])
    np.testing.assert_array_equal(layer.blobs[0].data, 3.0)
    np.testing.assert_array_equal(layer.blobs[1].data, -1.0)


def test_scalar_scale_blob():
    x = random_array(0, (2, 3))
    (y,) = run_layer('type: "Scale" scale_param { num_axes: 0 }', [x], params=[np.array(2.5)])
    np.testing.assert_allclose(y, 2.5 * x)
    (y,) = run_layer('type: "Scale" scale_param { axis: 1 }', [x, np.array(-2.0, np.float32)])
    np.testing.assert_allclose(y, -2.0 * x)


@settings(max_examples=15, deadline=None)
@given(window(max_dim=3), seeds, st.booleans(), st.booleans())
def test_gradient(w, seed, bias_term, two_bottoms):
    shape, written, axis, num_axes = w
    x = random_array(seed, shape)
    s = random_array(seed + 1, operand_shape(shape, axis, num_axes))
    text = (f'type: "Scale" scale_param {{ axis: {written} num_axes: {num_axes} '
            f'bias_term: {str(bias_term).lower()} bias_filler {{ type: "gaussian" }} }}')
    if two_bottoms:
        check_gradient(text, [x, s])
    else:
        check_gradient(text, [x], params=[s] + ([random_array(seed + 3, s.shape)] if bias_term else []))


def test_in_place_keeps_the_input_for_the_scale_gradient():
    x = random_array(1, (2, 3, 4))
    dy = random_array(2, x.shape)
    params = [random_array(3, (3,)), random_array(4, (3,))]
    text = 'type: "Scale" scale_param { bias_term: true }'
    top, dx, dp, _ = forward_backward(text, [x], [dy], params=params)
    top_ip, dx_ip, dp_ip, _ = forward_backward(text, [x], [dy], params=params, in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-6)
    for a, b in zip(dp, dp_ip):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_second_bottom_shape_mismatch():
    with pytest.raises(ShapeError, match=r"\(4,\).*\(2, 3, 5\)"):
        make_layer('type: "Scale"', [np.zeros((2, 3, 5)), np.zeros(4)])


def test_learned_window_past_the_end():
    with pytest.raises(NetError, match="num_axes"):
        make_layer('type: "Scale" scale_param { axis: 1 num_axes: 3 }', [np.zeros((2, 3))])
    with pytest.raises(NetError, match="num_axes"):
        make_layer('type: "Scale" scale_param { num_axes: -2 }', [np.zeros((2, 3))])


def test_bottom_shape_change_is_checked():
    layer, b, t = make_layer('type: "Scale"', [np.zeros((2, 3))])
    b[0].reshape((2, 4))
    with pytest.raises(ShapeError, match="does not match"):
        layer.reshape(b, t)
