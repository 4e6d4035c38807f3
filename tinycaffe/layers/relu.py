"""ReLU: max(x, 0), or a leaky slope for x < 0 (negative_slope)."""
from __future__ import annotations

from .base import NeuronLayer
from .registry import register


@register("ReLU")
class ReLU(NeuronLayer):
    def setup(self, bottoms, tops):
        self.slope = float(self.param.relu_param.negative_slope)

    def forward(self, bottoms, tops):
        x, y = bottoms[0].data, tops[0].data
        if self.slope == 0.0:
            self.xp.maximum(x, 0, out=y)
        else:
            # y = max(x,0) + slope*min(x,0), written so it is safe in place.
            neg = self.xp.minimum(x, 0)
            self.xp.maximum(x, 0, out=y)
            y += self.slope * neg

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # In place, the top data is post-ReLU; its sign still tells which side x was on.
        x = tops[0].data if tops[0] is bottoms[0] else bottoms[0].data
        dy = tops[0].diff
        scale = (x > 0).astype(dy.dtype)
        if self.slope:
            scale += self.slope * (x <= 0)
        bottoms[0].diff[...] = dy * scale
