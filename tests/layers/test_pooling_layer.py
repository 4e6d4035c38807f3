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
