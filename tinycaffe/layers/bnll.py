"""BNLL ("binomial normal log likelihood"): y = log(1 + exp(x)), elementwise.

Computed as Caffe does, in a form that does not overflow:
x + log(1 + exp(-x)) for x > 0, log(1 + exp(x)) otherwise.
"""
from __future__ import annotations

from .base import Layer
from .registry import register

# Caffe clamps the exponent of the gradient at this value (kBNLL_THRESHOLD).
_GRAD_CLAMP = 50.0


@register("BNLL")
class BNLLLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True  # backward then uses a copy of the input kept by forward

    def setup(self, bottoms, tops):
        self._saved = None

    def reshape(self, bottoms, tops):
        self._saved = self.in_place_buffer(bottoms[0], tops[0], self._saved)

    def forward(self, bottoms, tops):
        xp = self.xp
        x = bottoms[0].data
        if self._saved is not None:
            xp.copyto(self._saved, x)
            x = self._saved
        # max(x, 0) + log1p(exp(-|x|)) is the same function as Caffe's two branches.
        tail = xp.log1p(xp.exp(-xp.abs(x)))
        xp.maximum(x, 0, out=tops[0].data)
        tops[0].data += tail

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        x = self._saved if self._saved is not None else bottoms[0].data
        e = xp.exp(xp.minimum(x, _GRAD_CLAMP))
        xp.multiply(tops[0].diff, e / (e + 1.0), out=bottoms[0].diff)
