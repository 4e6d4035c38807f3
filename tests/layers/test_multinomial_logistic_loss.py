"""MultinomialLogisticLoss: -mean log max(p[label], 1e-20) on probabilities."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer, run_layer

LAYER = 'type: "MultinomialLogisticLoss"'
seeds = st.integers(0, 2**32 - 1)


def mll_reference(p, labels):
    p = np.asarray(p, np.float64).reshape(p.shape[0], -1)
    return -sum(np.log(max(p[n, int(labels[n])], 1e-20)) for n in range(p.shape[0])) / p.shape[0]


def inputs(seed, n, k):
    p = random_array(seed, (n, k, 1, 1), scale=0.9, low=0.1)
    p /= p.sum(axis=1, keepdims=True)
    labels = np.random.default_rng(seed).integers(0, k, n).astype(np.float32)
    return p, labels


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 5), st.integers(1, 6))
def test_forward_matches_reference(seed, n, k):
    p, labels = inputs(seed, n, k)
    (loss,) = run_layer(LAYER, [p, labels])
    np.testing.assert_allclose(loss, mll_reference(p, labels), rtol=1e-5)


def test_zero_probability_is_floored():
    (loss,) = run_layer(LAYER, [np.array([[0.0, 1.0]]), np.array([0.0])])
    np.testing.assert_allclose(loss, -np.log(np.float32(1e-20)), rtol=1e-5)
    assert np.isfinite(loss)


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(2, 4))
def test_gradient(seed, n, k):
    p, labels = inputs(seed, n, k)
    check_gradient(LAYER, [p, labels], check_bottoms=[0], step=1e-3, threshold=2e-2)


def test_gradient_values():
    p, labels = np.array([[0.25, 0.75], [0.5, 0.5]]), np.array([1.0, 0.0])
    _, diffs, _, _ = forward_backward(LAYER, [p, labels], [np.array(2.0)], propagate_down=[True, False])
    np.testing.assert_allclose(diffs[0], [[0.0, -1 / 0.75], [-2.0, 0.0]], rtol=1e-6)


def test_bad_labels_and_shapes():
    with pytest.raises(ShapeError, match=r"\[0, 2\)"):
        run_layer(LAYER, [np.full((1, 2), 0.5), np.array([-1.0])])
    with pytest.raises(ShapeError, match="one label per item"):
        make_layer(LAYER, [np.zeros((2, 3)), np.zeros((2, 3))])
