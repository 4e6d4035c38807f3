"""The parts of pycaffe's ``caffe.Net`` that tinycaffe's Net spells differently or lacks.

pycaffe scripts use ``net._layer_names``, ``net.layer_dict``,
``net.blob_loss_weights``, ``net.top_names['conv1']``, ``net.forward_all``,
``net.save_hdf5``, ``net.share_with``... ``Net`` inherits them from here, so
the Net itself keeps only its own machinery. tinycaffe's own names stay.
"""
from __future__ import annotations

from collections import OrderedDict
from itertools import zip_longest
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..backend import asnumpy
from ..errors import NetError, ShapeError


class NamesByLayer(list):
    """Per-layer blob names: a list by layer index (tinycaffe) that also answers by layer name (pycaffe).

    ``net.top_names[3]`` and ``net.top_names["conv1"]`` both work, and so do
    ``keys()``, ``values()`` and ``items()`` as on pycaffe's OrderedDict.
    Iterating yields the per-layer lists, in layer order (tinycaffe's list).
    """

    def __init__(self, layer_names: list[str], names: Iterable[list[str]]):
        super().__init__(names)
        self._layer_names = layer_names

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            try:
                return super().__getitem__(self._layer_names.index(key))
            except ValueError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        if isinstance(key, str):
            return key in self._layer_names
        return super().__contains__(key)

    def keys(self) -> list[str]:
        return list(self._layer_names)

    def values(self) -> list[list[str]]:
        return list(self)

    def items(self) -> list[tuple[str, list[str]]]:
        return list(zip(self._layer_names, self))

    def get(self, key: str, default=None):
        return self[key] if key in self else default


class PycaffeNet:
    """pycaffe's Net attributes and methods, on top of tinycaffe's Net."""

    # Set by Net.__init__; declared here for readers and type checkers.
    layer_names: list[str]
    layers: list
    blobs: "OrderedDict[str, Any]"
    inputs: list[str]
    outputs: list[str]

    @property
    def _layer_names(self) -> list[str]:
        """pycaffe's name for ``layer_names``."""
        return self.layer_names

    @property
    def _blob_names(self) -> list[str]:
        """Blob names, bottom to top."""
        return list(self.blobs)

    @property
    def _blobs(self) -> list:
        return list(self.blobs.values())

    @property
    def layer_dict(self) -> "OrderedDict[str, Any]":
        """Layers by name, bottom to top."""
        return OrderedDict(zip(self.layer_names, self.layers))

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    @property
    def blob_loss_weights(self) -> "OrderedDict[str, float]":
        """Each blob's loss weight (0 for blobs that are no loss), bottom to top.

        As in Caffe, a blob written by several (in-place) layers takes the
        weight the last of them gives it.
        """
        weights: "OrderedDict[str, float]" = OrderedDict((name, 0.0) for name in self.blobs)
        for tops, ws in zip(self.top_names, self._loss_weights):  # type: ignore[attr-defined]
            for t, w in zip(tops, ws):
                weights[t] = float(w)
        return weights

    def _forward(self, start: int, end: int) -> float:
        """pycaffe's ``_forward(start_index, end_index)``: run layers by index; returns the loss."""
        self.forward(start=self.layer_names[start], end=self.layer_names[end])  # type: ignore[attr-defined]
        return self.loss  # type: ignore[attr-defined]

    def _backward(self, start: int, end: int) -> None:
        """pycaffe's ``_backward(start_index, end_index)``: back-propagate by layer index."""
        self.backward(start=self.layer_names[start], end=self.layer_names[end])  # type: ignore[attr-defined]

    # -- batches -------------------------------------------------------------------------
    def _batch_size(self) -> int:
        first = next(iter(self.blobs.values()), None)
        if first is None or not first.shape:
            raise NetError("forward_all(): the net's first blob has no batch axis")
        return first.shape[0]

    def _batch(self, arrays: dict[str, Any]) -> Iterator[dict[str, np.ndarray]]:
        """Cut arrays into the net's batch size; the last batch is padded with zeros."""
        if not arrays:
            return
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ShapeError(f"forward_all(): the inputs have different lengths: {lengths}")
        num = next(iter(lengths.values()))
        size = self._batch_size()
        for i in range(0, num - num % size, size):
            yield {name: np.asarray(a[i:i + size]) for name, a in arrays.items()}
        rest = num % size
        if rest:
            padded = {}
            for name, a in arrays.items():
                tail = np.asarray(a[num - rest:])
                padded[name] = np.concatenate([tail, np.zeros((size - rest,) + tail.shape[1:], tail.dtype)])
            yield padded

    def forward_all(self, blobs: list[str] | None = None, **inputs: Any) -> dict[str, np.ndarray]:
        """Run any number of items through the net, a batch at a time (pycaffe's ``forward_all``).

        ``inputs`` maps input blob names to arrays of N items each; returns
        {output (and each of ``blobs``): array of N results}. With no inputs,
        one forward from the net's own data layers.
        """
        if not inputs:
            return {k: asnumpy(v).copy() for k, v in self.forward(blobs=blobs).items()}  # type: ignore[attr-defined]
        results: dict[str, list] = {}
        num = len(next(iter(inputs.values())))
        for batch in self._batch(inputs):
            outs = self.forward(blobs=blobs, **batch)  # type: ignore[attr-defined]
            for name, value in outs.items():
                results.setdefault(name, []).append(asnumpy(value).copy())
        return {name: np.concatenate(parts)[:num] for name, parts in results.items()}

    def forward_backward_all(self, blobs: list[str] | None = None, diffs: list[str] | None = None,
                             **arrays: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Forward and backward in batches (pycaffe's ``forward_backward_all``).

        Keyword arrays named after inputs feed the forward, those named after
        outputs are the top diffs of the backward. Returns (blobs, diffs),
        each {name: array of N items}.
        """
        fwd = {k: v for k, v in arrays.items() if k in self.inputs}
        bwd = {k: v for k, v in arrays.items() if k in self.outputs}
        unknown = sorted(set(arrays) - set(fwd) - set(bwd))
        if unknown:
            raise NetError(f"forward_backward_all(): {unknown} are neither inputs {self.inputs} "
                           f"nor outputs {self.outputs}")
        num = len(next(iter(arrays.values()))) if arrays else self._batch_size()
        outs: dict[str, list] = {}
        grads: dict[str, list] = {}
        for fb, bb in zip_longest(self._batch(fwd), self._batch(bwd), fillvalue={}):
            for name, value in self.forward(blobs=blobs, **fb).items():  # type: ignore[attr-defined]
                outs.setdefault(name, []).append(asnumpy(value).copy())
            for name, value in self.backward(diffs=diffs, **bb).items():  # type: ignore[attr-defined]
                grads.setdefault(name, []).append(asnumpy(value).copy())
        return ({k: np.concatenate(v)[:num] for k, v in outs.items()},
                {k: np.concatenate(v)[:num] for k, v in grads.items()})

    # -- weights -------------------------------------------------------------------------
    def save_hdf5(self, path: str | Path) -> None:
        """Write the learned blobs as Caffe's HDF5 weights (``/data/<layer>/<i>``)."""
        from ..solver.snapshot import write_model

        write_model(self, str(path), hdf5=True)

    def load_hdf5(self, path: str | Path) -> list[str]:
        """Copy learned blobs from a Caffe HDF5 weights file; returns the layers filled."""
        return self.copy_from(path)  # type: ignore[attr-defined]

    def share_with(self, other) -> None:
        """Use ``other``'s parameter blobs for same-named layers (Caffe's ShareTrainedLayersWith)."""
        self.share_weights_with(other)  # type: ignore[attr-defined]
