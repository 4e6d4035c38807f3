"""Log: y = log_base(shift + scale * x); base -1 (the default) means e (Caffe's LogLayer)."""
from __future__ import annotations

import math

from .base import Layer
from .registry import register


@register("Log")
class LogLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True  # backward then uses a copy of the input kept by forward

    def setup(self, bottoms, tops):
        p = self.param.log_param
        base = float(p.base)
        if base != -1.0 and not base > 0:
            self.bad_param(f"base must be strictly positive, or -1 for e; got {base}")
        self.base_scale = 1.0 if base == -1.0 else 1.0 / math.log(base)
        self.input_scale = float(p.scale)
        self.input_shift = float(p.shift)
        self.backward_num_scale = self.input_scale * self.base_scale
        self._saved = None

    def reshape(self, bottoms, tops):
        self._saved = self.in_place_buffer(bottoms[0], tops[0], self._saved)

    def _affine(self, x, out):
        """out = shift + scale * x, skipping the identity parts as Caffe does."""
        if self.input_scale != 1.0:
            self.xp.multiply(x, self.input_scale, out=out)
        elif out is not x:
            self.xp.copyto(out, x)
        if self.input_shift != 0.0:
            out += self.input_shift
        return out

    def forward(self, bottoms, tops):
        xp = self.xp
        x, y = bottoms[0].data, tops[0].data
        if self._saved is not None:
            xp.copyto(self._saved, x)
        xp.log(self._affine(x, y), out=y)
        if self.base_scale != 1.0:
            y *= self.base_scale

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        x = self._saved if self._saved is not None else bottoms[0].data
        # dy/dx = scale * base_scale / (shift + scale * x)
        denom = self._affine(x, xp.empty_like(x))
        dx = bottoms[0].diff
        xp.divide(tops[0].diff, denom, out=dx)
        if self.backward_num_scale != 1.0:
            dx *= self.backward_num_scale
