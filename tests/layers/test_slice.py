"""Slice: slice points or equal parts along axis / legacy slice_dim, gradient, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import check_gradient
from .reference_ops import random_array
from .util import make_layer, run_layer


@st.composite
def slice_case(draw):
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    axis = draw(st.integers(0, len(shape) - 1))
    dim = shape[axis]
    if draw(st.booleans()):
        points = sorted(draw(st.sets(st.integers(1, dim), max_size=dim - 1)))  # Caffe: n_tops <= dim
    else:
        points = None  # equal split into a divisor of dim
        n = draw(st.sampled_from([d for d in range(1, dim + 1) if dim % d == 0]))
    n_tops = len(points) + 1 if points is not None else n
    return tuple(shape), axis, points, n_tops


def text(axis, points):
    pts = " ".join(f"slice_point: {p}" for p in points or [])
    return f'type: "Slice" slice_param {{ axis: {axis} {pts} }}'


@settings(max_examples=50, deadline=None)
@given(slice_case(), st.integers(0, 2**32 - 1))
def test_forward_matches_numpy(case, seed):
    shape, axis, points, n_tops = case
    x = random_array(seed, shape)
    tops = run_layer(text(axis, points), [x], n_tops=n_tops)
    expected = np.split(x, points if points is not None else n_tops, axis=axis)
    assert len(tops) == len(expected)
    for t, e in zip(tops, expected):
        np.testing.assert_array_equal(t, e)


def test_defaults_and_legacy_slice_dim():
    x = random_array(0, (4, 6))
    a, b = run_layer('type: "Slice"', [x], n_tops=2)
    np.testing.assert_array_equal(a, x[:, :3])
    a, b = run_layer('type: "Slice" slice_param { slice_dim: 0 slice_point: 1 }', [x], n_tops=2)
    np.testing.assert_array_equal(b, x[1:])


@settings(max_examples=15, deadline=None)
@given(slice_case(), st.integers(0, 2**32 - 1))
def test_gradient(case, seed):
    shape, axis, points, n_tops = case
    check_gradient(text(axis, points), [random_array(seed, shape)], n_tops=n_tops)


def test_wrong_number_of_points():
    with pytest.raises(NetError, match="one fewer"):
        make_layer(text(1, [1, 2]), [np.zeros((2, 6))], n_tops=2)


@pytest.mark.parametrize("points", [[3, 2], [0, 2], [2, 2]])
def test_points_must_increase(points):
    with pytest.raises(NetError, match="strictly increasing"):
        make_layer(text(1, points), [np.zeros((2, 6))], n_tops=3)


def test_point_out_of_range():
    with pytest.raises(ShapeError, match="out of range"):
        make_layer(text(1, [2, 7]), [np.zeros((2, 6))], n_tops=3)


def test_uneven_split():
    with pytest.raises(ShapeError, match="evenly"):
        make_layer('type: "Slice"', [np.zeros((2, 5))], n_tops=2)


def test_more_tops_than_values():
    with pytest.raises(ShapeError, match="cannot slice"):
        make_layer(text(1, [1, 2]), [np.zeros((2, 2))], n_tops=3)


def test_axis_and_slice_dim_together():
    with pytest.raises(NetError, match="not both"):
        make_layer('type: "Slice" slice_param { axis: 1 slice_dim: 1 }', [np.zeros((2, 2))], n_tops=2)
