"""MemoryData: batches from arrays the program hands over (pycaffe's set_input_arrays)."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .base import Layer
from .registry import register


@register("MemoryData")
class MemoryData(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = max_tops = 2

    def setup(self, bottoms, tops):
        p = self.param.memory_data_param
        self.batch_size = int(p.batch_size)
        self.chw = (int(p.channels), int(p.height), int(p.width))
        if self.batch_size <= 0 or min(self.chw) <= 0:
            self.bad_param("memory_data_param needs positive batch_size, channels, height and width")
        self.data: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.pos = 0

    def reset(self, data, labels) -> None:
        """Serve ``data`` (N, C, H, W) and ``labels`` (N,) from the next forward on, in order.

        N must be a multiple of the batch size, as in Caffe. The arrays are
        kept (not copied): do not change them while the net uses them.
        """
        data = np.asarray(data, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        if data.ndim != 4 or data.shape[1:] != self.chw:
            raise DataError(
                f"layer '{self.name}': data has shape {data.shape}, expected (N, {', '.join(map(str, self.chw))})"
            )
        if len(labels) != len(data):
            raise DataError(f"layer '{self.name}': {len(data)} images but {len(labels)} labels")
        if len(data) == 0 or len(data) % self.batch_size:
            raise DataError(
                f"layer '{self.name}': {len(data)} images is not a positive multiple of the batch size {self.batch_size}"
            )
        self.data, self.labels, self.pos = data, labels, 0

    def reshape(self, bottoms, tops):
        tops[0].reshape((self.batch_size, *self.chw))
        tops[1].reshape((self.batch_size,))

    def forward(self, bottoms, tops):
        if self.data is None:
            raise DataError(f"layer '{self.name}': no data yet; call net.set_input_arrays(data, labels) first")
        lo = self.pos
        hi = lo + self.batch_size
        tops[0].data[...] = self.xp.asarray(self.data[lo:hi])
        tops[1].data[...] = self.xp.asarray(self.labels[lo:hi])
        self.pos = hi % len(self.data)  # wraps to the first batch, as Caffe does

    def backward(self, tops, propagate_down, bottoms):
        pass
