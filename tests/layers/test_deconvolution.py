"""Deconvolution: the adjoint of Convolution, checked by the dot-product identity and gradients."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe import kernels
from tinycaffe.errors import ShapeError

from .gradcheck import check_gradient
from .util import make_layer, run_layer


def conv_text(kind, n_out, k, s, p, d, g, bias=False):
    return (f'type: "{kind}" convolution_param {{ num_output: {n_out} kernel_size: {k} stride: {s} '
            f'pad: {p} dilation: {d} group: {g} bias_term: {str(bias).lower()} '
            'weight_filler { type: "gaussian" std: 1 } }')


@settings(max_examples=30, deadline=None)
@given(g=st.sampled_from([1, 2]), cin=st.integers(1, 3), cout=st.integers(1, 3), k=st.integers(1, 3),
       s=st.integers(1, 3), p=st.integers(0, 1), d=st.integers(1, 2), h=st.integers(2, 5), seed=st.integers(0, 99))
def test_deconvolution_is_the_adjoint_of_convolution(g, cin, cout, k, s, p, d, h, seed):
    # <conv(z), x> == <z, deconv(x)>: deconv with the same weights is conv's transpose.
    cin, cout = cin * g, cout * g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, cin, h, h)).astype(np.float32)
    oh = s * (h - 1) + d * (k - 1) + 1 - 2 * p  # Caffe's deconvolution output size
    if oh <= 0:
        with pytest.raises(ShapeError, match="does not fit"):
            make_layer(conv_text("Deconvolution", cout, k, s, p, d, g), [x])
        return
    layer, _, (top,) = make_layer(conv_text("Deconvolution", cout, k, s, p, d, g), [x])
    assert top.shape[2] == oh
    if kernels.conv_out_size(oh, k, s, p, d) != h:
        return  # the sizes of this case do not round-trip; nothing to compare
    w = rng.standard_normal(layer.blobs[0].shape).astype(np.float32)
    (y,) = run_layer(conv_text("Deconvolution", cout, k, s, p, d, g), [x], params=[w])
    z = rng.standard_normal(y.shape).astype(np.float32)
    (cz,) = run_layer(conv_text("Convolution", cin, k, s, p, d, g), [z], params=[w])
    lhs = float(np.dot(cz.ravel().astype(np.float64), x.ravel()))
    rhs = float(np.dot(z.ravel().astype(np.float64), y.ravel()))
    assert abs(lhs - rhs) <= 1e-4 * max(1.0, abs(lhs), np.abs(cz).sum())


def test_shape_and_bias():
    x = np.ones((1, 2, 4, 4), np.float32)
    text = ('type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 '
            'bias_filler { type: "constant" value: 0.5 } }')
    layer, _, (top,) = make_layer(text, [x])
    assert layer.blobs[0].shape == (2, 3, 4, 4) and top.shape == (1, 3, 8, 8)
    (y,) = run_layer(text, [x])
    np.testing.assert_allclose(y, 0.5)  # zero weights by default: only the bias


def test_gradient():
    x = np.random.default_rng(2).standard_normal((2, 2, 3, 3)).astype(np.float32)
    check_gradient('type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 pad: 1 '
                   'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } }', [x])
