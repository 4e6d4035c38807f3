"""ArgMax: the indices (and/or values) of the top_k largest entries (Caffe's ArgMaxLayer).

Without ``axis``: over everything after the first axis, giving shape
(N, 1, top_k) -- or (N, 2, top_k) with ``out_max_val``, indices then values --
padded with 1s to the bottom's number of axes. With ``axis``: along that axis,
whose size becomes top_k; ``out_max_val`` then outputs the values instead of
the indices. Ties rank the larger index first, as Caffe's sort of
(value, index) pairs does. Forward only.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetError
from .base import Layer
from .params import canonical_axis
from .registry import register


@register("ArgMax")
class ArgMaxLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            self.bad_param(f"top_k must be at least 1, got {self.top_k}")
        self.has_axis = p.HasField("axis")

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if not shape:
            self.fail("needs a bottom with at least 1 axis")
        if self.has_axis:
            self.axis = canonical_axis(f"layer '{self.name}' (type {self.type})",
                                       self.param.argmax_param.axis, len(shape))
            if self.top_k > shape[self.axis]:
                self.fail(f"top_k {self.top_k} exceeds the size {shape[self.axis]} of axis "
                          f"{self.axis} (bottom shape {shape})")
            top_shape = list(shape)
            top_shape[self.axis] = self.top_k
        else:
            per_item = bottoms[0].count // shape[0] if shape[0] else 0
            if self.top_k > per_item:
                self.fail(f"top_k {self.top_k} exceeds the {per_item} values per item "
                          f"(bottom shape {shape})")
            top_shape = [1] * max(len(shape), 3)
            top_shape[0] = shape[0]
            top_shape[1] = 2 if self.out_max_val else 1
            top_shape[2] = self.top_k
        tops[0].reshape(top_shape)

    def _top_k(self, v):
        """(indices, values) of the top_k largest along the last axis; ties: larger index first."""
        xp = self.xp
        kw = {"kind": "stable"} if xp is np else {}  # CuPy's sort is always stable
        # A stable ascending sort keeps equal values in index order; reversed it
        # gives descending values with the larger index first among equals.
        order = xp.argsort(v, axis=-1, **kw)[..., ::-1][..., :self.top_k]
        return order, xp.take_along_axis(v, order, axis=-1)

    def forward(self, bottoms, tops):
        xp = self.xp
        x = bottoms[0].data
        y = tops[0].data
        if self.has_axis:
            idx, val = self._top_k(xp.moveaxis(x, self.axis, -1))
            out = val if self.out_max_val else idx
            y[...] = xp.moveaxis(out, -1, self.axis)
        else:
            n = x.shape[0]
            idx, val = self._top_k(x.reshape(n, -1))
            y3 = y.reshape(n, -1, self.top_k)
            y3[:, 0, :] = idx
            if self.out_max_val:
                y3[:, 1, :] = val

    def backward(self, tops, propagate_down, bottoms):
        if any(propagate_down):
            raise NetError(f"layer '{self.name}' (type {self.type}): ArgMax has no gradient "
                           "(Caffe does not implement its backward)")
