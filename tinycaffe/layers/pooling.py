"""Pooling: MAX / AVE (and global) with Caffe's ceil rounding and window clipping."""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..proto import caffe_pb2
from .base import Layer
from .params import opt, pair
from .registry import register

_P = caffe_pb2.PoolingParameter
MAX, AVE, STOCHASTIC = _P.MAX, _P.AVE, _P.STOCHASTIC
CEIL, FLOOR = _P.CEIL, _P.FLOOR


@register("Pooling")
class Pooling(Layer):
    min_bottoms = max_bottoms = 1
    min_tops, max_tops = 1, 2

    def setup(self, bottoms, tops):
        p = self.param.pooling_param
        where = f"layer '{self.name}'"
        self.method = int(p.pool)
        if self.method == STOCHASTIC:
            self.bad_param("STOCHASTIC pooling is not supported")
        if len(tops) == 2 and self.method != MAX:
            self.bad_param("only MAX pooling can produce a second (mask) top")
        self.global_pooling = bool(p.global_pooling)
        if self.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
                self.bad_param("with global_pooling the kernel size cannot be given")
            self.kernel = (0, 0)
        else:
            self.kernel = pair(where, "kernel_size", opt(p, "kernel_size") or [], opt(p, "kernel_h"), opt(p, "kernel_w"), None)
            if min(self.kernel) <= 0:
                self.bad_param(f"kernel size {self.kernel} must be positive")
        self.pad = pair(where, "pad", opt(p, "pad") or [], opt(p, "pad_h"), opt(p, "pad_w"), 0)
        self.stride = pair(where, "stride", opt(p, "stride") or [], opt(p, "stride_h"), opt(p, "stride_w"), 1)
        if min(self.stride) <= 0:
            self.bad_param(f"stride {self.stride} must be positive")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            self.bad_param("with global_pooling, pad must be 0 and stride 1")
        if not self.global_pooling and (self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
            self.bad_param(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        self.round_mode = int(p.round_mode)

    def _out(self, size: int, k: int, s: int, pad: int) -> int:
        if self.round_mode == FLOOR:
            return (size + 2 * pad - k) // s + 1
        return kernels.pool_out_size(size, k, s, pad)

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if len(shape) != 4:
            self.fail(f"needs a 4-axis (N,C,H,W) bottom, got shape {shape}")
        n, c, h, w = shape
        if self.global_pooling:
            self.kernel = (h, w)
        if h + 2 * self.pad[0] < self.kernel[0] or w + 2 * self.pad[1] < self.kernel[1]:
            self.fail(f"kernel {self.kernel} is larger than the padded input {h}x{w} (pad {self.pad})")
        self.out_hw = (
            self._out(h, self.kernel[0], self.stride[0], self.pad[0]),
            self._out(w, self.kernel[1], self.stride[1], self.pad[1]),
        )
        for t in tops:
            t.reshape((n, c, *self.out_hw))
        # The kernels work at CEIL size; FLOOR rounding keeps a prefix of its windows.
        full_hw = tuple(kernels.pool_out_size(size, k, s, p) for size, k, s, p
                        in zip((h, w), self.kernel, self.stride, self.pad))
        full = (n, c, *full_hw)
        xp = self.xp
        self._full_y = xp.empty(full, dtype=np.float32) if full_hw != self.out_hw else None
        self._full_dy = xp.zeros(full, dtype=np.float32) if full_hw != self.out_hw else None
        # Caffe's mask: MAX pooling in training keeps each window's winner so the
        # backward is a scatter (no second search); a second top exposes it.
        keep = self.method == MAX and (self.phase == "train" or len(tops) == 2)
        self._mask = xp.empty(full, dtype=np.int32) if keep else None
        self._mask_ready = False

    # Set by a Net that folds a following in-place ReLU (negative_slope 0) into
    # this layer: the kernel then applies max(y, 0) in its output pass.
    fused_relu: bool = False
    # Set by a Net's backward that folds the backward of an in-place ReLU
    # (negative_slope 0) *before* this layer, on its bottom, into this one.
    fused_relu_backward: bool = False

    def forward(self, bottoms, tops):
        method = "max" if self.method == MAX else "ave"
        oh, ow = self.out_hw
        y = tops[0].data if self._full_y is None else self._full_y
        kernels.pool_forward(bottoms[0].data, method, self.kernel, self.stride, self.pad, out=y,
                             mask=self._mask, relu=self.fused_relu)
        self._mask_ready = self._mask is not None
        if self._full_y is not None:
            tops[0].data[...] = y[:, :, :oh, :ow]
        if len(tops) == 2:  # Caffe's mask top: the flat index h*W+w as a float, -1 for none
            tops[1].data[...] = self._mask[:, :, :oh, :ow]

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        method = "max" if self.method == MAX else "ave"
        x = bottoms[0].data
        dy = tops[0].diff
        if self._full_dy is not None:  # FLOOR mode: the missing windows get zero gradient
            self._full_dy[:, :, : dy.shape[2], : dy.shape[3]] = dy
            dy = self._full_dy
        # The forward's mask, as Caffe's backward uses; without one (TEST phase,
        # or no forward since the last reshape) the kernel finds the maxima again.
        mask = self._mask if self._mask_ready else None
        dx = bottoms[0].diff
        relu = self.fused_relu_backward
        if dx.flags.c_contiguous:
            kernels.pool_backward(x, None, dy, method, self.kernel, self.stride, self.pad, out=dx, mask=mask,
                                  relu_mask=relu)
        else:
            dx[...] = kernels.pool_backward(x, None, dy, method, self.kernel, self.stride, self.pad, mask=mask,
                                            relu_mask=relu)
