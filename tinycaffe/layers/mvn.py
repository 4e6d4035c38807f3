"""MVN: mean-variance normalisation, as Caffe's MVNLayer computes it.

Each group of values is made zero-mean and (with ``normalize_variance``)
divided by its standard deviation. A group is one (n, c) slice over the
spatial axes, or, with ``across_channels``, one item n over all its axes.

Like Caffe, ``eps`` is added to the standard deviation (not the variance):
    y = (x - mean) / (sqrt(mean((x - mean)^2)) + eps)
and backward uses Caffe's formula
    dx = (dy - mean(dy) - y * mean(y * dy)) / (std + eps),
which is the exact gradient when eps is 0 (eps defaults to 1e-9).
"""
from __future__ import annotations

import math

from .base import Layer
from .registry import register


@register("MVN")
class MVNLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if len(shape) < 1:
            self.fail("the bottom needs at least one axis (the batch axis)")
        # Caffe's num()/channels(): the first two axes (channels 1 if absent).
        groups = shape[0] if self.across_channels else shape[0] * (shape[1] if len(shape) > 1 else 1)
        total = math.prod(shape)
        self._groups = groups
        self._dim = total // groups if groups else 0
        tops[0].reshape(shape)
        self._std = None  # (groups, 1): std + eps, kept for backward

    def _view(self, a):
        return a.reshape(self._groups, self._dim)

    def forward(self, bottoms, tops):
        xp = self.xp
        x = self._view(bottoms[0].data)
        y = self._view(tops[0].data)
        if self._dim == 0:
            return
        xp.subtract(x, x.mean(axis=1, keepdims=True), out=y)
        if self.normalize_variance:
            var = (y * y).mean(axis=1, keepdims=True)
            self._std = xp.sqrt(var) + self.eps
            y /= self._std

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0] or self._dim == 0:
            return
        dy = self._view(tops[0].diff)
        dx = self._view(bottoms[0].diff)
        if self.normalize_variance:
            y = self._view(tops[0].data)
            inner = dy - dy.mean(axis=1, keepdims=True) - y * (y * dy).mean(axis=1, keepdims=True)
            dx[...] = inner / self._std
        else:
            dx[...] = dy - dy.mean(axis=1, keepdims=True)
