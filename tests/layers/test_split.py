"""Split: tops are views of the bottom; backward sums the top diffs."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import build_layer, check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple), st.integers(1, 4),
       st.integers(0, 2**32 - 1))
def test_tops_view_bottom_and_diffs_sum(shape, n, seed):
    x = random_array(seed, shape)
    dys = [random_array(seed + 1 + i, shape) for i in range(n)]
    tops, dx, _, layer = forward_backward('type: "Split"', [x], dys, n_tops=n)
    for t in tops:
        np.testing.assert_array_equal(t, x)
    np.testing.assert_allclose(dx[0], np.sum(np.array(dys, np.float64), axis=0), rtol=1e-6, atol=1e-6)


def test_tops_share_memory_and_follow_reshape():
    lyr, b, t = make_layer('type: "Split"', [np.zeros((2, 3))], n_tops=2)
    assert all(np.shares_memory(top.data, b[0].data) for top in t)
    b[0].reshape((4,))
    lyr.reshape(b, t)
    assert all(top.shape == (4,) and np.shares_memory(top.data, b[0].data) for top in t)


def test_gradient():
    check_gradient('type: "Split"', [random_array(0, (2, 3))], n_tops=3)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in-place"):
        build_layer('type: "Split"', [np.zeros(3)], n_tops=2, in_place=True)
