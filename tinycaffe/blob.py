"""Blob: a named N-d array (data, and diff for training), shared by layers and nets.

It sits below both `net/` and `layers/` so neither package imports the other
to get it.
"""
from __future__ import annotations

from types import ModuleType
from typing import Sequence

import numpy as np

from .errors import ShapeError


class Blob:
    """A float32 array that keeps its buffer while its shape stays the same.

    Layers call ``reshape`` on every forward set-up; the buffer is only
    reallocated when the shape changes, so a steady-state forward allocates
    nothing. ``diff`` is created on first use: inference never pays for it.
    """

    __slots__ = ("name", "xp", "_data", "_diff", "_is_view")

    def __init__(self, name: str, xp: ModuleType = np, shape: Sequence[int] = ()):
        self.name = name
        self.xp = xp
        # Zeros come from calloc: pages a loader overwrites are never touched twice.
        self._data = xp.zeros(tuple(shape), dtype=np.float32)
        self._diff = None
        self._is_view = False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def count(self) -> int:
        return int(self._data.size)

    @property
    def num_axes(self) -> int:
        return self._data.ndim

    # pycaffe's legacy 4-d accessors (Caffe's LegacyShape: missing axes read as 1).
    def _legacy(self, index: int) -> int:
        ndim = self._data.ndim
        if ndim > 4:
            raise ShapeError(f"blob '{self.name}': num/channels/height/width need at most 4 axes, "
                             f"the blob has shape {self.shape}")
        return int(self._data.shape[index]) if index < ndim else 1

    @property
    def num(self) -> int:
        """Axis 0 (pycaffe's ``blob.num``)."""
        return self._legacy(0)

    @property
    def channels(self) -> int:
        """Axis 1, or 1 for blobs with fewer axes."""
        return self._legacy(1)

    @property
    def height(self) -> int:
        """Axis 2, or 1 for blobs with fewer axes."""
        return self._legacy(2)

    @property
    def width(self) -> int:
        """Axis 3, or 1 for blobs with fewer axes."""
        return self._legacy(3)

    @property
    def data(self):
        """The values (NumPy or CuPy array)."""
        return self._data

    @data.setter
    def data(self, value) -> None:
        value = self.xp.asarray(value, dtype=np.float32)
        if tuple(value.shape) != self.shape:
            raise ShapeError(
                f"blob '{self.name}': cannot assign an array of shape {tuple(value.shape)} "
                f"to a blob of shape {self.shape}; call reshape first"
            )
        self.data[...] = value

    @property
    def diff(self):
        """The gradient of the loss with respect to ``data`` (allocated lazily)."""
        if self._diff is None or self._diff.shape != self.shape:
            self._diff = self.xp.zeros(self.shape, dtype=np.float32)
        return self._diff

    @diff.setter
    def diff(self, value) -> None:
        self.diff[...] = value

    def reshape(self, *shape: int | Sequence[int]) -> None:
        """Give the blob a new shape; keeps the buffer when the shape is unchanged."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        dims = tuple(int(d) for d in shape)  # type: ignore[arg-type]
        if any(d < 0 for d in dims):
            raise ShapeError(f"blob '{self.name}': negative dimension in shape {dims}")
        if dims != tuple(self._data.shape) or self._is_view:
            self._data = self.xp.zeros(dims, dtype=np.float32)
            self._is_view = False

    def set_view(self, array) -> None:
        """Point the blob at ``array`` without copying.

        Split, Flatten and Reshape tops are views of their bottom, as in Caffe;
        the owning layer re-points them on every reshape, so a bottom that was
        reallocated never leaves a stale view behind.
        """
        self._data = array
        self._is_view = True

    def adopt(self, array) -> None:
        """Take ``array`` (float32, this blob's shape) as the blob's own buffer, without copying.

        For a loader handing over arrays nobody else holds: loading weights
        this way keeps one copy of them in memory, not two.
        """
        if tuple(array.shape) != self.shape or array.dtype != np.float32:
            raise ShapeError(
                f"blob '{self.name}': cannot adopt a {array.dtype} array of shape "
                f"{tuple(array.shape)} for a blob of shape {self.shape}"
            )
        self._data = array
        self._is_view = False

    def __repr__(self) -> str:
        return f"Blob({self.name!r}, shape={self.shape})"
