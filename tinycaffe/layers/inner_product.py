"""InnerProduct: a fully connected layer over the axes from ``axis`` on."""
from __future__ import annotations

import math

import numpy as np

from ..kernels.gemm import matmul
from .base import Layer
from .params import canonical_axis
from .registry import register


@register("InnerProduct")
class InnerProduct(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.inner_product_param
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            self.bad_param("num_output must be set and positive")
        shape = bottoms[0].shape
        self.axis = canonical_axis(f"layer '{self.name}'", p.axis, len(shape))
        self.k = math.prod(shape[self.axis:])
        self.transpose = bool(p.transpose)
        wshape = (self.k, self.num_output) if self.transpose else (self.num_output, self.k)
        self.add_param_blob(wshape, "weight", p.weight_filler)
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.add_param_blob((self.num_output,), "bias", p.bias_filler)

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        k = math.prod(shape[self.axis:])
        if k != self.k:
            self.fail(
                f"bottom shape {shape} gives {k} inputs per row from axis {self.axis}, "
                f"but the weights expect {self.k}"
            )
        self.m = math.prod(shape[: self.axis])
        tops[0].reshape(shape[: self.axis] + (self.num_output,))

    def _weight_nk(self):
        w = self.blobs[0].data
        return w.T if self.transpose else w

    def _matmul(self, a, b, out, accumulate=False):
        """out = a @ b (+= with ``accumulate``): on the CPU over tinycaffe's thread
        pool (BLAS itself runs one thread there), on the GPU with CuPy."""
        if self.xp is np:
            matmul(a, b, out=out, accumulate=accumulate)
        elif accumulate:
            out += a @ b
        else:
            self.xp.matmul(a, b, out=out)

    def forward(self, bottoms, tops):
        x = bottoms[0].data.reshape(self.m, self.k)
        y = tops[0].data.reshape(self.m, self.num_output)
        self._matmul(x, self._weight_nk().T, y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, tops, propagate_down, bottoms):
        x = bottoms[0].data.reshape(self.m, self.k)
        dy = tops[0].diff.reshape(self.m, self.num_output)
        wdiff = self.blobs[0].diff
        # Accumulated straight into the weight diff, in its stored orientation.
        if self.transpose:  # stored (K, N)
            self._matmul(x.T, dy, wdiff, accumulate=True)
        else:  # stored (N, K)
            self._matmul(dy.T, x, wdiff, accumulate=True)
        if self.bias_term:
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            dx = bottoms[0].diff
            if dx.flags.c_contiguous:  # a reshape of it is a view: write in place
                self._matmul(dy, self._weight_nk(), dx.reshape(self.m, self.k))
            else:
                dx[...] = (dy @ self._weight_nk()).reshape(dx.shape)
