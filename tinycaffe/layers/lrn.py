"""LRN: local response normalisation across channels or within each channel."""
from __future__ import annotations

from .. import kernels
from ..proto import caffe_pb2
from .base import Layer
from .registry import register

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS
WITHIN_CHANNEL = caffe_pb2.LRNParameter.WITHIN_CHANNEL


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

    # Set by a Net's backward that folds the backward of an in-place ReLU
    # (negative_slope 0) on this layer's bottom into this one.
    fused_relu_backward: bool = False

    def forward(self, bottoms, tops):
        kernels.lrn_forward(
            bottoms[0].data, self.size, self.alpha, self.beta, self.k, self.region, out=tops[0].data
        )

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        args = (bottoms[0].data, tops[0].data, tops[0].diff, self.size, self.alpha, self.beta, self.k,
                self.region)
        dx = bottoms[0].diff
        relu = self.fused_relu_backward
        if dx.flags.c_contiguous:  # written in place: no temporary, no copy
            kernels.lrn_backward(*args, out=dx, relu_mask=relu)
        else:
            dx[...] = kernels.lrn_backward(*args, relu_mask=relu)
