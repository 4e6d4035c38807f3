"""ELU: forward for several alphas, gradient check, in-place."""
import numpy as np
from hypothesis import given, settings, strategies as st

from .gradcheck import check_gradient, forward_backward
from .reference_ops import elu, random_array
from .util import run_layer

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)
alphas = st.sampled_from([1.0, 0.5, 2.0, 0.0])


def layer(alpha):
    return f'type: "ELU" elu_param {{ alpha: {alpha} }}'


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, alphas)
def test_forward_matches_reference(shape, seed, alpha):
    x = random_array(seed, shape, 3.0)
    (y,) = run_layer(layer(alpha), [x])
    np.testing.assert_allclose(y, elu(x, alpha), rtol=1e-5, atol=1e-6)


def test_default_alpha_is_one():
    x = np.array([-1.0, 2.0], np.float32)
    (y,) = run_layer('type: "ELU"', [x])
    np.testing.assert_allclose(y, [np.expm1(-1.0), 2.0], rtol=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seeds, alphas)
def test_gradient(shape, seed, alpha):
    check_gradient(layer(alpha), [random_array(seed, shape, 2.0)], kink=0.0)


def test_in_place_matches_separate_top():
    x = random_array(7, (2, 3, 4), 2.0)
    dy = random_array(8, x.shape)
    top, dx, _, _ = forward_backward(layer(0.7), [x], [dy])
    top_ip, dx_ip, _, _ = forward_backward(layer(0.7), [x], [dy], in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-6)
