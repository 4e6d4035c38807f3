"""HingeLoss: sum max(0, 1 - t x) (L1) or its square (L2) over N x K scores, divided by N."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


def hinge_reference(x, labels, norm):
    x = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    total = 0.0
    for n in range(x.shape[0]):
        for k in range(x.shape[1]):
            t = 1.0 if k == int(labels[n]) else -1.0
            m = max(0.0, 1.0 - t * x[n, k])
            total += m if norm == "L1" else m * m
    return total / x.shape[0]


def text(norm):
    return f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}'


def inputs(seed, n, k):
    x = random_array(seed, (n, k), scale=2.0)
    labels = np.random.default_rng(seed).integers(0, k, n).astype(np.float32)
    return x, labels


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 5), st.integers(1, 6), st.sampled_from(["L1", "L2"]))
def test_forward_matches_reference(seed, n, k, norm):
    x, labels = inputs(seed, n, k)
    (loss,) = run_layer(text(norm), [x, labels])
    np.testing.assert_allclose(loss, hinge_reference(x, labels, norm), rtol=1e-5, atol=1e-6)


def test_default_norm_is_l1():
    x, labels = inputs(1, 3, 4)
    np.testing.assert_allclose(run_layer('type: "HingeLoss"', [x, labels])[0],
                               hinge_reference(x, labels, "L1"), rtol=1e-5)


def _kink(v):  # the hinge bends where t x = 1
    return abs(abs(v) - 1.0) < 0.02


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(2, 4), st.sampled_from(["L1", "L2"]))
def test_gradient(seed, n, k, norm):
    x, labels = inputs(seed, n, k)
    check_gradient(text(norm), [x, labels], check_bottoms=[0], kink=_kink, step=1e-3, threshold=1e-2)


def test_gradient_scales_with_loss_weight():
    x, labels = np.array([[0.5, 0.2, -2.0]]), np.array([0.0])
    _, diffs, _, _ = forward_backward(text("L1"), [x, labels], [np.array(3.0)], propagate_down=[True, False])
    np.testing.assert_allclose(diffs[0], [[-3.0, 3.0, 0.0]], rtol=1e-6)
    _, diffs, _, _ = forward_backward(text("L2"), [x, labels], [np.array(3.0)], propagate_down=[True, False])
    np.testing.assert_allclose(diffs[0], [[-3.0, 7.2, 0.0]], rtol=1e-5)


def test_bad_labels_and_shapes():
    with pytest.raises(ShapeError, match=r"\[0, 3\).*found 3"):
        run_layer(text("L1"), [np.zeros((2, 3)), np.array([0.0, 3.0])])
    with pytest.raises(ShapeError, match="one label per item"):
        make_layer(text("L1"), [np.zeros((2, 3)), np.zeros(3)])
