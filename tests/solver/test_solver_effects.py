"""What weight decay, lr_mult, decay_mult, iter_size and clip_gradients do to one update."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import gradients, tiny_solver, weights

LR, WD = 0.1, 0.01
# learnable params of the tiny net: ip1 weights, ip1 bias, ip2 weights, ip2 bias
LR_MULT = [1.0, 2.0, 1.0, 1.0]
DECAY_MULT = [1.0, 0.5, 1.0, 1.0]


def _one_step(**fields):
    solver = tiny_solver(**fields)
    w0, g = weights(solver.net), gradients(solver.net)
    solver.step(1)
    w1 = weights(solver.net)
    solver.close()
    return w0, g, w1


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_l2_weight_decay_with_lr_and_decay_mults():
    w0, g, w1 = _one_step(weight_decay=WD)
    for i in range(4):
        _close(w1[i], w0[i] - LR * LR_MULT[i] * (g[i] + WD * DECAY_MULT[i] * w0[i]))


def test_l1_weight_decay_uses_the_sign():
    w0, g, w1 = _one_step(weight_decay=WD, regularization_type="L1")
    for i in range(4):
        _close(w1[i], w0[i] - LR * LR_MULT[i] * (g[i] + WD * DECAY_MULT[i] * np.sign(w0[i])))


def test_momentum_carries_the_previous_step():
    solver = tiny_solver(momentum=0.9)
    w0, g0 = weights(solver.net), gradients(solver.net)
    solver.step(1)
    w1, g1 = weights(solver.net), gradients(solver.net)
    solver.step(1)
    w2 = weights(solver.net)
    for i in range(4):
        step0 = LR * LR_MULT[i] * g0[i]
        _close(w1[i], w0[i] - step0)
        _close(w2[i], w1[i] - (0.9 * step0 + LR * LR_MULT[i] * g1[i]))
    solver.close()


def test_iter_size_averages_the_accumulated_gradient():
    # The batch is the same every pass, so the average of 3 passes is one pass's gradient.
    w0, g, w1 = _one_step(iter_size=3, weight_decay=WD)
    for i in range(4):
        _close(w1[i], w0[i] - LR * LR_MULT[i] * (g[i] + WD * DECAY_MULT[i] * w0[i]))


def test_clip_gradients_scales_the_global_norm_before_weight_decay():
    solver = tiny_solver()
    norm = float(np.sqrt(sum((x.astype(np.float64) ** 2).sum() for x in gradients(solver.net))))
    solver.close()
    w0, g, w1 = _one_step(clip_gradients=0.5 * norm, weight_decay=WD)
    for i in range(4):
        _close(w1[i], w0[i] - LR * LR_MULT[i] * (0.5 * g[i] + WD * DECAY_MULT[i] * w0[i]))


def test_clip_gradients_sees_the_sum_over_iter_size_as_caffe_does():
    # Caffe clips before normalizing: with iter_size 2 the clipped norm is 2 * |g|.
    solver = tiny_solver()
    norm = float(np.sqrt(sum((x.astype(np.float64) ** 2).sum() for x in gradients(solver.net))))
    solver.close()
    w0, g, w1 = _one_step(clip_gradients=1.5 * norm, iter_size=2)
    scale = 1.5 * norm / (2 * norm)
    for i in range(4):
        _close(w1[i], w0[i] - LR * LR_MULT[i] * scale * g[i])


def test_clip_gradients_leaves_small_gradients_alone():
    w0, g, w1 = _one_step(clip_gradients=1e6)
    for i in range(4):
        _close(w1[i], w0[i] - LR * LR_MULT[i] * g[i])


def test_lr_mult_zero_freezes_a_parameter():
    from .helpers import NET

    frozen = NET.replace("param { lr_mult: 2 decay_mult: 0.5 }", "param { lr_mult: 0 decay_mult: 1 }")
    from tinycaffe.solver import Solver

    from .helpers import fixed_inputs, solver_param

    solver = Solver(solver_param(frozen, weight_decay=WD, momentum=0.9), log=lambda s: None)
    fixed_inputs(solver.net)
    bias0 = solver.net.params["ip1"][1].data.copy()
    solver.step(3)
    np.testing.assert_array_equal(solver.net.params["ip1"][1].data, bias0)
    solver.close()


@pytest.mark.parametrize("kind", ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"])
def test_every_solver_type_lowers_the_loss(kind):
    fields = {"type": kind, "base_lr": 1.0 if kind == "AdaDelta" else 0.05}
    if kind in ("SGD", "Nesterov"):
        fields["momentum"] = 0.9
    if kind == "AdaDelta":
        fields["momentum"] = 0.95
        fields["delta"] = 1e-6
    solver = tiny_solver(**fields)
    solver.net.forward()
    before = solver.net.loss
    solver.step(30)
    solver.net.forward()
    assert solver.net.loss < 0.8 * before, kind
    solver.close()
