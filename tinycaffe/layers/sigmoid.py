"""Sigmoid: y = 1 / (1 + exp(-x)), elementwise (Caffe's SigmoidLayer)."""
from __future__ import annotations

from .base import NeuronLayer
from .registry import register


@register("Sigmoid")
class SigmoidLayer(NeuronLayer):
    def forward(self, bottoms, tops):
        xp, y = self.xp, tops[0].data
        # Caffe's form 0.5 * tanh(x / 2) + 0.5: no exp overflow for large |x|.
        xp.multiply(bottoms[0].data, 0.5, out=y)
        xp.tanh(y, out=y)
        y *= 0.5
        y += 0.5

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # dy/dx = y (1 - y): needs only the output, so in-place is fine.
        y = tops[0].data
        self.xp.multiply(tops[0].diff, y * (1.0 - y), out=bottoms[0].diff)
