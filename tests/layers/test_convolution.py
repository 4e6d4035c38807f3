"""Convolution layer: forward (with and without the fused ReLU) and backward against
the loop reference; parameter gradients accumulate, the bottom's is overwritten."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe.kernels import reference as ref

from .gradcheck import build_layer, check_gradient
from .reference_ops import random_array


def conv_text(n_out, k, s, p, g, bias=True):
    return (f'type: "Convolution" convolution_param {{ num_output: {n_out} kernel_size: {k} stride: {s} '
            f'pad: {p} group: {g} bias_term: {str(bias).lower()} '
            'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } }')


@settings(max_examples=30, deadline=None)
@given(g=st.sampled_from([1, 2]), cin=st.integers(1, 3), cout=st.integers(1, 3), k=st.integers(1, 3),
       s=st.integers(1, 2), p=st.integers(0, 1), h=st.integers(3, 6), n=st.integers(1, 3),
       bias=st.booleans(), fused_relu=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_forward_backward_match_reference(g, cin, cout, k, s, p, h, n, bias, fused_relu, seed):
    x = random_array(seed, (n, cin * g, h, h))
    layer, bb, tb = build_layer(conv_text(cout * g, k, s, p, g, bias), [x])
    layer.fused_relu = fused_relu
    w = np.array(layer.blobs[0].data, np.float64)
    b = np.array(layer.blobs[1].data, np.float64) if bias else None
    layer.forward(bb, tb)
    expected = ref.conv_forward(x.astype(np.float64), w, b, s, p, 1, g)
    if fused_relu:
        expected = np.maximum(expected, 0)
    np.testing.assert_allclose(tb[0].data, expected, rtol=1e-5, atol=1e-4)
    dy = random_array(seed + 1, tb[0].shape)
    tb[0].diff[...] = dy
    before = [random_array(seed + 2 + i, q.shape) for i, q in enumerate(layer.blobs)]
    for q, v in zip(layer.blobs, before):
        q.diff[...] = v
    bb[0].diff[...] = np.nan
    layer.backward(tb, [True], bb)
    rdx, rdw, rdb = ref.conv_backward(x.astype(np.float64), w, dy.astype(np.float64), s, p, 1, g)
    np.testing.assert_allclose(layer.blobs[0].diff, before[0] + rdw, rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(layer.blobs[1].diff, before[1] + rdb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bb[0].diff, rdx, rtol=1e-4, atol=1e-4)


def test_gradient_matches_central_differences():
    x = random_array(7, (2, 4, 5, 5))
    assert check_gradient(conv_text(4, 3, 2, 1, 2), [x]) > 0
