"""The layer life cycle every layer type follows, as in Caffe.

check bottom/top counts -> ``setup`` (read parameters, make weight blobs) ->
``reshape`` (top shapes from bottom shapes) -> ``forward`` (-> ``backward``).
The Net drives that order; a layer only fills in the steps it needs.
"""
from __future__ import annotations

from types import ModuleType
from typing import ClassVar, NoReturn, Sequence

import numpy as np

from ..errors import NetError, ShapeError
from ..net.blob import Blob


class Layer:
    """Base class of every layer type.

    Subclasses set ``type`` (Caffe's type name) and the bottom/top count
    limits, and override ``setup``/``reshape``/``forward`` (and ``backward``).
    """

    type: ClassVar[str] = ""
    min_bottoms: ClassVar[int] = 0
    max_bottoms: ClassVar[int | None] = None
    min_tops: ClassVar[int] = 0
    max_tops: ClassVar[int | None] = None
    # True for layers whose forward may run with top == bottom (ReLU, Dropout...).
    in_place_ok: ClassVar[bool] = False

    def __init__(self, param, phase: str = "test", xp: ModuleType = np):
        self.param = param
        self.name: str = param.name
        self.phase = phase
        self.xp = xp
        self.blobs: list[Blob] = []
        # The bottom names as the prototxt gave them (before Split renaming).
        self.bottom_names: list[str] = list(param.bottom)
        # The Net replaces this with its own seeded generator so runs repeat.
        self.rng: np.random.Generator = np.random.default_rng(0)

    # -- helpers for subclasses ------------------------------------------------
    def fail(self, message: str) -> NoReturn:
        """Raise a ShapeError that names this layer."""
        raise ShapeError(f"layer '{self.name}' (type {self.type}): {message}")

    def bad_param(self, message: str) -> NoReturn:
        """Raise a NetError for a bad parameter of this layer."""
        raise NetError(f"layer '{self.name}' (type {self.type}): {message}")

    def add_param_blob(self, shape: Sequence[int], suffix: str, filler=None) -> Blob:
        """Create a learnable blob (weights, bias...) owned by this layer.

        ``filler`` is a FillerParameter; None leaves zeros (Caffe's default
        constant filler).
        """
        from ..fillers import fill

        blob = Blob(f"{self.name}.{suffix}", self.xp, shape)
        if filler is not None:
            values = fill(tuple(shape), filler, self.rng, f"layer '{self.name}' {suffix}")
            blob.data[...] = self.xp.asarray(values)
        self.blobs.append(blob)
        return blob

    def check_counts(self, n_bottoms: int, n_tops: int) -> None:
        """Caffe's CheckBlobCounts: the layer type fixes how many bottoms/tops it takes."""
        def describe(lo: int, hi: int | None) -> str:
            if hi == lo:
                return f"exactly {lo}"
            if hi is None:
                return f"at least {lo}"
            return f"{lo} to {hi}"

        if n_bottoms < self.min_bottoms or (self.max_bottoms is not None and n_bottoms > self.max_bottoms):
            raise NetError(
                f"layer '{self.name}' (type {self.type}) takes "
                f"{describe(self.min_bottoms, self.max_bottoms)} bottom blob(s), got {n_bottoms}"
            )
        if n_tops < self.min_tops or (self.max_tops is not None and n_tops > self.max_tops):
            raise NetError(
                f"layer '{self.name}' (type {self.type}) produces "
                f"{describe(self.min_tops, self.max_tops)} top blob(s), got {n_tops}"
            )

    # -- the life cycle ----------------------------------------------------------
    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """Read parameters and create weight blobs (called once)."""

    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """Set the top shapes from the bottom shapes (called whenever inputs change shape)."""
        raise NotImplementedError

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """Compute the tops from the bottoms."""
        raise NotImplementedError

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        """Compute bottom (and weight) gradients from the top gradients."""
        raise NetError(f"layer '{self.name}' (type {self.type}) has no backward pass yet")

    def in_place_buffer(self, bottom: Blob, top: Blob, current):
        """A buffer to keep the input in, for in-place layers whose backward needs it.

        Reused while the shape holds; when not in place, returns None and
        gives the top the bottom's shape instead.
        """
        if top is bottom:
            if current is None or current.shape != bottom.shape:
                return self.xp.empty(bottom.shape, dtype=bottom.data.dtype)
            return current
        top.reshape(bottom.shape)
        return None

    # Loss layers override this: Caffe gives them loss_weight 1 on their first top.
    def default_loss_weight(self, top_index: int) -> float:
        return 0.0

    def __repr__(self) -> str:
        return f"<{self.type} layer '{self.name}'>"


class NeuronLayer(Layer):
    """One bottom, one top of the same shape, in place allowed (Caffe's NeuronLayer)."""

    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True

    def reshape(self, bottoms, tops):
        if tops[0] is not bottoms[0]:
            tops[0].reshape(bottoms[0].shape)
