"""Crop: cut bottom 0 down to the shape of bottom 1 from ``axis`` on (Caffe's CropLayer).

``offset``: none (0 everywhere), one value for every cropped axis, or one per
cropped axis. Axes before ``axis`` (default 2) keep their size.
"""
from __future__ import annotations

from .base import Layer
from .params import canonical_axis
from .registry import register


@register("Crop")
class CropLayer(Layer):
    min_bottoms = max_bottoms = 2
    min_tops = max_tops = 1

    def reshape(self, bottoms, tops):
        p = self.param.crop_param
        shape, ref = bottoms[0].shape, bottoms[1].shape
        ndim = len(shape)
        if len(ref) != ndim:
            self.fail(f"bottom 0 shape {shape} and bottom 1 (reference) shape {ref} "
                      "have different numbers of axes")
        start = canonical_axis(f"layer '{self.name}' (type {self.type})", p.axis, ndim)
        offsets = [int(o) for o in p.offset]
        if len(offsets) > 1 and start + len(offsets) != ndim:
            self.bad_param(f"{len(offsets)} offsets given, but axes {start}..{ndim - 1} "
                           f"are cropped: give one offset, or {ndim - start}")
        index, top_shape = [], []
        for i in range(ndim):
            if i < start:
                index.append(slice(None))
                top_shape.append(shape[i])
                continue
            off = 0 if not offsets else offsets[0] if len(offsets) == 1 else offsets[i - start]
            if shape[i] - off < ref[i]:
                self.fail(f"cannot crop axis {i} of bottom shape {shape} to size {ref[i]} "
                          f"at offset {off} (reference shape {ref})")
            index.append(slice(off, off + ref[i]))
            top_shape.append(ref[i])
        self._index = tuple(index)
        tops[0].reshape(top_shape)

    def forward(self, bottoms, tops):
        self.xp.copyto(tops[0].data, bottoms[0].data[self._index])

    def backward(self, tops, propagate_down, bottoms):
        # Only the data bottom gets a gradient; the reference supplies a shape.
        if propagate_down[0]:
            dx = bottoms[0].diff
            dx[...] = 0
            dx[self._index] = tops[0].diff
