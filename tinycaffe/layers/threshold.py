"""Threshold: y = 1 if x > threshold else 0 (Caffe's ThresholdLayer; forward only)."""
from __future__ import annotations

from ..errors import NetError
from .base import NeuronLayer
from .registry import register


@register("Threshold")
class ThresholdLayer(NeuronLayer):
    def setup(self, bottoms, tops):
        self.threshold = float(self.param.threshold_param.threshold)

    def forward(self, bottoms, tops):
        y = tops[0].data
        self.xp.greater(bottoms[0].data, self.threshold, out=y)  # writes 1.0 / 0.0

    def backward(self, tops, propagate_down, bottoms):
        if any(propagate_down):
            raise NetError(
                f"layer '{self.name}' (type {self.type}): a step function has no useful "
                "gradient; Caffe does not implement Threshold backward either"
            )
