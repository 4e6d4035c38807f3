"""Power: y = (shift + scale * x) ^ power (Caffe's PowerLayer)."""
from __future__ import annotations

import numpy as np

from .base import Layer
from .registry import register


@register("Power")
class PowerLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True  # backward then uses a copy of the input kept by forward

    def setup(self, bottoms, tops):
        p = self.param.power_param
        self.power = float(p.power)
        self.scale = float(p.scale)
        self.shift = float(p.shift)
        self.diff_scale = self.power * self.scale
        self._saved = None

    def reshape(self, bottoms, tops):
        # Backward reads x unless the gradient is a constant (power 1, or diff_scale 0).
        needs_input = self.diff_scale != 0 and self.power != 1.0
        self._saved = self.in_place_buffer(bottoms[0], tops[0], self._saved)
        if not needs_input:
            self._saved = None

    def _affine(self, x, out):
        if self.scale != 1.0:
            self.xp.multiply(x, self.scale, out=out)
        elif out is not x:
            self.xp.copyto(out, x)
        if self.shift != 0.0:
            out += self.shift
        return out

    def forward(self, bottoms, tops):
        xp = self.xp
        x, y = bottoms[0].data, tops[0].data
        if self.diff_scale == 0:
            # A constant: 1 for power 0, shift^power for scale 0 (Caffe's special case;
            # C's pow: 0^-1 is inf and (-1)^0.5 NaN, where Python would raise or go complex).
            with np.errstate(divide="ignore", invalid="ignore"):
                y[...] = 1.0 if self.power == 0 else np.power(np.float64(self.shift), self.power)
            return
        if self._saved is not None:
            xp.copyto(self._saved, x)
        self._affine(x, y)
        if self.power != 1.0:
            xp.power(y, self.power, out=y)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        dx = bottoms[0].diff
        if self.diff_scale == 0:
            dx[...] = 0
            return
        dy = tops[0].diff
        if self.power == 1.0:
            xp.multiply(dy, self.diff_scale, out=dx)
            return
        x = self._saved if self._saved is not None else bottoms[0].data
        if self.power == 2.0:
            # dy/dx = 2 scale (shift + scale x)
            grad = self._affine(x, xp.empty_like(x))
            grad *= self.diff_scale
        elif self.shift == 0.0:
            # dy/dx = power * y / x (Caffe's form for shift 0)
            grad = xp.divide(tops[0].data, x)
            grad *= self.power
        else:
            # dy/dx = power * scale * y / (shift + scale x)
            grad = self._affine(x, xp.empty_like(x))
            xp.divide(tops[0].data, grad, out=grad)
            grad *= self.diff_scale
        xp.multiply(dy, grad, out=dx)
