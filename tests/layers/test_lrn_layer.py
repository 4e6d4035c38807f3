"""The LRN layer: both regions against the reference, gradients, and the kernels' out= path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe.errors import NetError
from tinycaffe.kernels import reference

from .gradcheck import check_gradient, forward_backward


def _text(size, alpha, beta, k, region):
    return (f'type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} beta: {beta} k: {k} '
            f'norm_region: {region} }}')


@settings(max_examples=20, deadline=None)
@given(c=st.integers(1, 6), h=st.integers(1, 6), w=st.integers(1, 6), size=st.sampled_from([1, 3, 5]),
       alpha=st.floats(1e-3, 1.0), beta=st.sampled_from([0.75, 0.5, 1.3]), k=st.floats(0.5, 2.0),
       region=st.sampled_from(["ACROSS_CHANNELS", "WITHIN_CHANNEL"]), seed=st.integers(0, 99))
def test_forward_and_backward_match_the_reference(c, h, w, size, alpha, beta, k, region, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    (y,), (dx,), _, _ = forward_backward(_text(size, alpha, beta, k, region), [x], top_diffs=[dy])
    args = (size, alpha, beta, k, "across" if region == "ACROSS_CHANNELS" else "within")
    want_y = reference.lrn_forward(x.astype(np.float64), *args)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
    want_dx = reference.lrn_backward(x.astype(np.float64), want_y, dy.astype(np.float64), *args)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_gradient(region):
    x = np.random.default_rng(2).standard_normal((2, 5, 4, 4)).astype(np.float32)
    check_gradient(_text(3, 0.5, 0.75, 1.5, region), [x])


def test_even_local_size_is_refused():
    with pytest.raises(NetError, match="odd"):
        forward_backward(_text(4, 1.0, 0.75, 1.0, "ACROSS_CHANNELS"), [np.zeros((1, 4, 2, 2), np.float32)])
