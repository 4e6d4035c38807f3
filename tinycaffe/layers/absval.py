"""AbsVal: y = |x|, elementwise (Caffe's AbsValLayer; not in-place, as in Caffe)."""
from __future__ import annotations

from .base import Layer
from .registry import register


@register("AbsVal")
class AbsValLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    # Backward needs the sign of x, which |x| has lost: Caffe forbids in-place.
    in_place_ok = False

    def setup(self, bottoms, tops):
        if tops[0] is bottoms[0]:
            self.bad_param("does not allow in-place computation (backward needs the input's sign)")

    def reshape(self, bottoms, tops):
        tops[0].reshape(bottoms[0].shape)

    def forward(self, bottoms, tops):
        self.xp.abs(bottoms[0].data, out=tops[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # sign(0) = 0, as caffe_cpu_sign.
        self.xp.multiply(tops[0].diff, self.xp.sign(bottoms[0].data), out=bottoms[0].diff)
