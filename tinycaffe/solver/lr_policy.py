"""Learning-rate policies: Caffe's ``SGDSolver::GetLearningRate``.

With ``it`` the number of updates done so far (Caffe's ``iter_``):

- fixed:     base_lr
- step:      base_lr * gamma ^ floor(it / stepsize)
- exp:       base_lr * gamma ^ it
- inv:       base_lr * (1 + gamma * it) ^ (-power)
- multistep: base_lr * gamma ^ current_step, where current_step moves up one
             stepvalue per call once ``it`` reaches it
- poly:      base_lr * (1 - it / max_iter) ^ power
- sigmoid:   base_lr / (1 + exp(-gamma * (it - stepsize)))

``current_step`` is the solver state Caffe saves in the .solverstate: step
sets it, multistep advances it (at most once per call, as Caffe does).
"""
from __future__ import annotations

import math

import numpy as np

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def check_lr_policy(param, source: str = "<SolverParameter>") -> None:
    """Raise SolverError for an unknown policy or a value Caffe's CHECKs would reject."""
    from .params import SolverError

    policy = param.lr_policy
    if not policy:
        raise SolverError(f"{source}: lr_policy is not set; use one of {', '.join(POLICIES)}")
    if policy not in POLICIES:
        raise SolverError(f"{source}: unknown lr_policy {policy!r}; known policies: {', '.join(POLICIES)}")
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and param.gamma < 0:
        raise SolverError(f"{source}: lr_policy {policy!r} needs gamma >= 0, got {param.gamma:g}")
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        raise SolverError(f"{source}: lr_policy {policy!r} needs a positive stepsize, got {param.stepsize}")
    if policy == "poly" and param.max_iter <= 0:
        raise SolverError(f"{source}: lr_policy 'poly' needs a positive max_iter, got {param.max_iter}")
    if policy == "multistep" and list(param.stepvalue) != sorted(param.stepvalue):
        # Caffe walks stepvalue in order; an unsorted list would stall on the first large value.
        raise SolverError(f"{source}: stepvalue must be in increasing order, got {list(param.stepvalue)}")


def learning_rate(param, it: int, current_step: int) -> tuple[float, int]:
    """The rate for update number ``it`` and the new ``current_step``.

    The rate is rounded to float32, as Caffe keeps it in a ``Dtype``.
    """
    policy = param.lr_policy
    base = param.base_lr
    if policy == "fixed":
        rate = base
    elif policy == "step":
        current_step = it // param.stepsize
        rate = base * param.gamma ** current_step
    elif policy == "exp":
        rate = base * param.gamma ** it
    elif policy == "inv":
        rate = base * (1.0 + param.gamma * it) ** (-param.power)
    elif policy == "multistep":
        if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
            current_step += 1
        rate = base * param.gamma ** current_step
    elif policy == "poly":
        left = 1.0 - it / param.max_iter
        # Past max_iter C's pow gives NaN for a fractional power; Python would go complex.
        rate = base * left ** param.power if left >= 0 or param.power.is_integer() else math.nan
    elif policy == "sigmoid":
        x = -param.gamma * (it - param.stepsize)
        rate = base / (1.0 + math.exp(x)) if x < 700 else 0.0  # exp overflows to inf in C
    else:
        from .params import SolverError

        raise SolverError(f"unknown lr_policy {policy!r}; known policies: {', '.join(POLICIES)}")
    return float(np.float32(rate)), current_step
