"""Each update rule against the same step written out plainly in float64.

Two consecutive steps are checked, so that what a rule keeps in its history
between iterations matters too.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe.solver import RULES, Hyper


def _reference(name, g, hist, lr, hp, t):
    """One step in float64: returns (update, new histories)."""
    m, d = hp.momentum, hp.delta
    if name == "SGD":
        h = m * hist[0] + lr * g
        return h, [h]
    if name == "Nesterov":
        h = m * hist[0] + lr * g
        return (1 + m) * h - m * hist[0], [h]
    if name == "AdaGrad":
        h = hist[0] + g * g
        return lr * g / (np.sqrt(h) + d), [h]
    if name == "RMSProp":
        h = hp.rms_decay * hist[0] + (1 - hp.rms_decay) * g * g
        return lr * g / (np.sqrt(h) + d), [h]
    if name == "AdaDelta":
        h = m * hist[0] + (1 - m) * g * g
        u = g * np.sqrt((hist[1] + d) / (h + d))
        h2 = m * hist[1] + (1 - m) * u * u
        return lr * u, [h, h2]
    if name == "Adam":
        b1, b2 = hp.momentum, hp.momentum2
        mm = b1 * hist[0] + (1 - b1) * g
        v = b2 * hist[1] + (1 - b2) * g * g
        corr = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return lr * corr * mm / (np.sqrt(v) + d), [mm, v]
    raise AssertionError(name)


def _hyper(name, momentum, momentum2, delta, rms_decay):
    if name in ("AdaGrad", "RMSProp"):
        momentum = 0.0  # Caffe refuses momentum for these two
    return Hyper(momentum=momentum, momentum2=momentum2, delta=delta, rms_decay=rms_decay)


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    lr=st.floats(1e-4, 1.0),
    momentum=st.floats(0.0, 0.99),
    momentum2=st.floats(0.9, 0.9999),
    delta=st.floats(1e-8, 1e-2),
    rms_decay=st.floats(0.0, 0.99),
    t=st.integers(1, 1000),
)
def test_rule_matches_hand_computation(name, seed, lr, momentum, momentum2, delta, rms_decay, t):
    rule = RULES[name]
    hp = _hyper(name, momentum, momentum2, delta, rms_decay)
    rng = np.random.default_rng(seed)
    shape = (3, 4)
    # Start from a non-trivial history (squared-gradient histories must be >= 0).
    hist = [np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(rule.histories)]
    if name in ("SGD", "Nesterov"):
        hist[0] = rng.standard_normal(shape).astype(np.float32)
    if name == "Adam":
        hist[0] = rng.standard_normal(shape).astype(np.float32)
    ref_hist = [h.astype(np.float64) for h in hist]
    scratch = [np.empty(shape, np.float32) for _ in range(rule.scratch)]
    for step in range(2):
        g = rng.standard_normal(shape).astype(np.float32)
        expected, ref_hist = _reference(name, g.astype(np.float64), ref_hist, lr, hp, t + step)
        diff = g.copy()
        rule.apply(diff, hist, scratch, lr, hp, t + step)
        np.testing.assert_allclose(diff, expected, rtol=2e-4, atol=1e-6 * max(lr, 1e-3))
        for mine, ref in zip(hist, ref_hist):
            np.testing.assert_allclose(mine, ref, rtol=2e-4, atol=1e-6)


def test_sgd_by_hand():
    """momentum 0.9, lr 0.1: h = 0.9*1 + 0.1*2 = 1.1, and the step is h."""
    diff, h = np.array([2.0], np.float32), np.array([1.0], np.float32)
    RULES["SGD"].apply(diff, [h], [], 0.1, Hyper(momentum=0.9), 1)
    assert diff[0] == pytest.approx(1.1) and h[0] == pytest.approx(1.1)


def test_adam_first_step_is_lr_times_sign():
    """From zero history Adam's first step is lr * g / (|g| + eps') ~ lr * sign(g)."""
    g = np.array([0.5, -3.0], np.float32)
    hist = [np.zeros(2, np.float32), np.zeros(2, np.float32)]
    RULES["Adam"].apply(g, hist, [np.empty(2, np.float32)], 0.01, Hyper(0.9, 0.999, 1e-8), 1)
    np.testing.assert_allclose(g, [0.01, -0.01], rtol=1e-4)


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("regularization", ["L2", "L1"])
def test_an_update_allocates_no_parameter_sized_array(name, regularization):
    """The module's promise: rules (and the weight decay before them) work in place,
    with the solver's scratch as their only temporaries.  A 1 MB parameter: a single
    temporary of its size would show in tracemalloc's peak."""
    import tracemalloc

    from tinycaffe.solver import Solver

    from .helpers import solver_param

    net = """
    name: "big"
    layer { name: "in" type: "Input" top: "data" top: "target"
            input_param { shape { dim: [2, 512] } shape { dim: [2, 512] } } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            inner_product_param { num_output: 512 weight_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
    """
    momentum = 0.0 if name in ("AdaGrad", "RMSProp") else 0.9
    solver = Solver(solver_param(net, type=name, momentum=momentum, weight_decay=0.01,
                                 regularization_type=regularization, clip_gradients=0.5),
                    log=lambda line: None)
    try:
        solver.net.blobs["data"].data[...] = 1.0
        solver.step(2)  # histories and caches warm
        solver.net.forward()
        solver.net.backward()
        tracemalloc.start()
        try:
            solver.apply_update()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        solver.close()
    weights = solver.net.params["ip"][0].data.nbytes
    assert weights == 512 * 512 * 4
    assert peak < weights // 16, f"apply_update peaked at {peak} bytes (weights: {weights})"
