"""ContrastiveLoss: Hadsell et al.'s loss on feature pairs, as Caffe's ContrastiveLossLayer.

Bottoms: a and b (N x C..., same shape) and a similarity label y (N values;
Caffe reads it as an int, so any value that truncates to non-zero means
"similar"). With d the Euclidean distance between a_n and b_n:
    similar:      d^2
    dissimilar:   max(margin - d, 0)^2       (legacy_version: max(margin - d^2, 0))
summed over n and divided by 2N. Backward follows Caffe, including the 1e-4
it adds to d in the dissimilar gradient to avoid dividing by zero.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer
from .registry import register


@register("ContrastiveLoss")
class ContrastiveLossLayer(Layer):
    min_bottoms = max_bottoms = 3
    min_tops = max_tops = 1

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def setup(self, bottoms, tops):
        p = self.param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy = bool(p.legacy_version)

    def reshape(self, bottoms, tops):
        a, b, y = bottoms[0].shape, bottoms[1].shape, bottoms[2].shape
        if not a or a != b:
            self.fail(f"the two feature bottoms must have the same shape (N x C...); got {a} and {b}")
        if math.prod(y) != a[0]:
            self.fail(f"the similarity label must hold one value per item (N={a[0]}); got shape {y}")
        self.num = a[0]
        self._diff = self.xp.empty(a, dtype=bottoms[0].data.dtype).reshape(self.num, -1)
        tops[0].reshape(())

    def _similar(self, bottoms):
        # Caffe: static_cast<int>(label) -- truncation toward zero, then non-zero = similar.
        return bottoms[2].data.reshape(-1).astype(np.int64) != 0

    def forward(self, bottoms, tops):
        xp = self.xp
        d = self._diff
        xp.subtract(bottoms[0].data.reshape(d.shape), bottoms[1].data.reshape(d.shape), out=d)
        self._dist_sq = (d * d).sum(axis=1)
        similar = self._similar(bottoms)
        if self.legacy:
            dissimilar = xp.maximum(self.margin - self._dist_sq, 0.0)
        else:
            dissimilar = xp.maximum(self.margin - xp.sqrt(self._dist_sq), 0.0) ** 2
        per_item = xp.where(similar, self._dist_sq, dissimilar)
        tops[0].data[...] = per_item.sum() / (2.0 * self.num)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[2]:
            self.fail("cannot backpropagate to the similarity label input")
        xp = self.xp
        similar = self._similar(bottoms)
        if self.legacy:
            mdist = self.margin - self._dist_sq
            factor = xp.where(mdist > 0, -1.0, 0.0)
        else:
            dist = xp.sqrt(self._dist_sq)
            mdist = self.margin - dist
            factor = xp.where(mdist > 0, -mdist / (dist + 1e-4), 0.0)
        # per-item multiplier of (a - b) for d loss / d a
        coeff = xp.where(similar, 1.0, factor).astype(self._diff.dtype)
        weight = float(tops[0].diff.reshape(-1)[0]) / self.num
        for sign, blob, down in ((1.0, bottoms[0], propagate_down[0]), (-1.0, bottoms[1], propagate_down[1])):
            if down:
                grad = self._diff * (coeff[:, None] * (sign * weight))
                blob.diff[...] = grad.reshape(blob.shape)
