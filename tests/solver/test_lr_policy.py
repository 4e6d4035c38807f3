"""Each learning-rate policy against values worked out by hand from Caffe's formulas."""
from __future__ import annotations

import math

import pytest

from tinycaffe.proto import caffe_pb2
from tinycaffe.solver import SolverError, learning_rate
from tinycaffe.solver.lr_policy import check_lr_policy


def _param(**fields) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(base_lr=0.01, **fields)


def _rates(param, iters):
    """Rates for consecutive iterations 0..max(iters), carrying current_step as the solver does."""
    step, out = 0, {}
    for it in range(max(iters) + 1):
        rate, step = learning_rate(param, it, step)
        if it in iters:
            out[it] = rate
    return out


def _approx(x):
    return pytest.approx(x, rel=1e-6)  # rates are float32, as in Caffe


def test_fixed():
    p = _param(lr_policy="fixed")
    assert _rates(p, [0, 7, 1000]) == {0: _approx(0.01), 7: _approx(0.01), 1000: _approx(0.01)}


def test_step():
    p = _param(lr_policy="step", gamma=0.1, stepsize=100)
    r = _rates(p, [0, 99, 100, 199, 250])
    assert r == {0: _approx(0.01), 99: _approx(0.01), 100: _approx(0.001), 199: _approx(0.001),
                 250: _approx(0.0001)}
    assert learning_rate(p, 250, 0)[1] == 2  # step sets current_step = floor(it / stepsize)


def test_exp():
    p = _param(lr_policy="exp", gamma=0.5)
    assert _rates(p, [0, 1, 3]) == {0: _approx(0.01), 1: _approx(0.005), 3: _approx(0.00125)}


def test_inv():
    p = _param(lr_policy="inv", gamma=0.0001, power=0.75)
    # 0.01 * (1 + 0.0001 * 10000) ^ -0.75 = 0.01 * 2 ^ -0.75
    assert learning_rate(p, 10000, 0)[0] == _approx(0.01 * 2 ** -0.75)
    assert learning_rate(p, 0, 0)[0] == _approx(0.01)


def test_multistep_advances_once_per_call_and_keeps_its_step():
    p = _param(lr_policy="multistep", gamma=0.5)
    p.stepvalue.extend([3, 5])
    r = _rates(p, [0, 2, 3, 4, 5, 9])
    assert r == {0: _approx(0.01), 2: _approx(0.01), 3: _approx(0.005), 4: _approx(0.005),
                 5: _approx(0.0025), 9: _approx(0.0025)}
    # Resuming at iteration 9 with a saved current_step of 0 catches up one step per call, as Caffe.
    assert learning_rate(p, 9, 0) == (_approx(0.005), 1)


def test_poly():
    p = _param(lr_policy="poly", power=2.0, max_iter=100)
    assert _rates(p, [0, 50, 100]) == {0: _approx(0.01), 50: _approx(0.0025), 100: _approx(0.0)}


def test_sigmoid():
    p = _param(lr_policy="sigmoid", gamma=0.1, stepsize=20)
    assert learning_rate(p, 20, 0)[0] == _approx(0.005)
    assert learning_rate(p, 0, 0)[0] == _approx(0.01 / (1 + math.exp(2.0)))
    assert learning_rate(p, 40, 0)[0] == _approx(0.01 / (1 + math.exp(-2.0)))


@pytest.mark.parametrize("fields, message", [
    ({}, "lr_policy is not set"),
    ({"lr_policy": "cosine"}, "unknown lr_policy 'cosine'"),
    ({"lr_policy": "step", "gamma": 0.1}, "positive stepsize"),
    ({"lr_policy": "exp", "gamma": -1.0}, "gamma >= 0"),
    ({"lr_policy": "poly", "power": 1.0}, "positive max_iter"),
])
def test_bad_policies_are_refused(fields, message):
    with pytest.raises(SolverError, match=message):
        check_lr_policy(_param(**fields))
