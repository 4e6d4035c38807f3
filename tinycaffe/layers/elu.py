"""ELU: y = x for x > 0, alpha * (exp(x) - 1) otherwise (Caffe's ELULayer)."""
from __future__ import annotations

from .base import NeuronLayer
from .registry import register


@register("ELU")
class ELULayer(NeuronLayer):
    def setup(self, bottoms, tops):
        self.alpha = float(self.param.elu_param.alpha)

    def forward(self, bottoms, tops):
        xp = self.xp
        x, y = bottoms[0].data, tops[0].data
        neg = xp.minimum(x, 0)
        xp.expm1(neg, out=neg)
        neg *= self.alpha
        xp.maximum(x, 0, out=y)
        y += neg

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        # Caffe: dy/dx = 1 where x > 0, alpha + y elsewhere. In-place, "x" is
        # already y, whose sign matches x's for alpha >= 0 (as in Caffe).
        x, y = bottoms[0].data, tops[0].data
        slope = xp.where(x > 0, 1.0, y + self.alpha).astype(x.dtype, copy=False)
        xp.multiply(tops[0].diff, slope, out=bottoms[0].diff)
