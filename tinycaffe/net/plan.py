"""Forward plans: a net's forward over layers lo..hi, worked out once per input shape and replayed.

Caffe reshapes every layer at the start of every forward. Here the Net reshapes a
range of layers only when a blob entering it has a new buffer, which a new shape
gives it (``net.blobs['data'].reshape(1, 3, 32, 32)`` and then ``net.forward()``
just works), and otherwise
replays a *plan*: the list of bound layer forwards (buffers were sized by the last
reshape and are reused), the loss tops with a nonzero weight, and fused steps.

Fusion: a layer that offers a ``fused_relu`` flag (Convolution, Pooling: their
kernels then apply max(y, 0) in the output pass) and whose only top is rewritten
at once by an in-place ReLU (negative_slope 0) runs with the flag set, and the
ReLU step is dropped, when both layers are in the range. The flag is set for that
call only, so other ranges (``forward(end='conv1')``, which stops before the ReLU
and keeps conv1's pre-ReLU output) see the plain layer. Nothing can observe the
pre-ReLU values inside a fused range: the ReLU overwrites the same blob before any
other layer runs, and ReLU's backward reads the sign of its (post-ReLU) top, so
training is unaffected too. Fusion is done for CPU (NumPy) nets; on the GPU every
layer runs on its own.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..errors import NetError, TinyCaffeError

Step = Callable[[list, list], None]


def layer_failure(layer, bottoms, step: str, exc: BaseException) -> NetError:
    """The NetError for a foreign exception in ``layer``'s ``step``: it names the layer and shapes."""
    return layer.failure(step, bottoms, exc)  # one wording for set-up and running


def _fused_relu_step(layer) -> Step | None:
    """``layer``'s forward with its ReLU flag set for the call, or None when it has no such flag."""
    if not hasattr(layer, "fused_relu"):
        return None
    forward = layer.forward

    def with_relu(bottoms, tops):
        layer.fused_relu = True
        try:
            forward(bottoms, tops)
        finally:
            layer.fused_relu = False
    return with_relu


def _fusable(net, i: int, hi: int) -> bool:
    """Layer i (one bottom, one top) is followed, inside the range, by a plain ReLU in place on its top."""
    if i + 1 > hi or net.xp is not np:
        return False
    relu = net.layers[i + 1]
    if relu.type != "ReLU" or getattr(relu, "slope", None) != 0.0:
        return False
    tops = net._tops[i]
    if len(net._bottoms[i]) != 1 or len(tops) != 1:
        return False
    return net._bottoms[i + 1] == [tops[0]] and net._tops[i + 1][0] is tops[0]


class ForwardPlan:
    """Layers lo..hi of a net as a list of bound forward steps, valid while the blobs entering
    the range keep the buffers their consumers were reshaped with."""

    __slots__ = ("lo", "hi", "steps", "step_layers", "entries", "losses", "fused")

    def __init__(self, net, lo: int, hi: int, seen: dict[int, tuple], fuse: bool = True):
        self.lo, self.hi = lo, hi
        # (forward, bottoms, tops) per step; step_layers: the layer indices each step runs.
        self.steps: list[tuple[Step, list, list]] = []
        self.step_layers: list[tuple[int, ...]] = []
        self.fused: list[str] = []
        producer: dict[int, int] = {}  # id(blob) -> index of the last layer in range that wrote it
        # A blob entering the range (made before lo, or by a layer without bottoms: Input,
        # Data, whose tops the caller may reshape) with the array its consumer was last
        # reshaped with: a blob.reshape to a new shape, or set_view, gives it another one.
        self.entries: list[tuple] = []
        i = lo
        while i <= hi:
            layer, bottoms, tops = net.layers[i], net._bottoms[i], net._tops[i]
            arrays = seen.get(i, ())
            for j, b in enumerate(bottoms):
                src = producer.get(id(b))
                if src is None or not net._bottoms[src]:
                    self.entries.append((b, arrays[j] if j < len(arrays) else None))
            step = _fused_relu_step(layer) if fuse and _fusable(net, i, hi) else None
            if step is not None:
                self.steps.append((step, bottoms, tops))
                self.step_layers.append((i, i + 1))
                self.fused.append(f"{layer.name}+{net.layers[i + 1].name}")
                for t in tops:
                    producer[id(t)] = i + 1
                i += 2
                continue
            self.steps.append((layer.forward, bottoms, tops))
            self.step_layers.append((i,))
            for t in tops:
                producer[id(t)] = i
            i += 1
        self.losses = [(w, top) for k in range(lo, hi + 1)
                       for w, top in zip(net._loss_weights[k], net._tops[k]) if w]

    def stale(self) -> bool:
        """True when a blob entering the range has a new buffer (so maybe a new shape) since its
        consumer's last reshape."""
        for blob, array in self.entries:
            if blob.data is not array:
                return True
        return False

    def run(self, net) -> float:
        """Run every step; returns the weighted loss of the range's loss tops."""
        k = 0
        try:
            for forward, bottoms, tops in self.steps:
                forward(bottoms, tops)
                k += 1
        except TinyCaffeError:
            raise
        except Exception as exc:  # a bug or an unchecked shape: still say where
            i = self.step_layers[k][0]
            raise layer_failure(net.layers[i], net._bottoms[i], "forward", exc) from exc
        return self.loss()

    def run_timed(self, net, times: dict[str, list[float]], sync: Callable[[], None]) -> float:
        """``run`` recording each step's wall time under its layer's name; a layer fused into the
        one before it records 0.0 (its time is in that layer's)."""
        names = net.layer_names
        for k, (forward, bottoms, tops) in enumerate(self.steps):
            t0 = time.perf_counter()
            try:
                forward(bottoms, tops)
            except TinyCaffeError:
                raise
            except Exception as exc:
                i = self.step_layers[k][0]
                raise layer_failure(net.layers[i], net._bottoms[i], "forward", exc) from exc
            sync()
            first, *rest = self.step_layers[k]
            times.setdefault(names[first], []).append(time.perf_counter() - t0)
            for i in rest:
                times.setdefault(names[i], []).append(0.0)
        return self.loss()

    def loss(self) -> float:
        loss = 0.0
        for w, top in self.losses:
            loss += w * float(top.data.sum())
        return loss


class Planner:
    """A net's forward plans, and the bottom arrays each layer was last reshaped with."""

    def __init__(self, net):
        self.net = net
        self.seen: dict[int, tuple] = {}
        self.plans: dict[tuple[int, int], ForwardPlan] = {}

    def reshaped(self, i: int) -> None:
        """Layer i was just reshaped: remember its bottoms' arrays; plans are rebuilt on next use."""
        self.seen[i] = tuple(b.data for b in self.net._bottoms[i])
        if self.plans:
            self.plans.clear()

    def plan(self, lo: int, hi: int) -> ForwardPlan:
        """The plan for layers lo..hi, reshaping them first when a blob entering them changed shape."""
        plan = self.plans.get((lo, hi))
        if plan is None or plan.stale():
            plan = ForwardPlan(self.net, lo, hi, self.seen)
            if plan.stale():
                for i in range(lo, hi + 1):
                    self.net._run_step(i, "reshape")
                plan = ForwardPlan(self.net, lo, hi, self.seen)
            self.plans[lo, hi] = plan
        return plan

    def entry_blobs(self, lo: int, hi: int) -> set[str]:
        """Names of the blobs entering layers lo..hi: the ones forward(**inputs) may reshape."""
        plan = self.plans.get((lo, hi)) or ForwardPlan(self.net, lo, hi, self.seen, fuse=False)
        return {b.name for b, _ in plan.entries}
