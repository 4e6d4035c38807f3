"""ReLU: max(x, 0), or a leaky slope for x < 0 (negative_slope)."""
from __future__ import annotations

from .. import kernels
from .base import NeuronLayer
from .registry import register

try:
    from ..kernels import numba_eltwise
except ImportError:  # no Numba: the NumPy expressions below
    numba_eltwise = None  # type: ignore[assignment]


@register("ReLU")
class ReLU(NeuronLayer):
    def setup(self, bottoms, tops):
        self.slope = float(self.param.relu_param.negative_slope)

    def _fast(self, *arrays) -> bool:
        """Whether the Numba kernels serve these arrays (NumPy arrays, Numba kernels chosen,
        C-contiguous float32, as blobs are)."""
        return (numba_eltwise is not None and kernels.implementation(*arrays) is kernels.numba_kernels
                and all(a.flags.c_contiguous and a.dtype == "float32" for a in arrays))

    def forward(self, bottoms, tops):
        x, y = bottoms[0].data, tops[0].data
        if self._fast(x, y):
            numba_eltwise.relu_forward(x, self.slope, y)
        elif self.slope == 0.0:
            self.xp.maximum(x, 0, out=y)
        else:
            # y = max(x,0) + slope*min(x,0), written so it is safe in place.
            neg = self.xp.minimum(x, 0)
            self.xp.maximum(x, 0, out=y)
            y += self.slope * neg

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # In place, the top data is post-ReLU; its sign still tells which side x was on.
        x = tops[0].data if tops[0] is bottoms[0] else bottoms[0].data
        dy, dx = tops[0].diff, bottoms[0].diff
        if self._fast(x, dy, dx):
            numba_eltwise.relu_backward(x, dy, self.slope, dx)
            return
        scale = (x > 0).astype(dy.dtype)
        if self.slope:
            scale += self.slope * (x <= 0)
        dx[...] = dy * scale
