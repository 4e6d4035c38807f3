"""Net: a DAG of layers built from a NetParameter, with a pycaffe-like API."""
from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..backend import xp_for_device
from ..blob import Blob
from ..errors import NetError, ShapeError, TinyCaffeError
from ..pycaffe import mode_device, mode_seed
from . import build
from .backward import LearnableParam
from .build import PHASES, net_args
from .filter import filter_layers
from .plan import Planner, layer_failure
from .pycaffe_surface import NamesByLayer, PycaffeNet
from .splits import insert_splits
from .weights import copy_weights, save_weights


class Net(PycaffeNet):
    """A Caffe network ready to run forward and backward.

    ``Net(model, weights=None, phase="test")`` where ``model`` is a prototxt
    path, prototxt text, or a ``caffe_pb2.NetParameter``; pycaffe's forms
    work too: ``Net(model, caffe.TEST)``, ``Net(model, caffe.TEST, weights=w)``,
    ``Net(model, w, caffe.TEST)``. As in pycaffe, ``net.blobs[name].data``
    holds activations, ``net.params[layer][i].data`` the learned parameters,
    and ``net.forward(**inputs)`` returns the outputs. With weights given,
    the layers the file covers skip their fillers and their blobs are read
    from the file directly (``net/weights.py``), so the weights sit in memory once.
    ``device`` and ``seed`` default to ``caffe.set_mode_*()`` / ``set_random_seed()``.
    """

    # Set by the build steps (build.py), listed here for readers and type checkers.
    layers: list
    layer_names: list[str]
    top_names: "NamesByLayer"
    bottom_names: "NamesByLayer"
    blobs: "OrderedDict[str, Blob]"
    inputs: list[str]
    outputs: list[str]
    params: "OrderedDict[str, list[Blob]]"
    learnable_params: list[LearnableParam]
    layer_times: dict[str, list[float]]
    backward_times: dict[str, list[float]]

    def __init__(
        self,
        model: str | Path | Any,
        *args: Any,
        weights: str | Path | Mapping[str, list] | None = None,
        phase: str | int | None = None,
        device: str | None = None,
        level: int = 0,
        stages: Iterable[str] = (),
        seed: int | None = None,
    ):
        weights, phase = net_args(args, weights, phase)
        device = mode_device() if device is None else device
        self.phase = phase
        self.device = device
        self.xp = xp_for_device(device)
        self.rng = np.random.default_rng(mode_seed() if seed is None else seed)
        # The build steps, in Caffe's order; each is a named function in build.py.
        stored = build.open_weights(weights, self.xp)  # before building: covered layers skip fillers
        raw = build.load_net_param(model)
        self.name: str = raw.name
        filtered = filter_layers(raw, PHASES[phase], level, tuple(stages))
        self.param = insert_splits(filtered)
        given_bottoms = build.given_bottom_names(filtered)
        build.start_empty(self)
        self._planner = Planner(self)
        try:
            for lp in self.param.layer:
                layer = build.create(self, lp, given_bottoms, stored)
                i = build.wire(self, lp, layer)
                build.set_up(self, i)
            build.name_outputs(self)
            build.plan_training(self)
            if stored is not None:
                stored.load_into(self)
        except BaseException:
            # Release what the layers built so far hold (threads, sockets, LMDBs).
            self.close(abort=True)
            raise

    # -- running -----------------------------------------------------------------
    def _run_step(self, i: int, step: str) -> None:
        """Run layer i's ``reshape`` or ``forward``; foreign errors get the layer's name."""
        layer = self.layers[i]
        try:
            if step == "reshape":
                layer.reshape(self._bottoms[i], self._tops[i])
            else:
                layer.forward(self._bottoms[i], self._tops[i])
        except TinyCaffeError:
            raise
        except Exception as exc:  # a bug or an unchecked shape: still say where
            raise layer_failure(layer, self._bottoms[i], step, exc) from exc
        if step == "reshape":
            self._planner.reshaped(i)

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
        """Propagate new input shapes through every layer (after blob.reshape).

        ``forward`` does this by itself when a blob entering the layers it runs
        changed shape, as Caffe's forward does; calling it first still works.
        """
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

        Keyword arguments fill input blobs by name. As in Caffe, the net
        reshapes itself when a blob entering the layers it runs has a new
        shape: an input of another batch size, or ``net.blobs['data']
        .reshape(...)`` before ``forward()``. Returns the net's outputs, or
        the ``end`` layer's tops when ``end`` is given, plus any blob named in
        ``blobs``.
        """
        lo = self._index(start, 0)
        hi = self._index(end, len(self.layers) - 1)
        if lo > hi:
            raise NetError(f"forward(): start layer '{start}' comes after end layer '{end}'")
        for name, value in inputs.items():
            if name not in self.blobs:
                raise NetError(f"forward(): '{name}' is not a blob of net '{self.name}'")
            blob = self.blobs[name]
            arr = self.xp.asarray(value, dtype=np.float32)
            if tuple(arr.shape) != blob.shape:
                if name not in self._planner.entry_blobs(lo, hi):
                    raise ShapeError(
                        f"forward(): '{name}' has shape {tuple(arr.shape)} but the net expects "
                        f"{blob.shape}, and it is not an input of the layers this forward runs"
                    )
                blob.reshape(arr.shape)  # the layers follow in _forward_range
            blob.data[...] = arr
        self.loss = self._forward_range(lo, hi)
        names = list(self.top_names[hi]) if end is not None else list(self.outputs)
        names += [b for b in (blobs or ()) if b not in names]
        return {n: self.blobs[n].data for n in names}

    def _forward_range(self, lo: int, hi: int, timed: bool = False) -> float:
        """Layers lo..hi through their plan (reshaped first if an entering blob changed shape)."""
        plan = self._planner.plan(lo, hi)
        if timed:
            return plan.run_timed(self, self.layer_times, self._sync)
        return plan.run(self)

    def forward_timed(self) -> float:
        """One full forward recording each layer's wall time in ``layer_times``.

        It runs the same plan as ``forward``: a ReLU fused into the layer before
        it records 0.0, its time counted in that layer's.
        """
        t0 = time.perf_counter()
        self.loss = self._forward_range(0, len(self.layers) - 1, timed=True)
        return time.perf_counter() - t0

    def _sync(self) -> None:
        if self.xp is not np:
            self.xp.cuda.Stream.null.synchronize()

    # -- training ----------------------------------------------------------------
    def backward(
        self,
        diffs: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        timed: bool = False,
        **top_diffs: Any,
    ) -> dict[str, Any]:
        """Back-propagate through layers ``start`` down to ``end`` (inclusive; default all).

        Loss tops start from their loss weight; keyword arguments set the diff
        of other blobs by name (pycaffe's ``net.backward(prob=d)``), and a
        diff written into ``net.blobs[name].diff`` beforehand is used as it
        is. Returns pycaffe's dict: the input blobs' diffs (or the bottoms of
        ``end``) plus any blob named in ``diffs``. Which layers run is fixed
        when the net is built; a net without a loss needs ``force_backward:
        true`` for gradients with respect to its input.

        Parameter gradients accumulate into ``blob.diff``; call
        ``clear_param_diffs()`` first (the solver does, once per iteration).
        ``timed`` records each layer's wall time in ``backward_times``. An
        in-place ReLU whose blob feeds only a Pooling or LRN layer right after
        it has its backward done inside that layer's (the same numbers; the
        ReLU records 0.0) when both are in the range.
        """
        for i, ws in enumerate(self._loss_weights):
            for w, top in zip(ws, self._tops[i]):
                if w:
                    top.diff[...] = w
        for name, value in top_diffs.items():
            if name not in self.blobs:
                raise NetError(f"backward(): '{name}' is not a blob of net '{self.name}'")
            blob = self.blobs[name]
            arr = self.xp.asarray(value, dtype=np.float32)
            try:
                fits = np.broadcast_shapes(tuple(arr.shape), blob.shape) == blob.shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(
                    f"backward(): the diff for '{name}' has shape {tuple(arr.shape)} but the blob "
                    f"has shape {blob.shape}"
                )
            blob.diff[...] = arr
        hi = self._index(start, len(self.layers) - 1)
        lo = self._index(end, 0)
        if lo > hi:
            raise NetError(f"backward(): start layer '{start}' comes before end layer '{end}'")
        # An in-place ReLU (negative_slope 0) whose blob goes only to the next layer, one
        # that offers ``fused_relu_backward`` (Pooling, LRN), has its backward done by that
        # layer's kernel: dx times (blob > 0) in the same pass, the same products as the
        # ReLU's own pass (a 3-4 MB read-modify-write per ReLU at batch 100, otherwise).
        # Both layers must be in the range, or a caller stopping between them would see
        # the masked gradient. The ReLU then records 0.0 in backward_times.
        folded: dict[int, int] = {}  # consumer index -> ReLU index
        for r in range(lo, hi):
            relu, nxt = self.layers[r], self.layers[r + 1]
            blob = self._tops[r][0] if self._tops[r] else None
            if (relu.type == "ReLU" and getattr(relu, "slope", None) == 0.0
                    and getattr(nxt, "fused_relu_backward", None) is False
                    and self._bottoms[r] == [blob] and self._bottoms[r + 1] == [blob]
                    and self._need_backward[r] and self._need_backward[r + 1]
                    and self._propagate_down[r][0] and self._propagate_down[r + 1][0]):
                folded[r + 1] = r
        skipped = set(folded.values())
        for i in range(hi, lo - 1, -1):
            if not self._need_backward[i]:
                continue
            layer = self.layers[i]
            if i in skipped:
                if timed:
                    self.backward_times.setdefault(layer.name, []).append(0.0)
                continue
            t0 = time.perf_counter()
            fold = i in folded
            try:
                if fold:
                    layer.fused_relu_backward = True
                layer.backward(self._tops[i], self._propagate_down[i], self._bottoms[i])
            except TinyCaffeError:
                raise
            except Exception as exc:
                raise NetError(
                    f"layer '{layer.name}' (type {layer.type}) failed in backward: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                if fold:
                    layer.fused_relu_backward = False
            if timed:
                self._sync()
                self.backward_times.setdefault(layer.name, []).append(time.perf_counter() - t0)
        names = list(self.bottom_names[lo]) if end is not None else list(self.inputs)
        names += [d for d in (diffs or ()) if d not in names]
        for n in names:
            if n not in self.blobs:
                raise NetError(f"backward(): '{n}' is not a blob of net '{self.name}'")
        return {n: self.blobs[n].diff for n in names}

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
            if layer.type in ("Data", "ImageData"):
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
        return copy_weights(self, weights)

    def save(self, path: str | Path) -> None:
        """Write the net's definition and learned blobs as a binary caffemodel."""
        save_weights(self, path)

    def __repr__(self) -> str:
        return f"<Net '{self.name}' phase={self.phase} layers={len(self.layers)}>"
