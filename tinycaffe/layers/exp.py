"""Exp: y = base ^ (shift + scale * x); base -1 (the default) means e (Caffe's ExpLayer)."""
from __future__ import annotations

import math

from .base import NeuronLayer
from .registry import register


@register("Exp")
class ExpLayer(NeuronLayer):
    def setup(self, bottoms, tops):
        p = self.param.exp_param
        base, scale, shift = float(p.base), float(p.scale), float(p.shift)
        if base != -1.0 and not base > 0:
            self.bad_param(f"base must be strictly positive, or -1 for e; got {base}")
        log_base = 1.0 if base == -1.0 else math.log(base)
        # y = outer * exp(inner * x), with inner = ln(base) * scale, outer = base^shift.
        self.inner_scale = log_base * scale
        self.outer_scale = 1.0 if shift == 0 else (math.exp(shift) if base == -1.0 else base ** shift)

    def forward(self, bottoms, tops):
        xp, y = self.xp, tops[0].data
        if self.inner_scale == 1.0:
            xp.exp(bottoms[0].data, out=y)
        else:
            xp.multiply(bottoms[0].data, self.inner_scale, out=y)
            xp.exp(y, out=y)
        if self.outer_scale != 1.0:
            y *= self.outer_scale

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # dy/dx = inner_scale * y: the output suffices, so in-place is fine.
        dx = bottoms[0].diff
        self.xp.multiply(tops[0].diff, tops[0].data, out=dx)
        if self.inner_scale != 1.0:
            dx *= self.inner_scale
