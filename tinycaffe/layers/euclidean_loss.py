"""EuclideanLoss: sum((a - b)^2) / (2 N), N the first dimension (Caffe's EuclideanLossLayer).

A loss layer: its top (a scalar) has loss_weight 1 by default, and backward
scales the gradient by the top's diff (the loss weight).
"""
from __future__ import annotations

from .base import Layer
from .registry import register


@register("EuclideanLoss")
class EuclideanLossLayer(Layer):
    min_bottoms = max_bottoms = 2
    min_tops = max_tops = 1

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def reshape(self, bottoms, tops):
        a, b = bottoms[0].shape, bottoms[1].shape
        if not a or not b or a[0] != b[0]:
            self.fail(f"the two bottoms must have the same first dimension; got shapes {a} and {b}")
        if bottoms[0].count != bottoms[1].count:
            self.fail(f"the two bottoms must have the same count per item; got shapes {a} and {b}")
        tops[0].reshape(())
        self._diff = self.xp.empty(a, dtype=bottoms[0].data.dtype)

    def forward(self, bottoms, tops):
        xp = self.xp
        d = self._diff
        xp.subtract(bottoms[0].data, bottoms[1].data.reshape(d.shape), out=d)
        flat = d.reshape(-1)
        tops[0].data[...] = xp.dot(flat, flat) / (2.0 * d.shape[0])

    def backward(self, tops, propagate_down, bottoms):
        n = self._diff.shape[0]
        for sign, b, down in ((1.0, bottoms[0], propagate_down[0]), (-1.0, bottoms[1], propagate_down[1])):
            if down:
                # d loss / d a = (a - b) / N; d loss / d b = -(a - b) / N; times the loss weight
                self.xp.multiply(self._diff.reshape(b.shape), tops[0].diff * (sign / n), out=b.diff)
