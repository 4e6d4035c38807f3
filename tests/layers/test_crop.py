"""Crop: to bottom 1's shape from axis on, with 0, 1 or per-axis offsets; gradient; errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import crop, random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


@st.composite
def crop_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    n = len(shape)
    axis = draw(st.integers(0, n - 1))
    mode = draw(st.sampled_from(["none", "one", "each"]))
    ref, offsets = list(shape), []
    if mode == "one":
        limit = min(shape[axis:])
        off = draw(st.integers(0, limit - 1))
        offsets = [off]
        for i in range(axis, n):
            ref[i] = draw(st.integers(1, shape[i] - off))
    else:
        for i in range(axis, n):
            ref[i] = draw(st.integers(1, shape[i]))
            if mode == "each":
                offsets.append(draw(st.integers(0, shape[i] - ref[i])))
    for i in range(axis):  # axes before axis are not cropped: the reference may differ there
        ref[i] = draw(st.integers(1, 5))
    return shape, tuple(ref), draw(st.sampled_from([axis, axis - n])), axis, offsets


def text(axis, offsets):
    offs = " ".join(f"offset: {o}" for o in offsets)
    return f'type: "Crop" crop_param {{ axis: {axis} {offs} }}'


@settings(max_examples=50, deadline=None)
@given(crop_case(), seeds)
def test_forward_matches_reference(case, seed):
    shape, ref, written, axis, offsets = case
    x = random_array(seed, shape)
    (y,) = run_layer(text(written, offsets), [x, np.zeros(ref)])
    np.testing.assert_array_equal(y, crop(x, ref, axis, offsets))


def test_default_axis_is_two():
    x = random_array(0, (2, 3, 5, 5))
    (y,) = run_layer('type: "Crop" crop_param { offset: 1 }', [x, np.zeros((1, 1, 3, 2))])
    np.testing.assert_array_equal(y, x[:, :, 1:4, 1:3])


@settings(max_examples=15, deadline=None)
@given(crop_case(), seeds)
def test_gradient(case, seed):
    shape, ref, written, _, offsets = case
    check_gradient(text(written, offsets), [random_array(seed, shape), np.zeros(ref)], check_bottoms=[0])


def test_backward_puts_zeros_outside_the_window():
    x = random_array(0, (1, 1, 4, 4))
    _, dx, _, _ = forward_backward('type: "Crop" crop_param { offset: 1 }', [x, np.zeros((1, 1, 2, 2))],
                                   [np.ones((1, 1, 2, 2))], propagate_down=[True, False])
    expected = np.zeros((4, 4))
    expected[1:3, 1:3] = 1
    np.testing.assert_array_equal(dx[0][0, 0], expected)


def test_offset_too_large():
    with pytest.raises(ShapeError, match="cannot crop axis 2"):
        make_layer('type: "Crop" crop_param { offset: 3 }', [np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2))])


def test_wrong_number_of_offsets():
    with pytest.raises(NetError, match="offsets"):
        make_layer('type: "Crop" crop_param { offset: 0 offset: 0 offset: 0 }',
                   [np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2))])


def test_axes_count_must_match():
    with pytest.raises(ShapeError, match="numbers of axes"):
        make_layer('type: "Crop"', [np.zeros((1, 1, 4, 4)), np.zeros((1, 2, 2))])
