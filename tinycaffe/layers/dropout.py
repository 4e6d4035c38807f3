"""Dropout (Caffe's DropoutLayer, "inverted" scaling).

TRAIN: keep each value with probability 1 - ratio and scale the kept ones by
1 / (1 - ratio), so that TEST is the identity.
"""
from __future__ import annotations

import numpy as np

from .base import NeuronLayer
from .registry import register


@register("Dropout")
class DropoutLayer(NeuronLayer):
    def setup(self, bottoms, tops):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            self.bad_param(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self._mask = None
        self._device_rng = None

    def _uniform(self, shape):
        """Uniform [0, 1) float32 values, drawn from the layer's (seeded) generator."""
        if self.xp is np:
            return self.rng.random(shape, dtype=np.float32)
        if self._device_rng is None:  # a device generator seeded once from self.rng
            self._device_rng = self.xp.random.RandomState(int(self.rng.integers(2**63 - 1)))
        return self._device_rng.random_sample(shape, dtype=np.float32)

    def forward(self, bottoms, tops):
        xp = self.xp
        x, y = bottoms[0].data, tops[0].data
        if self.phase != "train":
            if y is not x:
                xp.copyto(y, x)
            return
        self._mask = self._uniform(x.shape) > self.ratio
        xp.multiply(x, self._mask, out=y)
        y *= self.scale

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        dy, dx = tops[0].diff, bottoms[0].diff
        if self.phase != "train":
            if dx is not dy:
                xp.copyto(dx, dy)
            return
        xp.multiply(dy, self._mask, out=dx)
        dx *= self.scale
