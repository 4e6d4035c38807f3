"""Reduction: reduce all axes from ``axis`` on to one number each (Caffe's ReductionLayer).

SUM, ASUM (sum of |x|), SUMSQ (sum of x^2) or MEAN, times ``coeff``. The top
keeps the axes before ``axis`` (axis 0, the default, gives a scalar).
"""
from __future__ import annotations

from math import prod

from ..proto import caffe_pb2
from .base import Layer
from .params import canonical_axis
from .registry import register

_OP = caffe_pb2.ReductionParameter


@register("Reduction")
class ReductionLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        self.op = self.param.reduction_param.operation

    def reshape(self, bottoms, tops):
        p = self.param.reduction_param
        shape = bottoms[0].shape
        axis = canonical_axis(f"layer '{self.name}' (type {self.type})", p.axis, len(shape))
        self._num, self._dim = prod(shape[:axis]), prod(shape[axis:])
        self.coeff = float(p.coeff)
        if self.op == _OP.MEAN:
            if self._dim == 0:
                self.fail(f"cannot take the MEAN over empty axes (bottom shape {shape})")
            self.coeff /= self._dim
        tops[0].reshape(shape[:axis])

    def forward(self, bottoms, tops):
        xp = self.xp
        x2 = bottoms[0].data.reshape(self._num, self._dim)
        y = tops[0].data.reshape(self._num)
        if self.op in (_OP.SUM, _OP.MEAN):
            xp.sum(x2, axis=1, out=y)
        elif self.op == _OP.ASUM:
            xp.sum(xp.abs(x2), axis=1, out=y)
        else:
            xp.sum(x2 * x2, axis=1, out=y)
        if self.coeff != 1.0:
            y *= self.coeff

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        g = (tops[0].diff.reshape(self._num, 1) * self.coeff).astype(tops[0].diff.dtype, copy=False)
        dx2 = bottoms[0].diff.reshape(self._num, self._dim)
        if self.op in (_OP.SUM, _OP.MEAN):
            xp.copyto(dx2, xp.broadcast_to(g, dx2.shape))
        else:
            x2 = bottoms[0].data.reshape(self._num, self._dim)
            if self.op == _OP.ASUM:
                xp.multiply(xp.sign(x2), g, out=dx2)
            else:
                xp.multiply(x2, 2 * g, out=dx2)
