"""Reshape: give the bottom a new shape without copying (Caffe's ReshapeLayer).

``shape`` replaces the bottom axes axis..axis+num_axes (num_axes -1: to the
end). In it, 0 copies the bottom's dimension at that position and one -1 is
inferred from the count. The top is a view of the bottom's data.
"""
from __future__ import annotations

from math import prod

from .base import Layer
from .registry import register


@register("Reshape")
class ReshapeLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = False

    def setup(self, bottoms, tops):
        if tops[0] is bottoms[0]:
            self.bad_param("does not allow in-place computation")
        p = self.param.reshape_param
        self.dims = [int(d) for d in p.shape.dim]
        self.copy_axes = [i for i, d in enumerate(self.dims) if d == 0]
        inferred = [i for i, d in enumerate(self.dims) if d == -1]
        bad = [d for d in self.dims if d < -1]
        if bad:
            self.bad_param(f"shape {self.dims} has dimension {bad[0]}; use 0 to copy, -1 to infer")
        if len(inferred) > 1:
            self.bad_param(f"shape {self.dims} has more than one -1; at most one dimension is inferred")
        self.inferred_axis = inferred[0] if inferred else None
        if p.num_axes < -1:
            self.bad_param(f"num_axes must be >= 0, or -1 for all; got {p.num_axes}")

    def reshape(self, bottoms, tops):
        p = self.param.reshape_param
        shape = bottoms[0].shape
        ndim = len(shape)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            self.bad_param(f"axis {p.axis} is out of range for a bottom of shape {shape}")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            self.bad_param(
                f"axis + num_axes = {end} goes past the {ndim} axes of the bottom shape {shape}"
            )
        top_shape = list(shape[:start]) + list(self.dims) + list(shape[end:])
        for i in self.copy_axes:
            if start + i >= ndim:
                self.fail(
                    f"shape {self.dims} has a 0 at position {i} but the bottom {shape} "
                    f"has no axis {start + i} to copy"
                )
            top_shape[start + i] = shape[start + i]
        count = prod(shape)
        if self.inferred_axis is not None:
            known = prod(d for j, d in enumerate(top_shape) if j != start + self.inferred_axis)
            if known == 0 or count % known:
                self.fail(
                    f"cannot infer the -1 in shape {self.dims}: the bottom count {count} "
                    f"(shape {shape}) is not divisible by the other dimensions' product {known}"
                )
            top_shape[start + self.inferred_axis] = count // known
        if prod(top_shape) != count:
            self.fail(
                f"cannot reshape a bottom of shape {shape} ({count} values) to "
                f"{tuple(top_shape)} ({prod(top_shape)} values)"
            )
        tops[0].set_view(bottoms[0].data.reshape(top_shape))

    def forward(self, bottoms, tops):
        pass  # the top is a view of the bottom

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            self.xp.copyto(bottoms[0].diff, tops[0].diff.reshape(bottoms[0].shape))
