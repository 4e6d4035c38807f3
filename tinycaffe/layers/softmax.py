"""Softmax over one axis (default the channel axis)."""
from __future__ import annotations

from .base import Layer
from .params import canonical_axis
from .registry import register


def softmax(xp, x, axis: int, out=None):
    """exp(x - max) / sum, over ``axis``; writes into ``out`` when given."""
    out = xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


@register("Softmax")
class Softmax(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True

    def setup(self, bottoms, tops):
        self.axis_param = self.param.softmax_param.axis

    def reshape(self, bottoms, tops):
        self.axis = canonical_axis(f"layer '{self.name}'", self.axis_param, len(bottoms[0].shape))
        if tops[0] is not bottoms[0]:
            tops[0].reshape(bottoms[0].shape)

    def forward(self, bottoms, tops):
        softmax(self.xp, bottoms[0].data, self.axis, out=tops[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            y, dy = tops[0].data, tops[0].diff
            dot = (dy * y).sum(axis=self.axis, keepdims=True)
            bottoms[0].diff[...] = (dy - dot) * y
