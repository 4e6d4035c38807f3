"""InnerProduct: forward and backward against NumPy, both weight layouts, gradients
accumulated into the parameter diffs, one and two kernel threads."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.kernels import threads

from .gradcheck import build_layer, check_gradient
from .reference_ops import random_array


def text(n_out, transpose=False, bias=True, axis=1):
    return (f'type: "InnerProduct" inner_product_param {{ num_output: {n_out} axis: {axis} '
            f'transpose: {str(transpose).lower()} bias_term: {str(bias).lower()} '
            f'weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }}')


@pytest.fixture(scope="module")
def restore_threads():
    before, threshold = threads.get_num_threads(), threads.SERIAL_BELOW_US
    yield
    threads.set_num_threads(before)
    threads.SERIAL_BELOW_US = threshold


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 7), k=st.integers(1, 9), n_out=st.integers(1, 6), transpose=st.booleans(),
       bias=st.booleans(), n_threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_forward_backward_match_numpy(restore_threads, m, k, n_out, transpose, bias, n_threads, seed):
    threads.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0  # split even these tiny products over the pool
    x = random_array(seed, (m, k))
    layer, bb, tb = build_layer(text(n_out, transpose, bias), [x])
    w = np.array(layer.blobs[0].data, np.float64)
    w_nk = w.T if transpose else w
    layer.forward(bb, tb)
    expected = x.astype(np.float64) @ w_nk.T
    if bias:
        expected += layer.blobs[1].data
    np.testing.assert_allclose(tb[0].data, expected, rtol=1e-5, atol=1e-5)
    dy = random_array(seed + 1, (m, n_out))
    tb[0].diff[...] = dy
    before = [random_array(seed + 2 + i, p.shape) for i, p in enumerate(layer.blobs)]
    for p, v in zip(layer.blobs, before):
        p.diff[...] = v  # Caffe accumulates parameter gradients: backward adds to these
    bb[0].diff[...] = np.nan  # and overwrites the bottom's
    layer.backward(tb, [True], bb)
    dw_nk = dy.astype(np.float64).T @ x
    np.testing.assert_allclose(layer.blobs[0].diff, before[0] + (dw_nk.T if transpose else dw_nk),
                               rtol=1e-5, atol=1e-5)
    if bias:
        np.testing.assert_allclose(layer.blobs[1].diff, before[1] + dy.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bb[0].diff, dy.astype(np.float64) @ w_nk, rtol=1e-5, atol=1e-5)


def test_gradient_with_axis_2():
    x = random_array(4, (2, 3, 2, 2))
    assert check_gradient(text(3, axis=2), [x]) > 0
