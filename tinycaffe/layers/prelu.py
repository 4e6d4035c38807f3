"""PReLU: y = max(x, 0) + a * min(x, 0) with a learned slope a per channel (Caffe's PReLULayer).

The slope blob has shape (C,), or () when ``channel_shared``; its default
filler is the constant 0.25. Parameter gradients are accumulated into the
blob's diff (Caffe's convention: the solver clears them each iteration).
"""
from __future__ import annotations

from ..proto import caffe_pb2
from .base import Layer
from .registry import register


@register("PReLU")
class PReLULayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True  # backward then uses a copy of the input kept by forward

    def setup(self, bottoms, tops):
        p = self.param.prelu_param
        shape = bottoms[0].shape
        if len(shape) < 2:
            self.fail(f"needs a bottom with at least 2 axes (N, C, ...), got shape {shape}")
        self.channel_shared = bool(p.channel_shared)
        if p.HasField("filler"):
            filler = p.filler
        else:
            filler = caffe_pb2.FillerParameter(type="constant", value=0.25)
        self.add_param_blob(() if self.channel_shared else (shape[1],), "slope", filler)
        self._saved = None

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if len(shape) < 2:
            self.fail(f"needs a bottom with at least 2 axes (N, C, ...), got shape {shape}")
        if not self.channel_shared and shape[1] != self.blobs[0].count:
            self.fail(f"bottom has {shape[1]} channels but the slope blob has {self.blobs[0].count}")
        self._n, self._c = shape[0], shape[1]
        self._inner = bottoms[0].count // max(self._n * self._c, 1)
        self._saved = self.in_place_buffer(bottoms[0], tops[0], self._saved)

    def _as3(self, a):
        return a.reshape(self._n, self._c, self._inner)

    def _slope(self):
        return self.blobs[0].data.reshape((1, 1, 1) if self.channel_shared else (1, self._c, 1))

    def forward(self, bottoms, tops):
        xp = self.xp
        x = bottoms[0].data
        if self._saved is not None:
            xp.copyto(self._saved, x)
        x3, y3 = self._as3(x), self._as3(tops[0].data)
        neg = xp.minimum(x3, 0)
        neg *= self._slope()
        xp.maximum(x3, 0, out=y3)
        y3 += neg

    def backward(self, tops, propagate_down, bottoms):
        xp = self.xp
        x3 = self._as3(self._saved if self._saved is not None else bottoms[0].data)
        dy3 = self._as3(tops[0].diff)
        # Slope gradient first: in-place, the bottom diff below overwrites dy.
        neg_part = xp.where(x3 <= 0, x3, 0).astype(x3.dtype, copy=False)
        prod = dy3 * neg_part
        if self.channel_shared:
            self.blobs[0].diff += prod.sum()
        else:
            self.blobs[0].diff += prod.sum(axis=(0, 2))
        if propagate_down[0]:
            slope = xp.where(x3 > 0, 1.0, self._slope()).astype(x3.dtype, copy=False)
            xp.multiply(dy3, slope, out=self._as3(bottoms[0].diff))
