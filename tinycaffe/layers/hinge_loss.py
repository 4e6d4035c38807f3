"""HingeLoss: one-vs-all hinge loss on N x K scores, as Caffe's HingeLossLayer.

With t_nk = +1 for the true class (the label) and -1 otherwise:
    L1: sum_nk max(0, 1 - t_nk * x_nk) / N
    L2: sum_nk max(0, 1 - t_nk * x_nk)^2 / N
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer
from .registry import register

L1, L2 = 1, 2


@register("HingeLoss")
class HingeLossLayer(Layer):
    min_bottoms = max_bottoms = 2
    min_tops = max_tops = 1

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def setup(self, bottoms, tops):
        self.norm = int(self.param.hinge_loss_param.norm)
        if self.norm not in (L1, L2):
            self.bad_param(f"unknown hinge_loss_param.norm {self.norm}")

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if not shape:
            self.fail("the score bottom needs a batch axis")
        self.num = shape[0]
        self.dim = math.prod(shape[1:])
        if bottoms[1].count != self.num:
            self.fail(f"the label bottom must hold one label per item (N={self.num}); got shape {bottoms[1].shape}")
        tops[0].reshape(())

    def forward(self, bottoms, tops):
        xp = self.xp
        x = bottoms[0].data.reshape(self.num, self.dim)
        labels = bottoms[1].data.reshape(-1).astype(np.int64)
        bad = (labels < 0) | (labels >= self.dim)
        if bool(bad.any()):
            self.fail(f"label values must lie in [0, {self.dim}); found {int(labels[bad][0])}")
        sign = xp.ones((self.num, self.dim), dtype=x.dtype)
        sign[xp.arange(self.num), labels] = -1.0
        self._sign = sign
        # Caffe keeps max(0, 1 + s * x), s = -1 at the label, +1 elsewhere.
        self._margin = xp.maximum(1.0 + sign * x, 0.0)
        if self.norm == L1:
            loss = self._margin.sum()
        else:
            loss = (self._margin * self._margin).sum()
        tops[0].data[...] = loss / self.num

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[1]:
            self.fail("cannot backpropagate to the label input")
        if not propagate_down[0]:
            return
        weight = float(tops[0].diff.reshape(-1)[0]) / self.num
        if self.norm == L1:
            grad = (self._margin > 0) * self._sign * weight
        else:
            grad = 2.0 * self._margin * self._sign * weight
        bottoms[0].diff[...] = grad.reshape(bottoms[0].shape)
