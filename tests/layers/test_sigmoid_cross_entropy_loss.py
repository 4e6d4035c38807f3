"""SigmoidCrossEntropyLoss: stable loss, normalization modes, ignore_label, gradient."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import random_array, sigmoid, sigmoid_cross_entropy
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
# (loss_param text, normalizer as a function of (count, batch, valid))
MODES = {
    "": lambda c, n, v: n,  # this layer's default: BATCH_SIZE
    "normalization: FULL": lambda c, n, v: c,
    "normalization: VALID": lambda c, n, v: v,
    "normalization: BATCH_SIZE": lambda c, n, v: n,
    "normalization: NONE": lambda c, n, v: 1,
    "normalize: true": lambda c, n, v: v,
    "normalize: false": lambda c, n, v: n,
}


def text(mode, ignore=None):
    ig = f"ignore_label: {ignore}" if ignore is not None else ""
    return f'type: "SigmoidCrossEntropyLoss" loss_param {{ {mode} {ig} }}'


@settings(max_examples=50, deadline=None)
@given(shapes, seeds, st.sampled_from(sorted(MODES)), st.booleans())
def test_forward_matches_reference(shape, seed, mode, ignore):
    x = random_array(seed, shape, 3.0)
    t = (np.random.default_rng(seed).random(shape) > 0.5).astype(np.float32)
    ignore_label = None
    if ignore:
        ignore_label = -1
        t[np.random.default_rng(seed + 1).random(shape) < 0.3] = -1
    valid = int(np.sum(t != -1)) if ignore else t.size
    norm = max(1.0, MODES[mode](t.size, shape[0], valid))
    (loss,) = run_layer(text(mode, ignore_label), [x, t])
    np.testing.assert_allclose(loss, sigmoid_cross_entropy(x, t, norm, ignore_label), rtol=1e-5, atol=1e-6)


def test_large_logits_stay_finite():
    x = np.array([[80.0, -80.0, 0.0]], np.float32)
    t = np.array([[0.0, 1.0, 1.0]], np.float32)
    (loss,) = run_layer(text(""), [x, t])
    np.testing.assert_allclose(loss, 80 + 80 + np.log(2), rtol=1e-5)


def test_soft_targets():
    x, t = random_array(0, (3, 4)), random_array(1, (3, 4), 1.0, low=0.0)
    (loss,) = run_layer(text(""), [x, t])
    np.testing.assert_allclose(loss, sigmoid_cross_entropy(x, t, 3), rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), seeds, st.sampled_from(sorted(MODES)))
def test_gradient(shape, seed, mode):
    x = random_array(seed, shape, 2.0)
    t = (np.random.default_rng(seed).random(shape) > 0.5).astype(np.float32)
    t.reshape(-1)[0] = 5  # one ignored value
    check_gradient(text(mode, 5), [x, t], check_bottoms=[0])


def test_gradient_is_scaled_by_loss_weight_and_zero_where_ignored():
    x = random_array(0, (2, 3))
    t = np.array([[1, 0, -1], [0, 1, 1]], np.float32)
    _, diffs, _, _ = forward_backward(text("normalization: VALID", -1), [x, t], [np.array(2.0)],
                                      propagate_down=[True, False])
    expected = 2.0 * (sigmoid(x) - t) * (t != -1) / 5
    np.testing.assert_allclose(diffs[0], expected, rtol=1e-5, atol=1e-7)


def test_no_gradient_to_targets():
    layer, b, t = build_layer(text(""), [np.zeros((2, 2)), np.zeros((2, 2))])
    layer.forward(b, t)
    with pytest.raises(NetError, match="targets"):
        layer.backward(t, [True, True], b)


def test_count_mismatch():
    with pytest.raises(ShapeError, match="same count"):
        make_layer(text(""), [np.zeros((2, 3)), np.zeros((2, 4))])
