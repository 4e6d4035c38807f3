"""Reshape: 0 copies, -1 infers, axis/num_axes windows, views, and clear errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import build_layer, check_gradient
from .reference_ops import random_array, reshape_shape
from .util import make_layer, run_layer


def layer(dims, axis=0, num_axes=-1):
    body = " ".join(f"dim: {d}" for d in dims)
    return f'type: "Reshape" reshape_param {{ shape {{ {body} }} axis: {axis} num_axes: {num_axes} }}'


@st.composite
def reshape_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    n = len(shape)
    start = draw(st.integers(0, n))
    end = draw(st.integers(start, n))
    window = shape[start:end]
    count = math.prod(window)
    # a new factorisation of the window's count: split it into factors
    factors = []
    rest = count
    for _ in range(draw(st.integers(0, 3))):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        f = draw(st.sampled_from(divisors))
        factors.append(f)
        rest //= f
    factors.append(rest)
    dims = list(factors)
    # mark one factor as -1 (inferred) sometimes
    if draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    # replace a leading dim by 0 (copy) where it equals the bottom's dim at that place
    for i in range(len(dims)):
        if start + i < n and dims[i] == shape[start + i] and draw(st.booleans()):
            dims[i] = 0
    axis = draw(st.sampled_from([start, start - n - 1]))
    num_axes = draw(st.sampled_from([end - start] + ([-1] if end == n else [])))
    return shape, dims, axis, num_axes


@settings(max_examples=50, deadline=None)
@given(reshape_case(), st.integers(0, 2**32 - 1))
def test_forward_shape_and_values(case, seed):
    shape, dims, axis, num_axes = case
    x = random_array(seed, shape)
    (y,) = run_layer(layer(dims, axis, num_axes), [x])
    assert y.shape == reshape_shape(shape, dims, axis, num_axes)
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


def test_caffe_examples():
    x = np.zeros((2, 3, 4, 5))
    assert run_layer(layer([0, -1]), [x])[0].shape == (2, 60)
    assert run_layer(layer([-1, 0, 20]), [x])[0].shape == (2, 3, 20)
    assert run_layer(layer([2, 2], axis=2, num_axes=1), [x])[0].shape == (2, 3, 2, 2, 5)
    assert run_layer(layer([1], axis=0, num_axes=0), [x])[0].shape == (1, 2, 3, 4, 5)
    assert run_layer(layer([1], axis=-1, num_axes=0), [x])[0].shape == (2, 3, 4, 5, 1)
    assert run_layer(layer([12], axis=1, num_axes=2), [x])[0].shape == (2, 12, 5)


def test_top_is_a_view():
    lyr, b, t = make_layer(layer([-1]), [np.zeros((2, 3))])
    assert np.shares_memory(t[0].data, b[0].data)
    b[0].reshape((4, 2))
    lyr.reshape(b, t)
    assert t[0].shape == (8,) and np.shares_memory(t[0].data, b[0].data)


def test_gradient():
    check_gradient(layer([0, -1, 2]), [random_array(0, (2, 3, 4))])


def test_count_mismatch_names_the_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"under_test.*\(2, 3\).*\(4, 2\)"):
        make_layer(layer([4, 2]), [np.zeros((2, 3))])


def test_not_divisible():
    with pytest.raises(ShapeError, match="divisible"):
        make_layer(layer([-1, 4]), [np.zeros((2, 3))])


def test_two_inferred_dims():
    with pytest.raises(NetError, match="more than one -1"):
        make_layer(layer([-1, -1]), [np.zeros((2, 3))])


def test_zero_without_bottom_axis():
    with pytest.raises(ShapeError, match="no axis"):
        make_layer(layer([6, 0]), [np.zeros((6,))])


@pytest.mark.parametrize("axis, num_axes, msg", [(3, -1, "axis 3"), (0, 3, "num_axes"), (-4, -1, "axis -4")])
def test_axis_window_out_of_range(axis, num_axes, msg):
    with pytest.raises(NetError, match=msg):
        make_layer(layer([-1], axis, num_axes), [np.zeros((2, 3))])


def test_bad_dim_and_num_axes():
    with pytest.raises(NetError, match="-2"):
        make_layer(layer([-2, 3]), [np.zeros((2, 3))])
    with pytest.raises(NetError, match="num_axes"):
        make_layer(layer([6], 0, -2), [np.zeros((2, 3))])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in-place"):
        build_layer(layer([-1]), [np.zeros((2, 3))], in_place=True)
