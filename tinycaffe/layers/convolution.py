"""Convolution: 2-D cross-correlation with groups, dilation, pads and strides."""
from __future__ import annotations

import numpy as np

from .. import kernels
from .base import Layer
from .params import opt, pair
from .registry import register


@register("Convolution")
class Convolution(Layer):
    min_bottoms = 1
    min_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.convolution_param
        where = f"layer '{self.name}'"
        if len(bottoms) != len(tops):
            self.bad_param(f"needs one top per bottom, got {len(bottoms)} bottoms and {len(tops)} tops")
        if p.axis != 1:
            self.bad_param("only channel axis 1 is supported")
        self.kernel = pair(where, "kernel_size", p.kernel_size, opt(p, "kernel_h"), opt(p, "kernel_w"), None)
        self.stride = pair(where, "stride", p.stride, opt(p, "stride_h"), opt(p, "stride_w"), 1)
        self.pad = pair(where, "pad", p.pad, opt(p, "pad_h"), opt(p, "pad_w"), 0)
        self.dilation = pair(where, "dilation", p.dilation, None, None, 1)
        if min(self.kernel) <= 0 or min(self.stride) <= 0 or min(self.dilation) <= 0:
            self.bad_param(f"kernel {self.kernel}, stride {self.stride} and dilation {self.dilation} must be positive")
        self.num_output = int(p.num_output)
        self.group = int(p.group)
        if self.num_output <= 0:
            self.bad_param("num_output must be set and positive")
        if self.group <= 0 or self.num_output % self.group:
            self.bad_param(f"num_output {self.num_output} is not divisible by group {self.group}")
        shape = bottoms[0].shape
        if len(shape) != 4:
            self.fail(f"needs a 4-axis (N,C,H,W) bottom, got shape {shape}")
        self.channels = shape[1]
        if self.channels % self.group:
            self.fail(f"input channels {self.channels} are not divisible by group {self.group}")
        self.add_param_blob(self.weight_shape(), "weight", p.weight_filler)
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.add_param_blob((self.num_output,), "bias", p.bias_filler)

    def weight_shape(self) -> tuple[int, ...]:
        return (self.num_output, self.channels // self.group, *self.kernel)

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        oh = kernels.conv_out_size(h, self.kernel[0], self.stride[0], self.pad[0], self.dilation[0])
        ow = kernels.conv_out_size(w, self.kernel[1], self.stride[1], self.pad[1], self.dilation[1])
        return oh, ow

    def reshape(self, bottoms, tops):
        first = bottoms[0].shape
        for b, t in zip(bottoms, tops):
            if len(b.shape) != 4 or b.shape[1:] != first[1:] or b.shape[1] != self.channels:
                self.fail(
                    f"bottom '{b.name}' has shape {b.shape}; expected (N, {self.channels}, H, W) "
                    f"matching {first}"
                )
            oh, ow = self.output_hw(b.shape[2], b.shape[3])
            if oh <= 0 or ow <= 0:
                self.fail(
                    f"kernel {self.kernel} (dilation {self.dilation}, pad {self.pad}) does not fit "
                    f"input {b.shape[2]}x{b.shape[3]}"
                )
            t.reshape((b.shape[0], self.num_output, oh, ow))

    # Set by a Net that folds a following in-place ReLU (negative_slope 0) into
    # this layer: the kernel then applies max(y, 0) in its output pass.
    fused_relu: bool = False

    def forward(self, bottoms, tops):
        w = self.blobs[0].data
        b = self.blobs[1].data if self.bias_term else None
        for bottom, top in zip(bottoms, tops):
            kernels.conv_forward(
                bottom.data, w, b, self.stride, self.pad, self.dilation, self.group, out=top.data,
                relu=self.fused_relu,
            )

    def backward(self, tops, propagate_down, bottoms):
        w = self.blobs[0]
        dw_out = _direct(w.diff)
        db_out = _direct(self.blobs[1].diff) if self.bias_term else None
        for i, (bottom, top) in enumerate(zip(bottoms, tops)):
            dx_out = _direct(bottom.diff) if propagate_down[i] else None
            # The kernel adds the parameter gradients into the blobs' diffs and
            # writes dx into the bottom's diff: no temporaries, no copies.
            dx, dw, db = kernels.conv_backward(
                bottom.data, w.data, top.diff, self.stride, self.pad, self.dilation, self.group,
                need_dx=propagate_down[i], dx_out=dx_out, dw_out=dw_out, db_out=db_out,
            )
            if dw_out is None:
                w.diff[...] += dw
            if self.bias_term and db_out is None:
                self.blobs[1].diff[...] += db
            if propagate_down[i] and dx_out is None:
                bottom.diff[...] = dx


def _direct(a):
    """``a`` when a kernel may write into it directly (C-contiguous float32), else None."""
    return a if a.flags.c_contiguous and a.dtype == np.float32 else None
