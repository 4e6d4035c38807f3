"""Concat: join bottoms along one axis (Caffe's ConcatLayer).

``axis`` (default 1; negative counts from the end), or the legacy
``concat_dim``. Every other dimension must agree.
"""
from __future__ import annotations

from .base import Layer
from .params import canonical_axis
from .registry import register


@register("Concat")
class ConcatLayer(Layer):
    min_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            self.bad_param("give either axis or concat_dim, not both")

    def reshape(self, bottoms, tops):
        p = self.param.concat_param
        shape0 = bottoms[0].shape
        ndim = len(shape0)
        if p.HasField("concat_dim"):
            if p.concat_dim >= ndim:
                self.bad_param(f"concat_dim {p.concat_dim} is out of range for bottom shape {shape0}")
            axis = int(p.concat_dim)
        else:
            axis = canonical_axis(f"layer '{self.name}' (type {self.type})", p.axis, ndim)
        self.axis = axis
        total = 0
        for i, b in enumerate(bottoms):
            s = b.shape
            if len(s) != ndim or s[:axis] != shape0[:axis] or s[axis + 1:] != shape0[axis + 1:]:
                self.fail(
                    f"bottom {i} has shape {s} but bottom 0 has shape {shape0}: all dimensions "
                    f"except axis {axis} must match"
                )
            total += s[axis]
        tops[0].reshape(shape0[:axis] + (total,) + shape0[axis + 1:])

    def _slices(self, bottoms):
        lead = (slice(None),) * self.axis
        start = 0
        for b in bottoms:
            n = b.shape[self.axis]
            yield lead + (slice(start, start + n),)
            start += n

    def forward(self, bottoms, tops):
        y = tops[0].data
        for b, idx in zip(bottoms, self._slices(bottoms)):
            y[idx] = b.data

    def backward(self, tops, propagate_down, bottoms):
        dy = tops[0].diff
        for b, idx, down in zip(bottoms, self._slices(bottoms), propagate_down):
            if down:
                self.xp.copyto(b.diff, dy[idx])
