"""Concat: along any axis (axis / legacy concat_dim), gradient, and shape errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import check_gradient
from .reference_ops import random_array
from .util import make_layer, run_layer


@st.composite
def concat_case(draw):
    base = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    axis = draw(st.integers(0, len(base) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    shapes = [tuple(base[:axis] + [s] + base[axis + 1:]) for s in sizes]
    spelled = draw(st.sampled_from([axis, axis - len(base)]))
    return shapes, axis, spelled


@settings(max_examples=50, deadline=None)
@given(concat_case(), st.integers(0, 2**32 - 1))
def test_forward_matches_numpy(case, seed):
    shapes, axis, spelled = case
    xs = [random_array(seed + i, s) for i, s in enumerate(shapes)]
    (y,) = run_layer(f'type: "Concat" concat_param {{ axis: {spelled} }}', xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))


def test_default_axis_is_one_and_legacy_concat_dim():
    a, b = np.zeros((2, 3, 4)), np.ones((2, 1, 4))
    assert run_layer('type: "Concat"', [a, b])[0].shape == (2, 4, 4)
    a, b = np.zeros((2, 3)), np.ones((1, 3))
    assert run_layer('type: "Concat" concat_param { concat_dim: 0 }', [a, b])[0].shape == (3, 3)


@settings(max_examples=15, deadline=None)
@given(concat_case(), st.integers(0, 2**32 - 1))
def test_gradient(case, seed):
    shapes, _, spelled = case
    xs = [random_array(seed + i, s) for i, s in enumerate(shapes)]
    check_gradient(f'type: "Concat" concat_param {{ axis: {spelled} }}', xs)


def test_mismatched_dims_name_both_shapes():
    with pytest.raises(ShapeError, match=r"\(2, 3, 5\).*\(2, 3, 4\)"):
        make_layer('type: "Concat"', [np.zeros((2, 3, 4)), np.zeros((2, 3, 5))])


def test_different_number_of_axes():
    with pytest.raises(ShapeError, match="must match"):
        make_layer('type: "Concat"', [np.zeros((2, 3, 4)), np.zeros((2, 3))])


def test_axis_and_concat_dim_together():
    with pytest.raises(NetError, match="not both"):
        make_layer('type: "Concat" concat_param { axis: 1 concat_dim: 1 }', [np.zeros((2, 3))] * 2)


@pytest.mark.parametrize("field", ["axis: 3", "axis: -4", "concat_dim: 2"])
def test_axis_out_of_range(field):
    with pytest.raises(NetError, match="out of range"):
        make_layer(f'type: "Concat" concat_param {{ {field} }}', [np.zeros((2, 3))] * 2)
