"""SigmoidCrossEntropyLoss: cross-entropy of sigmoid(x) against targets in [0, 1]
(Caffe's SigmoidCrossEntropyLossLayer).

Per value: -[t log p + (1 - t) log(1 - p)] with p = sigmoid(x), computed in
Caffe's stable form max(x, 0) - x t + log(1 + exp(-|x|)). The sum is divided
by the normalizer of ``loss_param``: ``normalization`` if given, else
``normalize`` (true: VALID, false: BATCH_SIZE), else BATCH_SIZE (this
layer's default in Caffe, unlike the other losses). Values whose target,
truncated to an integer, equals ``ignore_label`` are left out.
A loss layer: loss_weight 1 by default; no gradient reaches the targets.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetError
from .base import Layer
from .loss_common import BATCH_SIZE, normalization_mode, normalizer
from .registry import register


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(Layer):
    min_bottoms = max_bottoms = 2
    min_tops = max_tops = 1

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def setup(self, bottoms, tops):
        p = self.param.loss_param
        if p.HasField("normalization") or p.HasField("normalize"):
            self.normalization = normalization_mode(p)
        else:
            self.normalization = BATCH_SIZE
        self.ignore_label = int(p.ignore_label) if p.HasField("ignore_label") else None

    def reshape(self, bottoms, tops):
        a, b = bottoms[0].shape, bottoms[1].shape
        if not a or not b or a[0] != b[0]:
            self.fail(f"predictions and targets must have the same first dimension; got shapes {a} and {b}")
        if bottoms[0].count != bottoms[1].count:
            self.fail(f"predictions and targets must have the same count; got shapes {a} and {b}")
        self._outer = a[0]
        self._count = bottoms[0].count
        tops[0].reshape(())

    def forward(self, bottoms, tops):
        xp = self.xp
        x = bottoms[0].data
        t = bottoms[1].data.reshape(x.shape)
        # kept for backward: p = sigmoid(x) = 0.5 tanh(x / 2) + 0.5
        self._prob = xp.tanh(x * 0.5)
        self._prob *= 0.5
        self._prob += 0.5
        loss = xp.log1p(xp.exp(-xp.abs(x)))
        loss -= x * t
        loss += xp.maximum(x, 0)
        if self.ignore_label is not None:
            self._valid = t.astype(np.int64) != self.ignore_label
            loss *= self._valid
            valid_count = int(self._valid.sum())
        else:
            self._valid = None
            valid_count = self._count
        # Caffe's normalizer with outer = N, inner = values per item (never below 1).
        self._normalizer = normalizer(self.normalization, self._outer,
                                      self._count // max(self._outer, 1), valid_count)
        tops[0].data[...] = loss.sum(dtype=np.float64) / self._normalizer

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[1]:
            raise NetError(f"layer '{self.name}' (type {self.type}) cannot backpropagate to its "
                           "targets (bottom 1)")
        if not propagate_down[0]:
            return
        xp = self.xp
        dx = bottoms[0].diff
        xp.subtract(self._prob, bottoms[1].data.reshape(dx.shape), out=dx)
        if self._valid is not None:
            dx *= self._valid
        dx *= (tops[0].diff / self._normalizer).astype(dx.dtype, copy=False)
