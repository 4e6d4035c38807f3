"""Net: a DAG of layers built from a NetParameter, with a pycaffe-like API."""
from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..backend import xp_for_device
from ..errors import EndOfStream, NetError, ShapeError, TinyCaffeError
from .backward import LearnableParam, plan_backward, share_named_params
from .blob import Blob
from .build import PHASES, load_net_param
from .filter import filter_layers
from .splits import insert_splits


class Net:
    """A Caffe network ready to run forward (and, later, backward).

    ``Net(model, weights=None, phase="test")`` where ``model`` is a prototxt
    path, prototxt text, or a ``caffe_pb2.NetParameter``. As in pycaffe,
    ``net.blobs[name].data`` holds activations, ``net.params[layer][i].data``
    the learned parameters, and ``net.forward(**inputs)`` returns the outputs.
    """

    def __init__(
        self,
        model: str | Path | Any,
        weights: str | Path | None = None,
        phase: str | int = "test",
        *,
        device: str = "cpu",
        level: int = 0,
        stages: Iterable[str] = (),
        seed: int = 0,
    ):
        from ..layers import create_layer  # layers register themselves on import

        # pycaffe passes caffe.TRAIN / caffe.TEST (0 / 1); accept those and any case.
        phase = {0: "train", 1: "test"}.get(phase, phase) if isinstance(phase, int) else str(phase).lower()
        if phase not in PHASES:
            raise NetError(f"unknown phase {phase!r}: use 'train' or 'test'")
        self.phase = phase
        self.device = device
        self.xp = xp_for_device(device)
        self.rng = np.random.default_rng(seed)
        raw = load_net_param(model)
        self.name: str = raw.name
        filtered = filter_layers(raw, PHASES[phase], level, tuple(stages))
        self.param = insert_splits(filtered)
        # Split layers rename bottoms; layers that talk to the outside world by
        # blob name (Sink) need the names the prototxt gave.
        given_bottoms = {l.name: list(l.bottom) for l in filtered.layer}

        self.layers: list = []
        self.layer_names: list[str] = []
        self.bottom_names: list[list[str]] = []
        self.top_names: list[list[str]] = []
        self.blobs: "OrderedDict[str, Blob]" = OrderedDict()
        self._bottoms: list[list[Blob]] = []
        self._tops: list[list[Blob]] = []
        self.inputs: list[str] = []
        self.layer_times: dict[str, list[float]] = {}
        self.backward_times: dict[str, list[float]] = {}

        try:
            available: list[str] = []
            for lp in self.param.layer:
                if lp.name in self.layer_names:
                    raise NetError(f"two layers are named '{lp.name}': layer names must be unique")
                layer = create_layer(lp, phase, self.xp)
                layer.rng = self.rng
                layer.bottom_names = given_bottoms.get(lp.name, list(lp.bottom))
                layer.check_counts(len(lp.bottom), len(lp.top))
                bottoms = [self.blobs[b] for b in lp.bottom]  # insert_splits checked they exist
                tops = []
                for j, t in enumerate(lp.top):
                    in_place = j < len(lp.bottom) and lp.bottom[j] == t
                    if in_place:
                        if not layer.in_place_ok:
                            raise NetError(
                                f"layer '{lp.name}' (type {lp.type}) cannot compute in place: "
                                f"give its top a name other than '{t}'"
                            )
                        tops.append(self.blobs[t])
                    elif t in self.blobs:
                        raise NetError(
                            f"layer '{lp.name}': top blob '{t}' is already produced by an earlier "
                            "layer (only in-place layers may reuse a blob name, at the same position)"
                        )
                    else:
                        blob = Blob(t, self.xp)
                        self.blobs[t] = blob
                        tops.append(blob)
                for b in lp.bottom:
                    if b in available:
                        available.remove(b)
                available.extend(t for t in lp.top if t not in available)
                if lp.type == "Input":
                    self.inputs.extend(lp.top)
                self.layers.append(layer)
                self.layer_names.append(lp.name)
                self.bottom_names.append(list(lp.bottom))
                self.top_names.append(list(lp.top))
                self._bottoms.append(bottoms)
                self._tops.append(tops)
                self._run_step(len(self.layers) - 1, "setup")
                self._run_step(len(self.layers) - 1, "reshape")
            # Caffe keeps unconsumed blobs in a sorted set: outputs come in name order.
            self.outputs: list[str] = sorted(available)
            self._loss_weights = [self._top_loss_weights(i) for i in range(len(self.layers))]
            self.learnable_params: list[LearnableParam] = share_named_params(self)
            self.params: "OrderedDict[str, list[Blob]]" = OrderedDict(
                (name, layer.blobs) for name, layer in zip(self.layer_names, self.layers) if layer.blobs
            )
            self._need_backward, self._propagate_down = plan_backward(self)
            if weights is not None:
                self.copy_from(weights)
            self._after_forward = [l for l in self.layers if hasattr(l, "after_net_forward")]
            for layer in self.layers:
                if hasattr(layer, "on_net_ready"):
                    layer.on_net_ready(self)
        except BaseException:
            # Release what the layers built so far hold (threads, sockets, LMDBs).
            self.close(abort=True)
            raise

    # -- running -----------------------------------------------------------------
    def _run_step(self, i: int, step: str) -> None:
        """Run one life-cycle step of layer i; foreign errors get the layer's name."""
        layer = self.layers[i]
        try:
            if step == "setup":
                layer.setup(self._bottoms[i], self._tops[i])
            elif step == "reshape":
                layer.reshape(self._bottoms[i], self._tops[i])
            else:
                layer.forward(self._bottoms[i], self._tops[i])
        except TinyCaffeError:
            raise
        except Exception as exc:  # a bug or an unchecked shape: still say where
            shapes = ", ".join(f"{b.name}{b.shape}" for b in self._bottoms[i]) or "none"
            raise NetError(
                f"layer '{layer.name}' (type {layer.type}) failed in {step} "
                f"with bottoms {shapes}: {type(exc).__name__}: {exc}"
            ) from exc

    def _top_loss_weights(self, i: int) -> list[float]:
        lp, layer = self.param.layer[i], self.layers[i]
        n = len(lp.top)
        if len(lp.loss_weight) not in (0, n):
            raise NetError(
                f"layer '{lp.name}': loss_weight must be given once per top ({n}), "
                f"got {len(lp.loss_weight)}"
            )
        if lp.loss_weight:
            return list(lp.loss_weight)
        return [layer.default_loss_weight(j) for j in range(n)]

    def _index(self, name: str | None, default: int) -> int:
        if name is None:
            return default
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise NetError(
                f"no layer named '{name}' in net '{self.name}' "
                f"(layers: {', '.join(self.layer_names)})"
            ) from None

    def reshape(self) -> None:
        """Propagate new input shapes through every layer (after blob.reshape)."""
        for i in range(len(self.layers)):
            self._run_step(i, "reshape")

    def forward(
        self,
        blobs: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        **inputs: Any,
    ) -> dict[str, Any]:
        """Run layers ``start``..``end`` (inclusive; default all) and return outputs.

        Keyword arguments fill input blobs by name (shapes must match; reshape
        the blob and call ``reshape()`` to change them). Returns the net's
        outputs, or the ``end`` layer's tops when ``end`` is given, plus any
        blob named in ``blobs``.
        """
        for name, value in inputs.items():
            if name not in self.blobs:
                raise NetError(f"forward(): '{name}' is not a blob of net '{self.name}'")
            blob = self.blobs[name]
            arr = self.xp.asarray(value, dtype=np.float32)
            if tuple(arr.shape) != blob.shape:
                raise ShapeError(
                    f"forward(): input '{name}' has shape {tuple(arr.shape)} but the net expects "
                    f"{blob.shape}; call net.blobs['{name}'].reshape(...) and net.reshape() first"
                )
            blob.data[...] = arr
        lo = self._index(start, 0)
        hi = self._index(end, len(self.layers) - 1)
        if lo > hi:
            raise NetError(f"forward(): start layer '{start}' comes after end layer '{end}'")
        try:
            self.loss = self._forward_range(lo, hi)
        except EndOfStream:
            # One Source's client said BYE: the others' clients end with it.
            for layer in self.layers:
                finish = getattr(layer, "finish_stream", None)
                if finish is not None:
                    finish()
            raise
        for layer in self._after_forward:  # e.g. a Source sending results back to its Sink
            layer.after_net_forward(self)
        names = list(self.top_names[hi]) if end is not None else list(self.outputs)
        names += [b for b in (blobs or ()) if b not in names]
        return {n: self.blobs[n].data for n in names}

    def _forward_range(self, lo: int, hi: int, timed: bool = False) -> float:
        loss = 0.0
        for i in range(lo, hi + 1):
            if timed:
                t0 = time.perf_counter()
                self._run_step(i, "forward")
                self._sync()
                self.layer_times.setdefault(self.layer_names[i], []).append(time.perf_counter() - t0)
            else:
                self._run_step(i, "forward")
            for w, top in zip(self._loss_weights[i], self._tops[i]):
                if w:
                    loss += w * float(top.data.sum())
        return loss

    def forward_timed(self) -> float:
        """One full forward recording each layer's wall time in ``layer_times``."""
        t0 = time.perf_counter()
        self.loss = self._forward_range(0, len(self.layers) - 1, timed=True)
        return time.perf_counter() - t0

    def _sync(self) -> None:
        if self.xp is not np:
            self.xp.cuda.Stream.null.synchronize()

    # -- training ----------------------------------------------------------------
    def backward(self, timed: bool = False) -> None:
        """Back-propagate from the loss tops (diff = loss weight) through every layer that needs it.

        Parameter gradients accumulate into ``blob.diff``; call
        ``clear_param_diffs()`` first (the solver does, once per iteration).
        ``timed`` records each layer's wall time in ``backward_times``.
        """
        for i, ws in enumerate(self._loss_weights):
            for w, top in zip(ws, self._tops[i]):
                if w:
                    top.diff[...] = w
        for i in range(len(self.layers) - 1, -1, -1):
            if not self._need_backward[i]:
                continue
            layer = self.layers[i]
            t0 = time.perf_counter()
            try:
                layer.backward(self._tops[i], self._propagate_down[i], self._bottoms[i])
            except TinyCaffeError:
                raise
            except Exception as exc:
                raise NetError(
                    f"layer '{layer.name}' (type {layer.type}) failed in backward: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if timed:
                self._sync()
                self.backward_times.setdefault(layer.name, []).append(time.perf_counter() - t0)

    def clear_param_diffs(self) -> None:
        """Zero every learnable blob's gradient."""
        for p in self.learnable_params:
            p.blob.diff[...] = 0

    def share_weights_with(self, other: "Net") -> None:
        """Use ``other``'s parameter blobs for same-named layers (a test net beside a train net)."""
        theirs = dict(zip(other.layer_names, other.layers))
        for name, layer in zip(self.layer_names, self.layers):
            src = theirs.get(name)
            if src is None or not layer.blobs:
                continue
            if [b.shape for b in src.blobs] != [b.shape for b in layer.blobs]:
                raise ShapeError(
                    f"layer '{name}': cannot share parameters of shapes "
                    f"{[b.shape for b in src.blobs]} with {[b.shape for b in layer.blobs]}"
                )
            layer.blobs[:] = src.blobs
        self.params = OrderedDict(
            (n, l.blobs) for n, l in zip(self.layer_names, self.layers) if l.blobs
        )

    def let_data_wrap(self) -> None:
        """Let TEST-phase Data layers run past the end of their data mid-batch, as Caffe does.

        ``tinycaffe test`` refuses that (it would score some images twice);
        timing runs and the test passes during training do not care.
        """
        for layer in self.layers:
            if layer.type == "Data":
                layer.wrap_in_test = True

    def set_input_arrays(self, data, labels, layer: str | None = None) -> None:
        """Hand arrays to a MemoryData layer (pycaffe's ``set_input_arrays``).

        ``layer`` names the MemoryData layer when the net has several.
        """
        memory = [l for l in self.layers if l.type == "MemoryData" and (layer is None or l.name == layer)]
        if not memory:
            named = f" named '{layer}'" if layer else ""
            raise NetError(f"net '{self.name}' has no MemoryData layer{named}")
        if len(memory) > 1:
            raise NetError(f"net '{self.name}' has {len(memory)} MemoryData layers: name one with layer=...")
        memory[0].reset(data, labels)

    def output_loss_weights(self) -> dict[str, float]:
        """Loss weight of each output blob (0 for plain outputs)."""
        weights: dict[str, float] = {}
        for tops, ws in zip(self.top_names, self._loss_weights):
            for t, w in zip(tops, ws):
                if t in self.outputs and w:
                    weights[t] = w
        return weights

    def close(self, abort: bool = False) -> None:
        """Release what layers hold open (data readers, sockets, threads).

        ``abort=True`` (after an error or Ctrl-C) tells peers the run failed
        instead of ending it cleanly.
        """
        first_error: BaseException | None = None
        for layer in self.layers:
            closer = getattr(layer, "close", None)
            if closer is None:
                continue
            try:
                closer(abort)
            except Exception as exc:  # close every layer, then report the first failure
                if first_error is None:
                    first_error = exc
        # When aborting, the run already failed: a layer that was only half set up
        # may fail to close, and that must not hide the original error.
        if first_error is not None and not abort:
            raise first_error

    # -- weights -----------------------------------------------------------------
    def copy_from(self, weights: str | Path | Mapping[str, list]) -> list[str]:
        """Copy trained blobs by layer name (Caffe's CopyTrainedLayersFrom).

        Layers absent from the file keep their current values. Returns the
        names of the layers that were filled.
        """
        from .weights import copy_weights

        return copy_weights(self, weights)

    def save(self, path: str | Path) -> None:
        """Write the net's definition and learned blobs as a binary caffemodel."""
        from .weights import save_weights

        save_weights(self, path)

    def __repr__(self) -> str:
        return f"<Net '{self.name}' phase={self.phase} layers={len(self.layers)}>"
