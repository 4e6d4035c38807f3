"""Pooling: MAX / AVE (and global) with Caffe's ceil rounding and window clipping."""
from __future__ import annotations

from .. import kernels
from .base import Layer
from .params import opt, pair
from .registry import register

MAX, AVE, STOCHASTIC = 0, 1, 2
CEIL, FLOOR = 0, 1


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

    def forward(self, bottoms, tops):
        method = "max" if self.method == MAX else "ave"
        oh, ow = self.out_hw
        if self.round_mode == CEIL:
            kernels.pool_forward(bottoms[0].data, method, self.kernel, self.stride, self.pad, out=tops[0].data)
        else:  # FLOOR rounding keeps a prefix of CEIL's windows
            y = kernels.pool_forward(bottoms[0].data, method, self.kernel, self.stride, self.pad)
            tops[0].data[...] = y[:, :, :oh, :ow]
        if len(tops) == 2:
            tops[1].data[...] = self._max_mask(bottoms[0].data)[:, :, :oh, :ow]

    def _max_mask(self, x):
        """Flat h*W+w index of each window's first maximum (Caffe's mask top)."""
        xp = self.xp
        n, c, h, w = x.shape
        kh, kw = self.kernel
        sh, sw = self.stride
        ph, pw = self.pad
        oh = kernels.pool_out_size(h, kh, sh, ph)
        ow = kernels.pool_out_size(w, kw, sw, pw)
        idx = xp.full((n, c, oh, ow), -1.0, dtype=x.dtype)
        for i in range(oh):
            h0, h1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
            for j in range(ow):
                w0, w1 = max(j * sw - pw, 0), min(j * sw - pw + kw, w)
                win = x[:, :, h0:h1, w0:w1].reshape(n, c, -1)
                arg = win.argmax(axis=2)
                idx[:, :, i, j] = (h0 + arg // (w1 - w0)) * w + (w0 + arg % (w1 - w0))
        return idx

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        method = "max" if self.method == MAX else "ave"
        x = bottoms[0].data
        dy = tops[0].diff
        full = kernels.pool_out_size
        oh = full(x.shape[2], self.kernel[0], self.stride[0], self.pad[0])
        ow = full(x.shape[3], self.kernel[1], self.stride[1], self.pad[1])
        if dy.shape[2:] != (oh, ow):  # FLOOR mode: pad the missing windows with zero gradient
            padded = self.xp.zeros(dy.shape[:2] + (oh, ow), dtype=dy.dtype)
            padded[:, :, : dy.shape[2], : dy.shape[3]] = dy
            dy = padded
        # The kernels find each window's maximum again from x: no forward rerun needed.
        bottoms[0].diff[...] = kernels.pool_backward(x, None, dy, method, self.kernel, self.stride, self.pad)
