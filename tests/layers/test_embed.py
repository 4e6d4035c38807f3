"""Embed: top[..., :] = W[index] (+ bias); gradients to W rows (accumulated) and bias only."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


def text(k, n, bias=True):
    return (f'type: "Embed" embed_param {{ input_dim: {k} num_output: {n} bias_term: {str(bias).lower()} '
            f'weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }}')


def embed_reference(idx, W, b=None):
    out = np.zeros(idx.shape + (W.shape[1],))
    for pos in np.ndindex(idx.shape):
        out[pos] = W[int(idx[pos])] + (0 if b is None else b)
    return out


@settings(max_examples=30, deadline=None)
@given(seeds, st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), st.integers(1, 5),
       st.integers(1, 4), st.booleans())
def test_forward_matches_reference(seed, shape, k, n, bias):
    idx = np.random.default_rng(seed).integers(0, k, shape).astype(np.float32)
    W, b = random_array(seed, (k, n)), random_array(seed + 1, (n,))
    params = [W, b] if bias else [W]
    (y,) = run_layer(text(k, n, bias), [idx], params=params)
    assert y.shape == shape + (n,)
    np.testing.assert_allclose(y, embed_reference(idx, W, b if bias else None), rtol=1e-6)


def test_filler_and_blob_shapes():
    layer, _, _ = make_layer(text(5, 3), [np.zeros(2)])
    assert [p.shape for p in layer.blobs] == [(5, 3), (3,)]
    assert np.std(layer.blobs[0].data) > 0
    layer, _, _ = make_layer(text(5, 3, bias=False), [np.zeros(2)])
    assert len(layer.blobs) == 1


@settings(max_examples=15, deadline=None)
@given(seeds, st.integers(1, 4), st.booleans())
def test_gradient(seed, k, bias):
    idx = np.random.default_rng(seed).integers(0, k, (2, 3)).astype(np.float32)
    check_gradient(text(k, 2, bias), [idx], check_bottoms=[])


def test_repeated_indices_accumulate_and_param_diffs_add_up():
    idx = np.array([1.0, 1.0, 0.0])
    dy = np.arange(6, dtype=np.float32).reshape(3, 2)
    _, _, pdiffs, _ = forward_backward(text(3, 2), [idx], [dy], propagate_down=[False])
    np.testing.assert_allclose(pdiffs[0], [[4, 5], [2, 4], [0, 0]])
    np.testing.assert_allclose(pdiffs[1], [6, 9])


def test_bad_indices_and_params():
    with pytest.raises(ShapeError, match="index 4 is out of range: input_dim is 4"):
        run_layer(text(4, 2), [np.array([0.0, 4.0])])
    with pytest.raises(ShapeError, match="index -1 is out of range"):
        run_layer(text(4, 2), [np.array([-1.0])])
    with pytest.raises(ShapeError, match="integer"):
        run_layer(text(4, 2), [np.array([1.5])])
    with pytest.raises(NetError, match="input_dim"):
        make_layer('type: "Embed" embed_param { num_output: 2 }', [np.zeros(1)])
    with pytest.raises(ShapeError, match="index input"):
        forward_backward(text(4, 2), [np.array([1.0])], propagate_down=[True])
