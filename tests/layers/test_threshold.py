"""Threshold: forward (strictly greater), no backward."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import build_layer
from .reference_ops import random_array
from .util import run_layer

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.5, -1.0, 2.25]))
def test_forward_matches_reference(shape, seed, threshold):
    x = random_array(seed, shape, 2.0)
    (y,) = run_layer(f'type: "Threshold" threshold_param {{ threshold: {threshold} }}', [x])
    np.testing.assert_array_equal(y, (x > np.float32(threshold)).astype(np.float32))


def test_value_equal_to_threshold_gives_zero():
    (y,) = run_layer('type: "Threshold" threshold_param { threshold: 0.5 }', [np.array([0.5, 0.6, 0.4])])
    np.testing.assert_array_equal(y, [0.0, 1.0, 0.0])


def test_in_place():
    layer, b, t = build_layer('type: "Threshold"', [np.array([-1.0, 2.0])], in_place=True)
    layer.forward(b, t)
    np.testing.assert_array_equal(b[0].data, [0.0, 1.0])


def test_backward_is_refused():
    layer, b, t = build_layer('type: "Threshold"', [np.ones(3)])
    layer.forward(b, t)
    with pytest.raises(NetError, match="Threshold"):
        layer.backward(t, [True], b)
