"""The six update rules of Caffe's SGDSolver family (``ComputeUpdateValue``).

Each rule turns one parameter's (already normalized and regularized)
gradient ``diff`` into the value that Caffe's ``Net::Update`` then subtracts
from the weights, updating the rule's history arrays on the way. Rules work
in place on the arrays they are given, with ``scratch`` as their only
temporaries, so a training step allocates nothing. They use no state besides
their arguments, which makes each one testable against a hand computation.

With g = diff, lr = local rate (rate * lr_mult), and histories h (h2):

- SGD:      h = momentum*h + lr*g;                          g = h
- Nesterov: h' = momentum*h + lr*g;                         g = (1+momentum)*h' - momentum*h
- AdaGrad:  h += g^2;                                       g = lr * g / (sqrt(h) + delta)
- RMSProp:  h = rms_decay*h + (1-rms_decay)*g^2;            g = lr * g / (sqrt(h) + delta)
- AdaDelta: h = m*h + (1-m)*g^2;  g *= sqrt((h2+delta)/(h+delta));  h2 = m*h2 + (1-m)*g^2;  g *= lr
- Adam:     h = b1*h + (1-b1)*g;  h2 = b2*h2 + (1-b2)*g^2;
            g = lr * sqrt(1-b2^t)/(1-b1^t) * h / (sqrt(h2) + delta),  t = iteration + 1
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..backend import get_array_module

Array = Any  # numpy or cupy ndarray


@dataclass(frozen=True)
class Hyper:
    """The SolverParameter values the rules read (Caffe's names; Adam's beta1/beta2 are momentum/momentum2)."""

    momentum: float = 0.0
    momentum2: float = 0.999
    delta: float = 1e-8
    rms_decay: float = 0.99

    @classmethod
    def from_param(cls, param) -> "Hyper":
        return cls(param.momentum, param.momentum2, param.delta, param.rms_decay)


def sgd(g: Array, hist: Sequence[Array], scratch: Sequence[Array], lr: float, hp: Hyper, t: int) -> None:
    """Momentum SGD: the history is the step itself."""
    (h,) = hist
    g *= lr  # g is overwritten by the step anyway: use it as the lr*g temporary
    h *= hp.momentum
    h += g
    g[...] = h


def nesterov(g: Array, hist: Sequence[Array], scratch: Sequence[Array], lr: float, hp: Hyper, t: int) -> None:
    """Nesterov momentum: step back the old momentum, over-step the new one."""
    (h,), (old,) = hist, scratch
    old[...] = h
    g *= lr
    h *= hp.momentum
    h += g
    g[...] = h
    g *= 1.0 + hp.momentum
    old *= hp.momentum
    g -= old


def adagrad(g: Array, hist: Sequence[Array], scratch: Sequence[Array], lr: float, hp: Hyper, t: int) -> None:
    """AdaGrad: divide by the root of all squared gradients so far."""
    (h,), (tmp,) = hist, scratch
    _square(g, tmp)
    h += tmp
    _sqrt(h, tmp)
    tmp += hp.delta
    g /= tmp
    g *= lr


def rmsprop(g: Array, hist: Sequence[Array], scratch: Sequence[Array], lr: float, hp: Hyper, t: int) -> None:
    """RMSProp: divide by the root of a running mean of squared gradients."""
    (h,), (tmp,) = hist, scratch
    _square(g, tmp)
    tmp *= 1.0 - hp.rms_decay
    h *= hp.rms_decay
    h += tmp
    _sqrt(h, tmp)
    tmp += hp.delta
    g /= tmp
    g *= lr


def adadelta(g: Array, hist: Sequence[Array], scratch: Sequence[Array], lr: float, hp: Hyper, t: int) -> None:
    """AdaDelta: scale by RMS(past updates) / RMS(gradients); ``momentum`` is the decay."""
    (h, h2), (tmp, den) = hist, scratch
    m = hp.momentum
    _square(g, tmp)
    tmp *= 1.0 - m
    h *= m
    h += tmp
    tmp[...] = h2
    tmp += hp.delta
    den[...] = h
    den += hp.delta
    tmp /= den
    _sqrt(tmp, tmp)
    g *= tmp
    _square(g, tmp)
    tmp *= 1.0 - m
    h2 *= m
    h2 += tmp
    g *= lr


def adam(g: Array, hist: Sequence[Array], scratch: Sequence[Array], lr: float, hp: Hyper, t: int) -> None:
    """Adam with Caffe's bias correction folded into the rate; ``t`` counts from 1."""
    (m, v), (tmp,) = hist, scratch
    b1, b2 = hp.momentum, hp.momentum2
    correction = math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
    m *= b1
    tmp[...] = g
    tmp *= 1.0 - b1
    m += tmp
    _square(g, tmp)
    tmp *= 1.0 - b2
    v *= b2
    v += tmp
    _sqrt(v, tmp)
    tmp += hp.delta
    g[...] = m
    g /= tmp
    g *= lr * correction


def _square(a: Array, out: Array) -> None:
    out[...] = a
    out *= a


def _sqrt(a: Array, out: Array) -> None:
    get_array_module(a).sqrt(a, out=out)  # numpy or cupy, whichever holds the array


@dataclass(frozen=True)
class UpdateRule:
    """A rule with how many history and scratch arrays (parameter-shaped) it needs."""

    name: str
    apply: Callable[[Array, Sequence[Array], Sequence[Array], float, Hyper, int], None]
    histories: int
    scratch: int


RULES: dict[str, UpdateRule] = {
    r.name: r
    for r in (
        UpdateRule("SGD", sgd, 1, 0),
        UpdateRule("Nesterov", nesterov, 1, 1),
        UpdateRule("AdaGrad", adagrad, 1, 1),
        UpdateRule("RMSProp", rmsprop, 1, 1),
        UpdateRule("AdaDelta", adadelta, 2, 2),
        UpdateRule("Adam", adam, 2, 1),
    )
}
