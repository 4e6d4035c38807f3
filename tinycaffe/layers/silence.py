"""Silence: consume blobs nobody else uses, so they are not net outputs (Caffe's SilenceLayer)."""
from __future__ import annotations

from .base import Layer
from .registry import register


@register("Silence")
class SilenceLayer(Layer):
    min_bottoms = 1
    min_tops = max_tops = 0

    def reshape(self, bottoms, tops):
        pass

    def forward(self, bottoms, tops):
        pass

    def backward(self, tops, propagate_down, bottoms):
        # No top depends on the bottoms: their gradient is zero.
        for b, down in zip(bottoms, propagate_down):
            if down:
                b.diff[...] = 0
