"""EuclideanLoss: sum of squares / 2N, loss weight 1, gradients to both bottoms."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import euclidean_loss, random_array
from .util import make_layer, run_layer

LAYER = 'type: "EuclideanLoss"'
seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shapes, seeds)
def test_forward_matches_reference(shape, seed):
    a, b = random_array(seed, shape), random_array(seed + 1, shape)
    (loss,) = run_layer(LAYER, [a, b])
    assert loss.shape == ()
    np.testing.assert_allclose(loss, euclidean_loss(a, b), rtol=1e-5)


def test_second_bottom_may_have_another_shape_with_the_same_count():
    a, b = random_array(0, (2, 6)), random_array(1, (2, 2, 3))
    np.testing.assert_allclose(run_layer(LAYER, [a, b])[0], euclidean_loss(a, b), rtol=1e-5)


def test_is_a_loss_layer():
    layer, _, _ = make_layer(LAYER, [np.zeros((2, 3))] * 2)
    assert layer.default_loss_weight(0) == 1.0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), seeds)
def test_gradient(shape, seed):
    check_gradient(LAYER, [random_array(seed, shape), random_array(seed + 1, shape)])


def test_gradient_scales_with_loss_weight():
    a, b = random_array(0, (2, 3)), random_array(1, (2, 3))
    _, diffs, _, _ = forward_backward(LAYER, [a, b], [np.array(3.0)])
    np.testing.assert_allclose(diffs[0], 3.0 * (a - b) / 2, rtol=1e-6)
    np.testing.assert_allclose(diffs[1], -3.0 * (a - b) / 2, rtol=1e-6)


def test_count_mismatch():
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(2, 4\)"):
        make_layer(LAYER, [np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(LAYER, [np.zeros((2, 3)), np.zeros((3, 2))])
