"""TanH: forward against np.tanh, gradient check, in-place."""
import numpy as np
from hypothesis import given, settings, strategies as st

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import run_layer

LAYER = 'type: "TanH"'
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.sampled_from([0.1, 1.0, 10.0]))
def test_forward_matches_reference(shape, seed, scale):
    x = random_array(seed, shape, scale)
    (y,) = run_layer(LAYER, [x])
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64)), rtol=1e-5, atol=1e-7)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seeds)
def test_gradient(shape, seed):
    check_gradient(LAYER, [random_array(seed, shape, 1.5)])


def test_in_place_matches_separate_top():
    x = random_array(5, (3, 4), 2.0)
    dy = random_array(6, x.shape)
    top, dx, _, _ = forward_backward(LAYER, [x], [dy])
    top_ip, dx_ip, _, _ = forward_backward(LAYER, [x], [dy], in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-6)
