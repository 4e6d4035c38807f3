"""Tile: repeat the bottom ``tiles`` times along ``axis`` (Caffe's TileLayer).

Each block of axes axis..end is copied whole: (a, b) tiled 2 times on axis 1
gives (a, b, a, b) per row.
"""
from __future__ import annotations

from math import prod

from .base import Layer
from .params import canonical_axis
from .registry import register


@register("Tile")
class TileLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.tile_param
        if not p.HasField("tiles"):
            self.bad_param("tile_param.tiles (the number of copies) is required")
        if p.tiles < 1:
            self.bad_param(f"tiles must be positive, got {p.tiles}")
        self.tiles = int(p.tiles)

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        axis = canonical_axis(f"layer '{self.name}' (type {self.type})",
                              self.param.tile_param.axis, len(shape))
        self._outer, self._inner = prod(shape[:axis]), prod(shape[axis:])
        tops[0].reshape(shape[:axis] + (shape[axis] * self.tiles,) + shape[axis + 1:])

    def forward(self, bottoms, tops):
        y3 = tops[0].data.reshape(self._outer, self.tiles, self._inner)
        self.xp.copyto(y3, bottoms[0].data.reshape(self._outer, 1, self._inner))

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            dy3 = tops[0].diff.reshape(self._outer, self.tiles, self._inner)
            self.xp.sum(dy3, axis=1, out=bottoms[0].diff.reshape(self._outer, self._inner))
