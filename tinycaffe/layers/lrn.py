"""LRN: local response normalisation across channels or within each channel."""
from __future__ import annotations

from .. import kernels
from .base import Layer
from .registry import register

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1


@register("LRN")
class LRN(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 == 0:
            self.bad_param(f"local_size must be odd, got {self.size}")
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.region = "across" if p.norm_region == ACROSS_CHANNELS else "within"

    def reshape(self, bottoms, tops):
        if len(bottoms[0].shape) != 4:
            self.fail(f"needs a 4-axis (N,C,H,W) bottom, got shape {bottoms[0].shape}")
        tops[0].reshape(bottoms[0].shape)

    def forward(self, bottoms, tops):
        kernels.lrn_forward(
            bottoms[0].data, self.size, self.alpha, self.beta, self.k, self.region, out=tops[0].data
        )

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            bottoms[0].diff[...] = kernels.lrn_backward(
                bottoms[0].data, tops[0].data, tops[0].diff,
                self.size, self.alpha, self.beta, self.k, self.region,
            )
