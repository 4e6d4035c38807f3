"""The gradient checker itself: it must catch a wrong backward and honour kinks."""
import numpy as np
import pytest

from tinycaffe.layers.sigmoid import SigmoidLayer

from .gradcheck import check_gradient


def test_catches_a_wrong_backward(monkeypatch):
    def wrong(self, tops, propagate_down, bottoms):
        bottoms[0].diff[...] = tops[0].diff * 0.2  # not y (1 - y)
    monkeypatch.setattr(SigmoidLayer, "backward", wrong)
    with pytest.raises(AssertionError, match="Sigmoid layer: gradient of bottom 0"):
        check_gradient('type: "Sigmoid"', [np.linspace(-2, 2, 6, dtype=np.float32)])


def test_kink_skips_values_near_it():
    x = np.array([-1.0, -0.005, 0.0, 0.004, 1.0], np.float32)
    # |x| has no derivative at 0: only the 2 values away from the kink are checked
    assert check_gradient('type: "AbsVal"', [x], kink=0.0) == 2
    assert check_gradient('type: "AbsVal"', [x], kink=lambda v: abs(v) < 0.5) == 2


def test_counts_parameters():
    x = np.ones((2, 3), np.float32)
    assert check_gradient('type: "Bias"', [x]) == 6 + 3
    assert check_gradient('type: "Bias"', [x], check_params=False) == 6
