"""Flatten: merge axes axis..end_axis into one (Caffe's FlattenLayer).

The top is a view of the bottom's data, as in Caffe (ShareData).
"""
from __future__ import annotations

from math import prod

from .base import Layer
from .params import canonical_axis
from .registry import register


@register("Flatten")
class FlattenLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = False

    def setup(self, bottoms, tops):
        if tops[0] is bottoms[0]:
            self.bad_param("does not allow in-place computation")

    def reshape(self, bottoms, tops):
        p = self.param.flatten_param
        shape = bottoms[0].shape
        where = f"layer '{self.name}' (type {self.type})"
        start = canonical_axis(where, p.axis, len(shape))
        end = canonical_axis(where, p.end_axis, len(shape))
        if end < start:
            self.bad_param(
                f"end_axis {p.end_axis} comes before axis {p.axis} for a bottom of shape {shape}"
            )
        new_shape = shape[:start] + (prod(shape[start:end + 1]),) + shape[end + 1:]
        tops[0].set_view(bottoms[0].data.reshape(new_shape))

    def forward(self, bottoms, tops):
        pass  # the top is a view of the bottom

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            self.xp.copyto(bottoms[0].diff, tops[0].diff.reshape(bottoms[0].shape))
