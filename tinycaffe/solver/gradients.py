"""What Caffe does to the gradients before the update rule sees them.

``SGDSolver::ApplyUpdate`` runs, in this order: ``ClipGradients`` over all
parameters (on the gradient *summed* over ``iter_size`` passes), then for
each parameter ``Normalize`` (divide by ``iter_size``) and ``Regularize``
(add weight decay), then the rule. All functions work in place.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..backend import get_array_module

Array = Any


def clip_gradients(diffs: Sequence[Array], threshold: float) -> float | None:
    """Scale every diff so that their joint L2 norm is at most ``threshold``.

    A negative threshold (Caffe's default -1) disables clipping. Returns the
    scale factor applied, or None when nothing was scaled.
    """
    if threshold < 0:
        return None
    sumsq = 0.0
    for d in diffs:
        flat = d.reshape(-1)
        sumsq += float(get_array_module(d).dot(flat, flat))
    norm = math.sqrt(sumsq)
    if norm <= threshold:
        return None
    scale = threshold / norm
    for d in diffs:
        d *= scale
    return scale


def normalize(diff: Array, iter_size: int) -> None:
    """Average a gradient accumulated over ``iter_size`` forward/backward passes."""
    if iter_size != 1:
        diff *= 1.0 / iter_size


def regularize(data: Array, diff: Array, local_decay: float, kind: str, scratch: Array) -> None:
    """Add weight decay to ``diff``: L2 ``local_decay * data``, L1 ``local_decay * sign(data)``.

    ``local_decay`` is weight_decay * decay_mult; zero does nothing, as in Caffe.
    """
    if not local_decay:
        return
    xp = get_array_module(data)
    if kind == "L2":
        xp.multiply(data, local_decay, out=scratch)
    elif kind == "L1":
        xp.sign(data, out=scratch)
        scratch *= local_decay
    else:
        raise ValueError(f"unknown regularization type {kind!r}")
    diff += scratch
