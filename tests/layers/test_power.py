"""Power: (shift + scale x)^power incl. Caffe's special cases, gradient check, in-place."""
import numpy as np
from hypothesis import given, settings, strategies as st

from .gradcheck import check_gradient, forward_backward
from .reference_ops import power_layer, random_array
from .util import run_layer

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)
# (power, scale, shift); positive bases so fractional powers stay real
params = st.tuples(st.sampled_from([1.0, 2.0, 3.0, 0.5, -1.0, 0.0, 1.7]), st.sampled_from([1.0, 0.5, 2.0, 0.0]),
                   st.sampled_from([0.0, 3.0, 1.5]))


def layer(power, scale, shift):
    return f'type: "Power" power_param {{ power: {power} scale: {scale} shift: {shift} }}'


@settings(max_examples=50, deadline=None)
@given(shapes, seeds, params)
def test_forward_matches_reference(shape, seed, p):
    x = random_array(seed, shape, 2.0, low=0.2)
    (y,) = run_layer(layer(*p), [x])
    with np.errstate(divide="ignore"):
        expected = power_layer(x, *p)
    np.testing.assert_allclose(y, expected, rtol=2e-5, atol=1e-6)


def test_default_is_identity():
    x = random_array(0, (2, 3))
    (y,) = run_layer('type: "Power"', [x])
    np.testing.assert_array_equal(y, x)


def test_zero_scale_gives_constant_and_zero_gradient():
    x = random_array(0, (2, 3))
    top, dx, _, _ = forward_backward(layer(2.0, 0.0, 3.0), [x])
    np.testing.assert_allclose(top[0], 9.0)
    np.testing.assert_array_equal(dx[0], 0.0)


def test_constant_case_follows_c_pow():
    x = random_array(0, (2,))
    (y,) = run_layer(layer(-1.0, 0.0, 0.0), [x])
    assert np.all(np.isposinf(y))
    (y,) = run_layer(layer(0.5, 0.0, -1.0), [x])
    assert np.all(np.isnan(y))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seeds, params)
def test_gradient(shape, seed, p):
    power, scale, shift = p
    check_gradient(layer(power, scale, shift), [random_array(seed, shape, 2.0, low=0.5)])


def test_in_place_matches_separate_top():
    x = random_array(1, (3, 4), 2.0, low=0.5)
    dy = random_array(2, x.shape)
    for p in [(2.0, 0.5, 1.0), (3.0, 2.0, 0.0), (0.5, 1.0, 1.0), (1.0, 2.0, 1.0)]:
        top, dx, _, _ = forward_backward(layer(*p), [x], [dy])
        top_ip, dx_ip, _, _ = forward_backward(layer(*p), [x], [dy], in_place=True)
        np.testing.assert_array_equal(top[0], top_ip[0])
        np.testing.assert_allclose(dx[0], dx_ip[0], rtol=1e-6)
