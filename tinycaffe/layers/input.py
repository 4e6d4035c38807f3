"""Input: declares the net's input blobs and their shapes (filled by the caller)."""
from __future__ import annotations

from .base import Layer
from .registry import register


@register("Input")
class Input(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = 1

    def setup(self, bottoms, tops):
        shapes = [tuple(int(d) for d in s.dim) for s in self.param.input_param.shape]
        if len(shapes) not in (1, len(tops)):
            self.bad_param(
                f"input_param gives {len(shapes)} shapes for {len(tops)} tops: "
                "give one shape for all tops or one per top"
            )
        if not shapes:
            self.bad_param("input_param.shape is required")
        for i, top in enumerate(tops):
            top.reshape(shapes[0] if len(shapes) == 1 else shapes[i])

    def reshape(self, bottoms, tops):
        pass  # the caller reshapes input blobs directly

    def forward(self, bottoms, tops):
        pass

    def backward(self, tops, propagate_down, bottoms):
        pass
