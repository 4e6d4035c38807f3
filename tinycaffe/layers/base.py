"""The layer life cycle every layer type follows, as in Caffe.

check bottom/top counts -> ``setup`` (read parameters, make weight blobs) ->
``reshape`` (top shapes from bottom shapes) -> ``forward`` (-> ``backward``).
``Layer.set_up`` runs the first three, as Caffe's ``Layer::SetUp`` does, for
the Net and for anything that drives one layer alone; a layer type only fills
in the steps it needs.
"""
from __future__ import annotations

from types import ModuleType
from typing import ClassVar, NoReturn, Sequence

import numpy as np

from .. import fillers  # looked up per call, so tests can count fills
from ..blob import Blob
from ..errors import NetError, ShapeError, TinyCaffeError


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

    def __init__(
        self,
        param,
        phase: str = "test",
        xp: ModuleType = np,
        rng: np.random.Generator | None = None,
        bottom_names: Sequence[str] | None = None,
        fill_params: bool = True,
    ):
        """``param`` is the layer's LayerParameter; ``rng`` feeds fillers and
        random layers (default: seeded with 0, so runs repeat); ``bottom_names``
        are the names the prototxt gave, before Split layers renamed them
        (default: ``param.bottom``); ``fill_params=False`` leaves weight blobs
        zero for a loader to overwrite.
        """
        self.param = param
        self.name: str = param.name
        self.phase = phase
        self.xp = xp
        self.blobs: list[Blob] = []
        # Layers that talk to the outside world by blob name (Sink) need the
        # names the prototxt gave, not the ones Split layers put in param.bottom.
        self.bottom_names: list[str] = list(param.bottom if bottom_names is None else bottom_names)
        # A Net passes one seeded generator to all its layers so runs repeat.
        self.rng: np.random.Generator = np.random.default_rng(0) if rng is None else rng
        # False when a weights file will overwrite every parameter blob: the
        # fillers' work (and their memory traffic) would be thrown away.
        self.fill_params: bool = fill_params

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
        constant filler). With ``fill_params`` off the blob stays zeros
        (untouched pages, so no memory is committed) for a loader to overwrite.
        """
        blob = Blob(f"{self.name}.{suffix}", self.xp, shape)
        if filler is not None and self.fill_params:
            values = fillers.fill(tuple(shape), filler, self.rng, f"layer '{self.name}' {suffix}")
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

    def failure(self, step: str, bottoms: Sequence[Blob], exc: BaseException) -> NetError:
        """The NetError for a foreign exception in this layer's ``step``: it names the layer and bottom shapes."""
        shapes = ", ".join(f"{b.name}{b.shape}" for b in bottoms) or "none"
        return NetError(
            f"layer '{self.name}' (type {self.type}) failed in {step} "
            f"with bottoms {shapes}: {type(exc).__name__}: {exc}"
        )

    # -- the life cycle ----------------------------------------------------------
    def set_up(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        """Caffe's ``Layer::SetUp``: check the blob counts, then ``setup``, then ``reshape``.

        A TinyCaffeError passes through as raised; any other exception (a bug,
        an unchecked shape) becomes a NetError naming this layer, the step and
        the bottom shapes, so a failure in a big net still says where it was.
        """
        self.check_counts(len(bottoms), len(tops))
        for step in ("setup", "reshape"):
            try:
                getattr(self, step)(bottoms, tops)
            except TinyCaffeError:
                raise
            except Exception as exc:
                raise self.failure(step, bottoms, exc) from exc

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

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Whether ``force_backward: true`` may send a gradient into this bottom.

        Caffe's LossLayer refuses its labels (bottom 1); ContrastiveLoss its
        similarity flags (bottom 2); EuclideanLoss's two bottoms are both data.
        """
        if self.type == "EuclideanLoss":
            return True
        if self.type == "ContrastiveLoss":
            return bottom_index != 2
        if self.default_loss_weight(0):
            return bottom_index != 1
        return True

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
