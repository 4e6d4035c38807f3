"""Reduction: SUM, ASUM, SUMSQ, MEAN over the tail axes with coeff; gradients; errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import check_gradient
from .reference_ops import random_array, reduction
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)
ops = st.sampled_from(["SUM", "ASUM", "SUMSQ", "MEAN"])
coeffs = st.sampled_from([1.0, -2.0, 0.5])


def text(op, axis, coeff):
    return f'type: "Reduction" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}'


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), seeds, ops, coeffs, st.data())
def test_forward_matches_reference(shape, seed, op, coeff, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    written = data.draw(st.sampled_from([axis, axis - len(shape)]))
    x = random_array(seed, shape)
    (y,) = run_layer(text(op, written, coeff), [x])
    assert y.shape == shape[:axis]
    np.testing.assert_allclose(y, reduction(x, op, axis, coeff), rtol=1e-5, atol=1e-5)


def test_defaults_sum_everything_to_a_scalar():
    x = random_array(0, (2, 3))
    (y,) = run_layer('type: "Reduction"', [x])
    assert y.shape == ()
    np.testing.assert_allclose(y, x.sum(), rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), seeds, ops, coeffs, st.data())
def test_gradient(shape, seed, op, coeff, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    check_gradient(text(op, axis, coeff), [random_array(seed, shape)], kink=0.0 if op == "ASUM" else None)


def test_axis_out_of_range():
    with pytest.raises(NetError, match="out of range"):
        make_layer('type: "Reduction" reduction_param { axis: 2 }', [np.zeros((2, 3))])
