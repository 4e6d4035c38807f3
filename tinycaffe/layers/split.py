"""Split: hand one blob to several consumers (Caffe's SplitLayer).

Every top is a view of the bottom's data (Caffe's ShareData); each top has its
own diff, and backward sums them into the bottom's diff.
"""
from __future__ import annotations

from .base import Layer
from .registry import register


@register("Split")
class SplitLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = 1

    def setup(self, bottoms, tops):
        if any(t is bottoms[0] for t in tops):
            self.bad_param("does not allow in-place computation")

    def reshape(self, bottoms, tops):
        for t in tops:
            t.set_view(bottoms[0].data)

    def forward(self, bottoms, tops):
        pass  # the tops are views of the bottom

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dx = bottoms[0].diff
        if len(tops) == 1:
            self.xp.copyto(dx, tops[0].diff)
            return
        self.xp.add(tops[0].diff, tops[1].diff, out=dx)
        for t in tops[2:]:
            dx += t.diff
