"""Deconvolution: the transpose of Convolution (learned upsampling), as Caffe defines it."""
from __future__ import annotations

from .. import kernels
from .convolution import Convolution, _direct
from .registry import register


@register("Deconvolution")
class Deconvolution(Convolution):
    """Reads convolution_param like Convolution; weights are (C_in, num_output/group, KH, KW)."""

    def weight_shape(self) -> tuple[int, ...]:
        # Caffe swaps the roles of input and output channels in the weight blob.
        return (self.channels, self.num_output // self.group, *self.kernel)

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        def size(n, k, s, p, d):
            return s * (n - 1) + d * (k - 1) + 1 - 2 * p

        return (
            size(h, self.kernel[0], self.stride[0], self.pad[0], self.dilation[0]),
            size(w, self.kernel[1], self.stride[1], self.pad[1], self.dilation[1]),
        )

    def forward(self, bottoms, tops):
        w = self.blobs[0].data
        b = self.blobs[1].data if self.bias_term else None
        for bottom, top in zip(bottoms, tops):
            y_out = _direct(top.data)
            y = kernels.conv_transpose(
                bottom.data, w, b, self.stride, self.pad, self.dilation, self.group, out_hw=top.shape[2:],
                out=y_out,
            )
            if y_out is None:
                top.data[...] = y
            if self.fused_relu:  # inherited from Convolution; conv_transpose has no fused pass
                self.xp.maximum(top.data, 0, out=top.data)

    def backward(self, tops, propagate_down, bottoms):
        w = self.blobs[0]
        dw_out = _direct(w.diff)
        for i, (bottom, top) in enumerate(zip(bottoms, tops)):
            # Backward of a transposed conv is a conv of the top gradient, and the
            # weight gradient is the conv's weight gradient with the roles swapped
            # (added straight into the weight diff when it can take it).
            _, dw, _ = kernels.conv_backward(
                top.diff, w.data, bottom.data, self.stride, self.pad, self.dilation, self.group,
                need_dx=False, dw_out=dw_out,
            )
            if dw_out is None:
                w.diff[...] += dw
            if self.bias_term:
                self.blobs[1].diff[...] += top.diff.sum(axis=(0, 2, 3))
            if propagate_down[i]:
                dx_out = _direct(bottom.diff)
                dx = kernels.conv_forward(
                    top.diff, w.data, None, self.stride, self.pad, self.dilation, self.group, out=dx_out
                )
                if dx_out is None:
                    bottom.diff[...] = dx
