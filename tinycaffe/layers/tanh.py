"""TanH: y = tanh(x), elementwise (Caffe's TanHLayer)."""
from __future__ import annotations

from .base import NeuronLayer
from .registry import register


@register("TanH")
class TanHLayer(NeuronLayer):
    def forward(self, bottoms, tops):
        self.xp.tanh(bottoms[0].data, out=tops[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # dy/dx = 1 - y^2, from the output alone.
        y = tops[0].data
        self.xp.multiply(tops[0].diff, 1.0 - y * y, out=bottoms[0].diff)
