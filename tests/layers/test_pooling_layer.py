"""The Pooling layer: Caffe's rounding, global pooling, FLOOR mode, mask top and gradients."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe.errors import NetError
from tinycaffe.kernels import reference

from .gradcheck import check_gradient
from .util import run_layer


@settings(max_examples=25, deadline=None)
@given(h=st.integers(3, 9), w=st.integers(3, 9), k=st.integers(2, 3), s=st.integers(1, 3),
       p=st.integers(0, 1), method=st.sampled_from(["MAX", "AVE"]), seed=st.integers(0, 99))
def test_forward_matches_the_reference(h, w, k, s, p, method, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w)).astype(np.float32)
    text = f"pooling_param {{ pool: {method} kernel_size: {k} stride: {s} pad: {p} }}"
    if p >= k:
        with pytest.raises(NetError):
            run_layer('type: "Pooling" ' + text, [x])
        return
    (y,) = run_layer('type: "Pooling" ' + text, [x])
    want = reference.pool_forward(x, method.lower(), (k, k), (s, s), (p, p))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_global_and_floor_mode():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    (g,) = run_layer('type: "Pooling" pooling_param { pool: AVE global_pooling: true }', [x])
    np.testing.assert_allclose(g[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-5)
    (c,) = run_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [x])
    (f,) = run_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR }', [x])
    assert c.shape == (2, 3, 3, 4) and f.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(f, c[:, :, :2, :3])


def test_mask_top_holds_the_flat_index_of_the_maximum():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y, mask = run_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [x], n_tops=2)
    np.testing.assert_array_equal(y[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(mask[0, 0], [[5, 7], [13, 15]])


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_gradient(method):
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7).astype(np.float32) / 10  # no ties
    check_gradient(f'type: "Pooling" pooling_param {{ pool: {method} kernel_size: 3 stride: 2 pad: 1 }}', [x])


@settings(max_examples=20, deadline=None)
@given(h=st.integers(2, 9), w=st.integers(2, 9), k=st.integers(2, 3), s=st.integers(1, 3),
       p=st.integers(0, 1), phase=st.sampled_from(["train", "test"]),
       round_mode=st.sampled_from(["CEIL", "FLOOR"]), seed=st.integers(0, 99))
def test_max_backward_matches_reference_in_both_phases(h, w, k, s, p, phase, round_mode, seed):
    """TRAIN keeps the forward's mask and scatters through it; TEST finds the
    maxima again.  Both must give the reference gradient (ties included)."""
    from .gradcheck import forward_backward

    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(2, 3, h, w)).astype(np.float32)  # many tied maxima
    text = (f'type: "Pooling" pooling_param {{ pool: MAX kernel_size: {k} stride: {s} pad: {p} '
            f'round_mode: {round_mode} }}')
    if p >= k or h + 2 * p < k or w + 2 * p < k:
        return
    *_, layer = forward_backward(text, [x], phase=phase)  # once, to learn the top shape
    oh, ow = layer.out_hw
    dy = rng.standard_normal((2, 3, oh, ow)).astype(np.float32)
    (y,), (dx,), _, layer = forward_backward(text, [x], top_diffs=[dy], phase=phase)
    assert (layer._mask is not None) == (phase == "train")
    full = reference.pool_forward(x, "max", k, s, p)
    np.testing.assert_array_equal(y, full[:, :, :oh, :ow])
    full_dy = np.zeros(full.shape, np.float64)
    full_dy[:, :, :oh, :ow] = dy
    want = reference.pool_backward(x.astype(np.float64), None, full_dy, "max", k, s, p)
    np.testing.assert_allclose(dx, want, rtol=1e-5, atol=1e-6)


def test_mask_top_follows_caffe_for_nan_and_minus_inf():
    """Caffe's mask: -1 where nothing beats -FLT_MAX (all -inf, all NaN); NaN never wins."""
    x = np.array([[[[-np.inf, -np.inf, np.nan, 3.0],
                    [-np.inf, -np.inf, 2.0, np.nan]]]], np.float32)
    y, mask = run_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [x], n_tops=2)
    np.testing.assert_array_equal(mask[0, 0], [[-1, 3]])
    np.testing.assert_array_equal(y[0, 0], [[-np.finfo(np.float32).max, 3.0]])
