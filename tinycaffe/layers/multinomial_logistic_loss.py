"""MultinomialLogisticLoss: -log p[label] averaged over N, on probabilities (Caffe's layer).

The first bottom holds probabilities (N x C..., all values after the batch
axis are one item's classes); the second one label per item. As in Caffe,
p is floored at 1e-20 before the log, and the loss is divided by N.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer
from .registry import register

LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD


@register("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(Layer):
    min_bottoms = max_bottoms = 2
    min_tops = max_tops = 1

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if not shape:
            self.fail("the probability bottom needs a batch axis")
        self.num = shape[0]
        self.dim = math.prod(shape[1:])
        if bottoms[1].count != self.num:
            self.fail(f"the label bottom must hold one label per item (N={self.num}); got shape {bottoms[1].shape}")
        tops[0].reshape(())

    def _picked(self, bottoms):
        xp = self.xp
        labels = bottoms[1].data.reshape(-1).astype(np.int64)
        bad = (labels < 0) | (labels >= self.dim)
        if bool(bad.any()):
            self.fail(f"label values must lie in [0, {self.dim}); found {int(labels[bad][0])}")
        prob = bottoms[0].data.reshape(self.num, self.dim)
        return labels, xp.maximum(prob[xp.arange(self.num), labels], LOG_THRESHOLD)

    def forward(self, bottoms, tops):
        _, p = self._picked(bottoms)
        tops[0].data[...] = -self.xp.log(p).sum() / self.num

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[1]:
            self.fail("cannot backpropagate to the label input")
        if not propagate_down[0]:
            return
        xp = self.xp
        labels, p = self._picked(bottoms)
        weight = float(tops[0].diff.reshape(-1)[0]) / self.num
        diff = bottoms[0].diff.reshape(self.num, self.dim)
        diff[...] = 0.0
        diff[xp.arange(self.num), labels] = -weight / p
