"""ArgMax: indices / values of the top_k, with and without axis, Caffe's tie order, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import build_layer
from .reference_ops import argmax, random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


def values(seed, shape, ties):
    x = random_array(seed, shape)
    return np.round(x) if ties else x  # rounding makes many ties


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), seeds, st.booleans(),
       st.booleans(), st.data())
def test_without_axis(shape, seed, out_max_val, ties, data):
    per_item = int(np.prod(shape[1:]))
    k = data.draw(st.integers(1, per_item))
    x = values(seed, shape, ties)
    (y,) = run_layer(f'type: "ArgMax" argmax_param {{ top_k: {k} out_max_val: {str(out_max_val).lower()} }}', [x])
    np.testing.assert_array_equal(y, argmax(x, k, out_max_val))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), seeds, st.booleans(),
       st.booleans(), st.data())
def test_with_axis(shape, seed, out_max_val, ties, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    k = data.draw(st.integers(1, shape[axis]))
    written = data.draw(st.sampled_from([axis, axis - len(shape)]))
    x = values(seed, shape, ties)
    text = (f'type: "ArgMax" argmax_param {{ top_k: {k} axis: {written} '
            f'out_max_val: {str(out_max_val).lower()} }}')
    (y,) = run_layer(text, [x])
    np.testing.assert_array_equal(y, argmax(x, k, out_max_val, axis))


def test_ties_rank_the_larger_index_first():
    x = np.array([[1.0, 3.0, 3.0, 0.0]], np.float32)
    (y,) = run_layer('type: "ArgMax" argmax_param { top_k: 3 }', [x])
    np.testing.assert_array_equal(y.reshape(-1), [2, 1, 0])


def test_output_shapes():
    x = np.zeros((2, 3, 4, 5))
    assert run_layer('type: "ArgMax"', [x])[0].shape == (2, 1, 1, 1)
    assert run_layer('type: "ArgMax" argmax_param { out_max_val: true top_k: 2 }', [x])[0].shape == (2, 2, 2, 1)
    assert run_layer('type: "ArgMax" argmax_param { axis: 1 top_k: 2 }', [x])[0].shape == (2, 2, 4, 5)
    assert run_layer('type: "ArgMax"', [np.zeros((2, 3))])[0].shape == (2, 1, 1)


def test_top_k_too_large():
    with pytest.raises(ShapeError, match="top_k"):
        make_layer('type: "ArgMax" argmax_param { top_k: 7 }', [np.zeros((2, 3, 2))])
    with pytest.raises(ShapeError, match="top_k"):
        make_layer('type: "ArgMax" argmax_param { top_k: 4 axis: 1 }', [np.zeros((2, 3, 2))])


def test_top_k_zero_and_bad_axis():
    with pytest.raises(NetError, match="top_k"):
        make_layer('type: "ArgMax" argmax_param { top_k: 0 }', [np.zeros((2, 3))])
    with pytest.raises(NetError, match="out of range"):
        make_layer('type: "ArgMax" argmax_param { axis: 2 }', [np.zeros((2, 3))])


def test_no_backward():
    layer, b, t = build_layer('type: "ArgMax"', [np.zeros((2, 3))])
    with pytest.raises(NetError, match="no gradient"):
        layer.backward(t, [True], b)
