"""Blob: a named N-d array (data, and diff for training), shared by layers and nets.

It sits below both `net/` and `layers/` so neither package imports the other
to get it.
"""
from __future__ import annotations

import math
from types import ModuleType
from typing import Sequence

import numpy as np

from .errors import ShapeError


class Blob:
    """A float32 array with Caffe's capacity rule: its buffer is kept while the shape fits.

    The blob owns one flat buffer for ``data`` (and one for ``diff``, made on
    first use: inference never pays for it); ``data`` and ``diff`` are views of
    the first ``count`` elements in the current shape. ``reshape`` to a count
    that fits the buffer only makes a new view, as Caffe's ``Blob::Reshape``
    does; a larger count allocates a new buffer of exactly that size.

    Two consequences, both Caffe's:

    * After a reshape to a *new* shape, ``data`` and ``diff`` hold whatever the
      buffer held before (values of the old shape), not zeros. Only a fresh
      buffer starts zeroed. Layers therefore write every element of their
      tops (and bottom diffs) instead of relying on zeros.
    * Memory is never given back by ``reshape``: a blob that once held batch
      32 keeps that buffer at batch 1. This is what lets a server whose batch
      size changes from one forward to the next (dynamic batching) run
      without allocating, and it is bounded by the largest shape the blob has
      held. ``set_view`` and ``adopt`` drop the blob's own buffer (the
      memory goes once nothing else holds it).

    Reshaping to the same shape keeps the very same ``data`` array object;
    a new shape gives a new view object (the Net's forward plans rely on
    this to notice a change of shape).
    """

    __slots__ = ("name", "xp", "_data", "_diff", "_buf", "_diff_buf", "_is_view")

    def __init__(self, name: str, xp: ModuleType = np, shape: Sequence[int] = ()):
        self.name = name
        self.xp = xp
        dims = tuple(int(d) for d in shape)
        # Zeros come from calloc: pages a loader overwrites are never touched twice.
        self._buf = xp.zeros(math.prod(dims), dtype=np.float32)
        self._data = self._buf.reshape(dims)
        self._diff_buf = None
        self._diff = None
        self._is_view = False

    @property
    def capacity(self) -> int:
        """Elements the blob's own data buffer holds (0 while ``data`` is a view or an
        adopted array that is not contiguous)."""
        return 0 if self._buf is None else int(self._buf.size)

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
        """The gradient of the loss with respect to ``data`` (its buffer allocated on first use).

        Like ``data``, a view of a buffer kept while the count fits: after a
        change of shape it holds stale values until a layer writes it.
        """
        diff = self._diff
        if diff is None or diff.shape != self._data.shape:
            count = self.count
            if self._diff_buf is None or self._diff_buf.size < count:
                self._diff_buf = self.xp.zeros(count, dtype=np.float32)
            diff = self._diff = self._diff_buf[:count].reshape(self._data.shape)
        return diff

    @diff.setter
    def diff(self, value) -> None:
        self.diff[...] = value

    def reshape(self, *shape: int | Sequence[int]) -> None:
        """Give the blob a new shape: a view of its buffer while the count fits the capacity,
        a new (zeroed) buffer when it grows. Never shrinks the buffer."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        dims = tuple(int(d) for d in shape)  # type: ignore[arg-type]
        if any(d < 0 for d in dims):
            raise ShapeError(f"blob '{self.name}': negative dimension in shape {dims}")
        if dims != tuple(self._data.shape) or self._is_view:
            count = math.prod(dims)
            if self._buf is None or self._buf.size < count:
                # Caffe's rule: grow to exactly the new count (no headroom).
                self._buf = self.xp.zeros(count, dtype=np.float32)
            self._data = self._buf[:count].reshape(dims)
            self._is_view = False

    def set_view(self, array) -> None:
        """Point the blob at ``array`` without copying.

        Split, Flatten and Reshape tops are views of their bottom, as in Caffe;
        the owning layer re-points them on every reshape, so a bottom that was
        reallocated never leaves a stale view behind.
        """
        self._data = array
        self._buf = None  # a view's blob never reads its own buffer again until a reshape
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
        # The adopted array becomes the buffer later reshapes reuse (if it is one flat block).
        self._buf = array.reshape(-1) if array.flags.c_contiguous else None
        self._is_view = False

    def __repr__(self) -> str:
        return f"Blob({self.name!r}, shape={self.shape})"
