"""MVN: per-group mean (and std) normalisation, eps added to the std as in Caffe."""
import numpy as np
from hypothesis import given, settings, strategies as st

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import run_layer

seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


def mvn_reference(x, normalize_variance=True, across_channels=False, eps=1e-9):
    """Loop over the groups: (n, c) slices, or whole items with across_channels."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    if across_channels:
        groups = [(n,) for n in range(x.shape[0])]
    else:
        groups = [(n, c) for n in range(x.shape[0]) for c in range(x.shape[1])]
    for g in groups:
        v = x[g]
        centred = v - v.mean()
        if normalize_variance:
            centred = centred / (np.sqrt((centred ** 2).mean()) + eps)
        out[g] = centred
    return out


def layer_text(normalize_variance, across_channels, eps=None):
    extra = f" eps: {eps}" if eps is not None else ""
    return (f'type: "MVN" mvn_param {{ normalize_variance: {str(normalize_variance).lower()} '
            f'across_channels: {str(across_channels).lower()}{extra} }}')


@settings(max_examples=30, deadline=None)
@given(shapes, seeds, st.booleans(), st.booleans())
def test_forward_matches_reference(shape, seed, nv, ac):
    x = random_array(seed, shape, scale=3.0) + 1.0
    (y,) = run_layer(layer_text(nv, ac), [x])
    np.testing.assert_allclose(y, mvn_reference(x, nv, ac), rtol=1e-4, atol=1e-4)


def test_eps_is_added_to_the_std_not_the_variance():
    x = np.array([[[[0.0, 2.0]]]], np.float32)  # std 1
    (y,) = run_layer(layer_text(True, False, eps=0.5), [x])
    np.testing.assert_allclose(y.reshape(-1), [-1 / 1.5, 1 / 1.5], rtol=1e-6)


def test_constant_input_gives_zeros():
    (y,) = run_layer(layer_text(True, True), [np.full((2, 3, 2, 2), 7.0, np.float32)])
    np.testing.assert_array_equal(y, 0.0)


# Four axes, so every normalised group holds at least 4 values: a group of one
# value is 0/eps (float rounding noise / eps in float32), and a group of two
# normalises to exactly +-1, a step function a central difference cannot follow.
@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(2, 3), min_size=4, max_size=4).map(tuple), seeds, st.booleans(), st.booleans())
def test_gradient(shape, seed, nv, ac):
    check_gradient(layer_text(nv, ac), [random_array(seed, shape, scale=2.0)], step=1e-3, threshold=2e-2)


def test_backward_matches_caffe_formula_with_large_eps():
    x = random_array(3, (2, 2, 3, 3))
    dy = random_array(4, x.shape)
    tops, diffs, _, _ = forward_backward(layer_text(True, False, eps=0.1), [x], [dy])
    xg = x.astype(np.float64).reshape(4, 9)
    y, g = tops[0].reshape(4, 9).astype(np.float64), dy.reshape(4, 9).astype(np.float64)
    std = np.sqrt(((xg - xg.mean(1, keepdims=True)) ** 2).mean(1, keepdims=True)) + 0.1
    expected = (g - g.mean(1, keepdims=True) - y * (y * g).mean(1, keepdims=True)) / std
    np.testing.assert_allclose(diffs[0].reshape(4, 9), expected, rtol=1e-4, atol=1e-5)
