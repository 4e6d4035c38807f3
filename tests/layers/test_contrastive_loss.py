"""ContrastiveLoss: d^2 for similar pairs, max(margin - d, 0)^2 (or legacy max(margin - d^2, 0)) else."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from tinycaffe.errors import ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


def contrastive_reference(a, b, y, margin=1.0, legacy=False):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    total = 0.0
    for n in range(a.shape[0]):
        d2 = float(((a[n] - b[n]) ** 2).sum())
        if int(y[n]) != 0:
            total += d2
        elif legacy:
            total += max(margin - d2, 0.0)
        else:
            total += max(margin - np.sqrt(d2), 0.0) ** 2
    return total / (2 * a.shape[0])


def text(margin=1.0, legacy=False):
    return (f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: {margin} '
            f'legacy_version: {str(legacy).lower()} }}')


def inputs(seed, n, c):
    rng = np.random.default_rng(seed)
    a = random_array(seed, (n, c, 1, 1), scale=0.5)
    b = random_array(seed + 1, (n, c, 1, 1), scale=0.5)
    y = rng.integers(0, 2, n).astype(np.float32)
    return a, b, y


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 5), st.integers(1, 4), st.floats(0.1, 3.0), st.booleans())
def test_forward_matches_reference(seed, n, c, margin, legacy):
    a, b, y = inputs(seed, n, c)
    (loss,) = run_layer(text(margin, legacy), [a, b, y])
    assert loss.shape == ()
    np.testing.assert_allclose(loss, contrastive_reference(a, b, y, np.float32(margin), legacy), rtol=1e-4, atol=1e-6)


def test_label_is_truncated_like_a_c_int():
    a, b = np.zeros((2, 3)), np.ones((2, 3))
    # 0.7 truncates to 0 -> dissimilar; d = sqrt(3) > margin 1 -> 0. 1.5 -> similar: d^2 = 3.
    (loss,) = run_layer(text(), [a, b, np.array([0.7, 1.5])])
    np.testing.assert_allclose(loss, 3.0 / 4, rtol=1e-6)


def _away_from_kinks(a, b, y, margin, legacy):
    d2 = ((a.astype(np.float64) - b) ** 2).reshape(a.shape[0], -1).sum(1)
    gap = np.abs(margin - (d2 if legacy else np.sqrt(d2)))
    return bool(np.all((y != 0) | (gap > 0.1)))


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 3), st.booleans())
def test_gradient(seed, n, c, legacy):
    a, b, y = inputs(seed, n, c)
    assume(_away_from_kinks(a, b, y, 1.0, legacy))
    check_gradient(text(1.0, legacy), [a, b, y], check_bottoms=[0, 1], step=1e-3, threshold=2e-2)


def test_gradient_scales_with_loss_weight_and_is_antisymmetric():
    a, b = np.zeros((2, 2)), np.full((2, 2), 0.25)
    y = np.array([1.0, 0.0])
    _, diffs, _, _ = forward_backward(text(), [a, b, y], [np.array(2.0)], propagate_down=[True, True, False])
    # similar item: (a - b) * w / N; dissimilar: -(m - d)/(d + 1e-4) (a - b) * w / N, d = 0.25 * sqrt(2)
    d = 0.25 * np.sqrt(2)
    expected0 = np.array([[-0.25, -0.25], [0.25 * (1 - d) / (d + 1e-4)] * 2])
    np.testing.assert_allclose(diffs[0], expected0, rtol=1e-5)
    np.testing.assert_allclose(diffs[1], -expected0, rtol=1e-5)


def test_is_a_loss_layer_and_checks_shapes():
    layer, _, _ = make_layer(text(), [np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2)])
    assert layer.default_loss_weight(0) == 1.0
    with pytest.raises(ShapeError, match="same shape"):
        make_layer(text(), [np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2)])
    with pytest.raises(ShapeError, match="one value per item"):
        make_layer(text(), [np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3)])
