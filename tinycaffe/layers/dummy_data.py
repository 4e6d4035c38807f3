"""DummyData: tops filled by fillers, for tests and benchmarks (Caffe's DummyDataLayer).

Shapes: ``shape`` once for every top or once per top, or the legacy
num/channels/height/width (each once, or once per top). ``data_filler``:
none (constant 0), one for every top, or one per top. Constant tops are
filled once; the others are refilled on every forward, as in Caffe.
"""
from __future__ import annotations

from ..fillers import fill
from ..proto import caffe_pb2
from .base import Layer
from .registry import register


@register("DummyData")
class DummyDataLayer(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.dummy_data_param
        n = len(tops)
        if len(p.data_filler) not in (0, 1, n):
            self.bad_param(f"{len(p.data_filler)} data_filler(s) for {n} tops: give 0, 1 or one per top")
        legacy = {f: list(getattr(p, f)) for f in ("num", "channels", "height", "width")}
        if any(legacy.values()):
            if p.shape:
                self.bad_param("give either shape or the legacy num/channels/height/width, not both")
            for field, values in legacy.items():
                if len(values) not in (1, n):
                    self.bad_param(f"give '{field}' once, or once per top ({n}); got {len(values)}")
            self.shapes = [
                tuple(int(legacy[f][0 if len(legacy[f]) == 1 else i])
                      for f in ("num", "channels", "height", "width"))
                for i in range(n)
            ]
        else:
            if len(p.shape) not in (1, n):
                self.bad_param(f"give 'shape' once, or once per top ({n}); got {len(p.shape)}")
            self.shapes = [tuple(int(d) for d in p.shape[0 if len(p.shape) == 1 else i].dim)
                           for i in range(n)]
        for s in self.shapes:
            if any(d < 0 for d in s):
                self.bad_param(f"shape {s} has a negative dimension")
        if not p.data_filler:
            fillers = [caffe_pb2.FillerParameter(type="constant", value=0.0)] * n
        elif len(p.data_filler) == 1:
            fillers = [p.data_filler[0]] * n
        else:
            fillers = list(p.data_filler)
        self.fillers = fillers
        self.refill = [f.type != "constant" for f in fillers]
        for i, t in enumerate(tops):
            t.reshape(self.shapes[i])
            self._fill(i, t)

    def _fill(self, i, top):
        values = fill(self.shapes[i], self.fillers[i], self.rng, f"layer '{self.name}' top {i}")
        top.data[...] = self.xp.asarray(values)

    def reshape(self, bottoms, tops):
        for i, t in enumerate(tops):
            if t.shape != self.shapes[i]:  # reshaped from outside: stale values, fill it again
                t.reshape(self.shapes[i])
                self._fill(i, t)

    def forward(self, bottoms, tops):
        for i, t in enumerate(tops):
            if self.refill[i]:
                self._fill(i, t)
