"""Eltwise: combine same-shaped bottoms elementwise (Caffe's EltwiseLayer).

PROD multiplies, SUM adds with optional per-bottom ``coeff``, MAX keeps the
largest (the gradient goes to the bottom that won, remembered in a mask;
on a tie between the first two bottoms the second wins, as in Caffe).
"""
from __future__ import annotations

import numpy as np

from ..proto import caffe_pb2
from .base import Layer
from .registry import register

_OP = caffe_pb2.EltwiseParameter


@register("Eltwise")
class EltwiseLayer(Layer):
    min_bottoms = 2
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.eltwise_param
        self.op = p.operation
        if p.coeff and len(p.coeff) != len(bottoms):
            self.bad_param(f"{len(p.coeff)} coeff value(s) for {len(bottoms)} bottoms: give one per bottom")
        if p.coeff and self.op == _OP.PROD:
            self.bad_param("coeff is only for operation SUM, not PROD")
        self.coeffs = [float(c) for c in p.coeff] if p.coeff else [1.0] * len(bottoms)
        self.stable_prod_grad = bool(p.stable_prod_grad)
        self._mask = None

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        for i, b in enumerate(bottoms[1:], 1):
            if b.shape != shape:
                self.fail(f"bottom {i} has shape {b.shape} but bottom 0 has shape {shape}; all must match")
        tops[0].reshape(shape)
        if self.op == _OP.MAX and (self._mask is None or self._mask.shape != shape):
            self._mask = self.xp.empty(shape, dtype=np.int32)

    def forward(self, bottoms, tops):
        xp = self.xp
        y = tops[0].data
        if self.op == _OP.PROD:
            xp.multiply(bottoms[0].data, bottoms[1].data, out=y)
            for b in bottoms[2:]:
                y *= b.data
        elif self.op == _OP.SUM:
            xp.multiply(bottoms[0].data, self.coeffs[0], out=y)
            for b, c in zip(bottoms[1:], self.coeffs[1:]):
                y += b.data if c == 1.0 else c * b.data
        else:
            a, b = bottoms[0].data, bottoms[1].data
            first = a > b
            xp.copyto(y, b)
            xp.copyto(y, a, where=first)
            mask = self._mask
            mask[...] = 1
            mask[first] = 0
            for i, other in enumerate(bottoms[2:], 2):
                wins = other.data > y
                xp.copyto(y, other.data, where=wins)
                mask[wins] = i

    def backward(self, tops, propagate_down, bottoms):
        xp = self.xp
        dy = tops[0].diff
        for i, (b, down) in enumerate(zip(bottoms, propagate_down)):
            if not down:
                continue
            dx = b.diff
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    # the product of every other bottom: no division by x_i
                    others = [o.data for j, o in enumerate(bottoms) if j != i]
                    xp.multiply(others[0], dy, out=dx)
                    for o in others[1:]:
                        dx *= o
                else:
                    xp.divide(tops[0].data, b.data, out=dx)
                    dx *= dy
            elif self.op == _OP.SUM:
                xp.multiply(dy, self.coeffs[i], out=dx)
            else:
                xp.multiply(dy, self._mask == i, out=dx)
