"""Caffe-style gradient checks for one layer run alone.

``check_gradient`` compares a layer's backward with central differences of
its forward, as Caffe's GradientChecker does: each checked value x is moved
by +-step, the objective sum_i <w_i, top_i> (fixed random weights w_i, which
backward receives as the top diffs) is evaluated at both points, and
|analytic - numeric| must stay within threshold * max(|analytic|, |numeric|, 1).

The layers compute in float32, so steps are large (1e-2) and the objective is
summed in float64. Values within ``kink_range`` of a kink (where the function
is not differentiable, e.g. |x| = 0 for ReLU-like layers) are skipped, as
Caffe's checker does. Before every forward the layer's random generator is
reseeded and its blobs restored, so random (Dropout) and stateful
(BatchNorm's running averages) layers evaluate the same function each time.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


from .util import make_layer


def build_layer(text: str, bottoms: Sequence[np.ndarray], n_tops: int = 1, phase: str = "train",
                params: Sequence[np.ndarray] | None = None, seed: int = 0, in_place: bool = False):
    """``util.make_layer`` with the TRAIN phase by default (gradients are checked in training)."""
    return make_layer(text, bottoms, n_tops, phase, seed, params, in_place)


def forward_backward(text: str, bottoms: Sequence[np.ndarray], top_diffs: Sequence[np.ndarray] | None = None,
                     n_tops: int = 1, phase: str = "train", params: Sequence[np.ndarray] | None = None,
                     propagate_down: Sequence[bool] | None = None, seed: int = 0, in_place: bool = False):
    """One forward and one backward; returns (tops, bottom_diffs, param_diffs, layer) as NumPy copies.

    Top diffs default to ones; bottom and parameter diffs start at zero.
    """
    layer, bb, tb = build_layer(text, bottoms, n_tops, phase, params, seed, in_place)
    layer.forward(bb, tb)
    tops = [np.array(t.data) for t in tb]
    for i, t in enumerate(tb):
        t.diff[...] = 1.0 if top_diffs is None else np.asarray(top_diffs[i], dtype=np.float32)
    if not in_place:
        for b in bb:
            b.diff[...] = 0.0
    for p in layer.blobs:
        p.diff[...] = 0.0
    down = list(propagate_down) if propagate_down is not None else [True] * len(bb)
    layer.backward(tb, down, bb)
    return (tops, [np.array(b.diff) for b in bb], [np.array(p.diff) for p in layer.blobs], layer)


def check_gradient(text: str, bottoms: Sequence[np.ndarray], n_tops: int = 1, phase: str = "train",
                   params: Sequence[np.ndarray] | None = None, check_bottoms: Sequence[int] | None = None,
                   check_params: bool = True, kink: float | Callable[[float], bool] | None = None,
                   kink_range: float | None = None, step: float = 1e-2, threshold: float = 1e-2,
                   seed: int = 0) -> int:
    """Check the layer's backward against central differences; returns how many values were checked.

    ``check_bottoms``: indices of the bottoms to check (default all); the
    others get propagate_down False. ``check_params``: also check every
    learnable blob. ``kink``: a float k skips values with | |x| - k | <=
    kink_range (default: step), as Caffe's checker does; a callable
    ``kink(x) -> bool`` skips the values it returns True for.
    Raises AssertionError naming the first value that disagrees.
    """
    layer, bb, tb = build_layer(text, bottoms, n_tops, phase, params, seed)
    if check_bottoms is None:
        check_bottoms = list(range(len(bb)))
    propagate_down = [i in check_bottoms for i in range(len(bb))]
    kink_range = step if kink_range is None else kink_range
    saved_params = [np.array(p.data) for p in layer.blobs]
    weights_rng = np.random.default_rng(seed + 1)

    def restore():
        for p, v in zip(layer.blobs, saved_params):
            p.data[...] = v
        layer.rng = np.random.default_rng(seed)

    restore()
    layer.forward(bb, tb)
    weights = [weights_rng.standard_normal(t.shape) for t in tb]

    def objective() -> float:
        layer.rng = np.random.default_rng(seed)
        layer.forward(bb, tb)
        return float(sum(np.sum(w * np.asarray(t.data, dtype=np.float64)) for w, t in zip(weights, tb)))

    # Analytic gradients.
    restore()
    objective()
    for t, w in zip(tb, weights):
        t.diff[...] = w
    for b in bb:
        b.diff[...] = 0.0
    for p in layer.blobs:
        p.diff[...] = 0.0
    layer.backward(tb, propagate_down, bb)
    targets = [(f"bottom {i}", bb[i], np.array(bb[i].diff, dtype=np.float64)) for i in check_bottoms]
    if check_params:
        targets += [(f"param blob {j}", p, np.array(p.diff, dtype=np.float64))
                    for j, p in enumerate(layer.blobs)]

    def skipped(v: float) -> bool:
        if kink is None:
            return False
        if callable(kink):
            return bool(kink(v))
        return abs(abs(v) - kink) <= kink_range

    checked = 0
    for what, blob, analytic in targets:
        is_param = what.startswith("param")
        for k in range(blob.count):
            restore()
            flat = blob.data.reshape(-1)
            original = float(flat[k])
            if skipped(original):
                continue
            flat[k] = original + step
            hi_x = float(flat[k])
            f_hi = objective()
            restore()
            flat = blob.data.reshape(-1)
            flat[k] = original - step
            lo_x = float(flat[k])
            f_lo = objective()
            # restore the bottom value (params are restored by restore())
            if not is_param:
                flat[k] = original
            numeric = (f_hi - f_lo) / (hi_x - lo_x)
            a = float(analytic.reshape(-1)[k])
            scale = max(abs(a), abs(numeric), 1.0)
            if abs(a - numeric) > threshold * scale:
                index = np.unravel_index(k, blob.shape) if blob.shape else ()
                raise AssertionError(
                    f"{layer.type} layer: gradient of {what} at {tuple(int(i) for i in index)} "
                    f"(value {original:.6g}): analytic {a:.6g}, numeric {numeric:.6g}"
                )
            checked += 1
    restore()
    return checked
