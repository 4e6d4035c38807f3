"""AbsVal: forward, gradient check (skipping the kink at 0), no in-place."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import random_array
from .util import run_layer

LAYER = 'type: "AbsVal"'
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=30, deadline=None)
@given(shapes, seeds)
def test_forward_matches_reference(shape, seed):
    x = random_array(seed, shape, 3.0)
    (y,) = run_layer(LAYER, [x])
    np.testing.assert_array_equal(y, np.abs(x))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seeds)
def test_gradient(shape, seed):
    check_gradient(LAYER, [random_array(seed, shape)], kink=0.0)


def test_gradient_at_zero_is_zero_like_caffe_sign():
    _, dx, _, _ = forward_backward(LAYER, [np.array([-2.0, 0.0, 3.0])], [np.ones(3)])
    np.testing.assert_array_equal(dx[0], [-1.0, 0.0, 1.0])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in-place"):
        build_layer(LAYER, [np.ones((2, 2))], in_place=True)
