"""Dropout: TEST identity; TRAIN mask from the layer's rng with 1/(1-ratio) scaling."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer, run_layer

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)
ratios = st.sampled_from([0.5, 0.1, 0.9, 0.0, 0.25])


def layer(ratio):
    return f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}'


@settings(max_examples=30, deadline=None)
@given(shapes, seeds, ratios)
def test_test_phase_is_identity(shape, seed, ratio):
    x = random_array(seed, shape)
    (y,) = run_layer(layer(ratio), [x], phase="test")
    np.testing.assert_array_equal(y, x)


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, ratios)
def test_train_phase_is_callers_rng_mask(shape, seed, ratio):
    x = random_array(seed, shape)
    (y,) = run_layer(layer(ratio), [x], phase="train", seed=seed)
    # the same draw the layer makes: uniform [0, 1) float32 from the seeded generator
    keep = np.random.default_rng(seed).random(shape, dtype=np.float32) > np.float32(ratio)
    expected = np.where(keep, x.astype(np.float64) / (1.0 - np.float32(ratio)), 0.0)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_train_keeps_about_one_minus_ratio():
    x = np.ones((100, 100), np.float32)
    (y,) = run_layer(layer(0.3), [x], phase="train", seed=4)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_masks_differ_between_forwards():
    lyr, b, t = make_layer(layer(0.5), [np.ones((20, 20))], phase="train")
    lyr.forward(b, t)
    first = t[0].data.copy()
    lyr.forward(b, t)
    assert not np.array_equal(first, t[0].data)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seeds, ratios)
def test_gradient(shape, seed, ratio):
    check_gradient(layer(ratio), [random_array(seed, shape)], seed=seed % 1000)


def test_backward_uses_the_forward_mask_in_place():
    x = random_array(0, (4, 5))
    dy = random_array(1, x.shape)
    top, dx, _, _ = forward_backward(layer(0.4), [x], [dy], seed=3)
    top_ip, dx_ip, _, _ = forward_backward(layer(0.4), [x], [dy], seed=3, in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_array_equal(dx[0], dx_ip[0])
    np.testing.assert_array_equal(dx[0] == 0, top[0] == 0)


def test_test_phase_backward_is_identity():
    x = random_array(0, (3, 3))
    dy = random_array(1, x.shape)
    _, dx, _, _ = forward_backward(layer(0.5), [x], [dy], phase="test")
    np.testing.assert_array_equal(dx[0], dy)


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(NetError, match="dropout_ratio"):
        build_layer(layer(ratio), [np.ones(3)])
