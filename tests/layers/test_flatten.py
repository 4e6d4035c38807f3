"""Flatten: shapes for axis/end_axis, top is a view re-pointed on reshape, gradient."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import build_layer, check_gradient
from .reference_ops import flatten_shape, random_array
from .util import make_layer, run_layer


@st.composite
def shape_and_axes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=5)))
    n = len(shape)
    a = draw(st.integers(0, n - 1))
    e = draw(st.integers(a, n - 1))
    # either spelling of each axis: non-negative or counted from the end
    a = draw(st.sampled_from([a, a - n]))
    e = draw(st.sampled_from([e, e - n]))
    return shape, a, e


@settings(max_examples=50, deadline=None)
@given(shape_and_axes(), st.integers(0, 2**32 - 1))
def test_forward_shape_and_values(sa, seed):
    shape, a, e = sa
    x = random_array(seed, shape)
    (y,) = run_layer(f'type: "Flatten" flatten_param {{ axis: {a} end_axis: {e} }}', [x])
    assert y.shape == flatten_shape(shape, a, e)
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


def test_default_flattens_all_but_the_first_axis():
    (y,) = run_layer('type: "Flatten"', [np.zeros((2, 3, 4, 5))])
    assert y.shape == (2, 60)


def test_top_is_a_view_repointed_on_reshape():
    lyr, b, t = make_layer('type: "Flatten"', [np.zeros((2, 3, 4))])
    assert np.shares_memory(t[0].data, b[0].data)
    b[0].reshape((5, 2, 2))
    lyr.reshape(b, t)
    assert t[0].shape == (5, 4) and np.shares_memory(t[0].data, b[0].data)
    b[0].data[...] = 7.0
    np.testing.assert_array_equal(t[0].data, 7.0)


def test_gradient():
    check_gradient('type: "Flatten" flatten_param { axis: 1 end_axis: 2 }', [random_array(0, (2, 3, 2, 2))])


def test_end_before_start_is_an_error():
    with pytest.raises(NetError, match="end_axis"):
        make_layer('type: "Flatten" flatten_param { axis: 2 end_axis: 1 }', [np.zeros((2, 3, 4))])


def test_axis_out_of_range():
    with pytest.raises(NetError, match="out of range"):
        make_layer('type: "Flatten" flatten_param { axis: 5 }', [np.zeros((2, 3))])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in-place"):
        build_layer('type: "Flatten"', [np.zeros((2, 3))], in_place=True)
