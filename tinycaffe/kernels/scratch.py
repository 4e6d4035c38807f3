"""Per-thread scratch buffers, reused across kernel calls.

Each thread (pool worker or caller) keeps one flat buffer per role and dtype,
grown (never shrunk) when a larger one is asked for, so a kernel called again
on the same shapes allocates nothing.  Buffers are thread-local: two threads
never share one, whatever Net they serve.  A thread's buffers go when the
thread ends, or for all threads with ``release_all_scratch``.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np


class _Buffers(dict):
    """One thread's buffers (a dict subclass, so the registry can hold it weakly;
    hashed by identity, as a registry member must be)."""

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other


_local = threading.local()
_all: "weakref.WeakSet[_Buffers]" = weakref.WeakSet()  # live threads' buffers only
_all_lock = threading.Lock()


def scratch(role: str, size: int, dtype) -> np.ndarray:
    """A flat ``size``-element buffer of ``dtype`` owned by the calling thread for
    ``role``.  Its contents are whatever its last user left there."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = _Buffers()
        with _all_lock:
            _all.add(bufs)
    key = (role, np.dtype(dtype).str)
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        bufs[key] = buf
    return buf[:size]


def _live() -> list:
    with _all_lock:
        return list(_all)


def release_all_scratch() -> None:
    """Drop every thread's buffers, e.g. after a large net on a small device; the
    memory returns once no running kernel holds a view.  Later calls allocate again."""
    for bufs in _live():
        bufs.clear()


def scratch_bytes() -> int:
    """Bytes held by all live threads' buffers."""
    return sum(b.nbytes for bufs in _live() for b in list(bufs.values()))


def scratch_aligned(role: str, size: int, dtype, align: int = 64) -> np.ndarray:
    """As ``scratch``, with the first element on an ``align``-byte boundary (a
    cache line): vector loads from a misaligned row straddle two lines."""
    itemsize = np.dtype(dtype).itemsize
    buf = scratch(role, size + align // itemsize, dtype)
    skip = (-buf.ctypes.data % align) // itemsize
    return buf[skip:skip + size]
