"""BatchNorm: batch statistics and Caffe's running sums (TRAIN), stored statistics (TEST),
gradients in both modes, in-place, lr_mult forced to 0."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import batch_norm_global, batch_norm_train, random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple).filter(
    lambda s: np.prod(s) // s[1] >= 2)


def text(global_stats=None, fraction=0.999, eps=1e-5):
    g = "" if global_stats is None else f"use_global_stats: {str(global_stats).lower()}"
    return (f'type: "BatchNorm" batch_norm_param {{ {g} moving_average_fraction: {fraction} '
            f'eps: {eps} }}')


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.sampled_from([0.999, 0.9, 0.0]), st.sampled_from([1e-5, 1e-3, 0.1]))
def test_train_forward_and_running_sums(shape, seed, fraction, eps):
    x = random_array(seed, shape, 2.0)
    c = shape[1]
    stats = [random_array(seed + 1, (c,)), np.abs(random_array(seed + 2, (c,))), np.array([1.5], np.float32)]
    layer, b, t = build_layer(text(False, fraction, eps), [x], params=stats)
    layer.forward(b, t)
    y_ref, new_stats = batch_norm_train(x, eps, fraction, stats)
    np.testing.assert_allclose(t[0].data, y_ref, rtol=1e-4, atol=1e-4)
    for blob, ref in zip(layer.blobs, new_stats):
        np.testing.assert_allclose(blob.data, ref, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.sampled_from([1e-5, 0.1]), st.sampled_from([0.0, 1.0, 7.5]))
def test_global_stats_forward(shape, seed, eps, weight):
    x = random_array(seed, shape, 2.0)
    c = shape[1]
    stats = [random_array(seed + 1, (c,)), np.abs(random_array(seed + 2, (c,))) + 0.1,
             np.array([weight], np.float32)]
    (y,) = run_layer(text(True, eps=eps), [x], params=stats)
    np.testing.assert_allclose(y, batch_norm_global(x, eps, stats), rtol=1e-5, atol=1e-5)


def test_phase_picks_the_default_mode():
    x = random_array(0, (4, 2, 3))
    (y_test,) = run_layer(text(), [x], phase="test")  # zero statistics: x / sqrt(eps)
    np.testing.assert_allclose(y_test, x / np.sqrt(np.float32(1e-5)), rtol=1e-5)
    (y_train,) = run_layer(text(), [x], phase="train")
    np.testing.assert_allclose(y_train.mean(axis=(0, 2)), 0.0, atol=1e-5)


def test_running_sums_over_two_batches():
    x1, x2 = random_array(1, (3, 2, 2)), random_array(2, (3, 2, 2))
    layer, b, t = build_layer(text(False, 0.9), [x1])
    layer.forward(b, t)
    b[0].data[...] = x2
    layer.forward(b, t)
    _, s1 = batch_norm_train(x1, 1e-5, 0.9, [np.zeros(2), np.zeros(2), np.zeros(1)])
    _, s2 = batch_norm_train(x2, 1e-5, 0.9, s1)
    for blob, ref in zip(layer.blobs, s2):
        np.testing.assert_allclose(blob.data, ref, rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[2].data, [1.9])


def test_blobs_start_at_zero_and_are_not_trained():
    layer, _, _ = make_layer(text(), [np.zeros((2, 3, 4))])
    assert [blob.shape for blob in layer.blobs] == [(3,), (3,), (1,)]
    assert all(np.all(blob.data == 0) for blob in layer.blobs)
    assert [p.lr_mult for p in layer.param.param] == [0.0, 0.0, 0.0]


def test_trainable_statistics_are_refused():
    with pytest.raises(NetError, match="lr_mult"):
        make_layer('type: "BatchNorm" param { lr_mult: 1 }', [np.zeros((2, 3))])


def test_channel_change_is_an_error():
    layer, b, t = make_layer(text(), [np.zeros((2, 3, 4))])
    b[0].reshape((2, 5, 4))
    with pytest.raises(ShapeError, match="5 channels"):
        layer.reshape(b, t)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple).filter(
    lambda s: np.prod(s) // s[1] >= 3), seeds)
def test_gradient_train(shape, seed):
    check_gradient(text(False, eps=1e-3), [random_array(seed, shape, 2.0)])


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple), seeds)
def test_gradient_global(shape, seed):
    c = shape[1]
    stats = [random_array(seed + 1, (c,)), np.abs(random_array(seed + 2, (c,))) + 0.5, np.array([2.0])]
    # Caffe gives the statistics no gradient: check the bottom only.
    check_gradient(text(True), [random_array(seed, shape)], params=stats, check_params=False)


@pytest.mark.parametrize("global_stats", [False, True])
def test_in_place_matches_separate_top(global_stats):
    x = random_array(3, (4, 3, 2), 2.0)
    dy = random_array(4, x.shape)
    stats = [np.ones(3), np.ones(3) * 2, np.array([1.0])]
    top, dx, _, _ = forward_backward(text(global_stats), [x], [dy], params=stats)
    top_ip, dx_ip, _, _ = forward_backward(text(global_stats), [x], [dy], params=stats, in_place=True)
    np.testing.assert_allclose(top[0], top_ip[0], rtol=1e-6)
    np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-5, atol=1e-6)


def test_two_axis_input():
    x = random_array(0, (6, 3))
    (y,) = run_layer(text(False), [x], phase="train")
    y_ref, _ = batch_norm_train(x, 1e-5, 0.999, [np.zeros(3), np.zeros(3), np.zeros(1)])
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
