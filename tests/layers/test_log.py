"""Log: log_base(shift + scale x), gradient check, in-place, bad base."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import log_layer, random_array
from .util import make_layer, run_layer

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)
params = st.tuples(st.sampled_from([-1.0, 2.0, 10.0, 0.5]), st.sampled_from([1.0, 0.5, 2.0]),
                   st.sampled_from([0.0, 1.0, 0.25]))


def layer(base, scale, shift):
    return f'type: "Log" log_param {{ base: {base} scale: {scale} shift: {shift} }}'


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, params)
def test_forward_matches_reference(shape, seed, p):
    x = random_array(seed, shape, 4.0, low=0.05)  # positive inputs
    (y,) = run_layer(layer(*p), [x])
    np.testing.assert_allclose(y, log_layer(x, *p), rtol=1e-5, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seeds, params)
def test_gradient(shape, seed, p):
    check_gradient(layer(*p), [random_array(seed, shape, 3.0, low=0.5)])


def test_in_place_backward_uses_the_input():
    x = random_array(1, (3, 4), 3.0, low=0.5)
    dy = random_array(2, x.shape)
    top, dx, _, _ = forward_backward(layer(2.0, 0.5, 1.0), [x], [dy])
    top_ip, dx_ip, _, _ = forward_backward(layer(2.0, 0.5, 1.0), [x], [dy], in_place=True)
    np.testing.assert_array_equal(top[0], top_ip[0])
    np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-6)


@pytest.mark.parametrize("base", [0.0, -3.0])
def test_bad_base(base):
    with pytest.raises(NetError, match="base"):
        make_layer(layer(base, 1.0, 0.0), [np.ones(2)])
