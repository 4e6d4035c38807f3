"""Silence: no tops, zero gradient to its bottoms."""
import numpy as np
import pytest

from tinycaffe.errors import NetError

from .gradcheck import forward_backward
from .util import make_layer, run_layer


def test_no_tops_and_zero_gradient():
    assert run_layer('type: "Silence"', [np.ones((2, 3)), np.ones(4)], n_tops=0) == []
    _, diffs, _, _ = forward_backward('type: "Silence"', [np.ones((2, 3)), np.ones(4)], n_tops=0,
                                      propagate_down=[True, False])
    np.testing.assert_array_equal(diffs[0], 0.0)


def test_needs_a_bottom_and_no_top():
    with pytest.raises(NetError, match="bottom"):
        make_layer('type: "Silence"', [], n_tops=0)
    with pytest.raises(NetError, match="top"):
        make_layer('type: "Silence"', [np.ones(2)], n_tops=1)
