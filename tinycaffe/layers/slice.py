"""Slice: cut the bottom into pieces along one axis (Caffe's SliceLayer).

``axis`` (default 1), or the legacy ``slice_dim``. ``slice_point`` gives the
n - 1 cut positions for n tops; without it the axis is split into n equal parts.
"""
from __future__ import annotations

from .base import Layer
from .params import canonical_axis
from .registry import register


@register("Slice")
class SliceLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            self.bad_param("give either axis or slice_dim, not both")
        self.points = [int(v) for v in p.slice_point]
        if self.points and len(self.points) != len(tops) - 1:
            self.bad_param(
                f"{len(self.points)} slice_point(s) for {len(tops)} tops: "
                f"give exactly one fewer than the number of tops"
            )

    def reshape(self, bottoms, tops):
        p = self.param.slice_param
        shape = bottoms[0].shape
        if p.HasField("slice_dim"):
            if p.slice_dim >= len(shape):
                self.bad_param(f"slice_dim {p.slice_dim} is out of range for bottom shape {shape}")
            axis = int(p.slice_dim)
        else:
            axis = canonical_axis(f"layer '{self.name}' (type {self.type})", p.axis, len(shape))
        self.axis = axis
        dim = shape[axis]
        n = len(tops)
        if self.points:
            if n > dim:
                self.fail(f"{n} tops cannot slice axis {axis} of size {dim} (bottom shape {shape})")
            prev = 0
            for v in self.points:
                if v <= prev:
                    self.bad_param(f"slice_point {self.points} must be positive and strictly increasing")
                prev = v
            if prev > dim:
                self.fail(
                    f"slice_point {prev} is out of range for axis {axis} of size {dim} "
                    f"(bottom shape {shape})"
                )
            bounds = [0] + self.points + [dim]
        else:
            if dim % n:
                self.fail(
                    f"{n} tops do not evenly divide axis {axis} of size {dim} (bottom shape {shape}); "
                    "give slice_point"
                )
            bounds = [i * (dim // n) for i in range(n + 1)]
        lead = (slice(None),) * axis
        self._index = [lead + (slice(a, b),) for a, b in zip(bounds[:-1], bounds[1:])]
        for t, (a, b) in zip(tops, zip(bounds[:-1], bounds[1:])):
            t.reshape(shape[:axis] + (b - a,) + shape[axis + 1:])

    def forward(self, bottoms, tops):
        x = bottoms[0].data
        for t, idx in zip(tops, self._index):
            self.xp.copyto(t.data, x[idx])

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dx = bottoms[0].diff
        for t, idx in zip(tops, self._index):
            dx[idx] = t.diff
