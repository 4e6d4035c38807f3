"""The one thread pool the CPU kernels share, and BLAS thread control.

Why not Numba's ``parallel=True`` plus a multi-threaded BLAS: on the 2-core
dev machine, alternating an OpenMP region (Numba) with an OpenBLAS call made
each spin-waiting pool starve the other (im2col + GEMM of 8 images: 1.2 + 1.0
ms apart, 8 ms in turn), and with another process busy on one core even
serial im2col + 2-thread OpenBLAS ran 10-100x slower than the same work on
this pool.  So the CPU path uses a single
pool of plain Python threads that block (never spin) when idle; each worker
runs serial, GIL-free Numba kernels and single-threaded BLAS on its own slice
of the batch.  One pool, no oversubscription, and each worker's im2col
buffer stays in its own core's cache.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional

_lock = threading.Lock()  # one pooled kernel at a time: BLAS limits are process-wide
_pool: Optional[ThreadPoolExecutor] = None
_n_threads: Optional[int] = None
_blas_ctl = None
_blas_checked = False


def _default_threads() -> int:
    env = os.environ.get("TINYCAFFE_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """Threads the CPU kernels use (TINYCAFFE_NUM_THREADS, else the usable cores)."""
    global _n_threads
    if _n_threads is None:
        _n_threads = _default_threads()
    return _n_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads from now on (the pool is rebuilt on next use)."""
    global _n_threads, _pool
    with _lock:
        _n_threads = max(1, int(n))
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max(1, get_num_threads() - 1), thread_name_prefix="tinycaffe")
    return _pool


def _blas_controller():
    global _blas_ctl, _blas_checked
    if not _blas_checked:
        _blas_checked = True
        try:
            from threadpoolctl import ThreadpoolController

            _blas_ctl = ThreadpoolController()
        except Exception:  # threadpoolctl missing: BLAS keeps its own threads
            _blas_ctl = None
    return _blas_ctl


def can_pin_blas() -> bool:
    """True when BLAS can be held to one thread (needs threadpoolctl)."""
    return _blas_controller() is not None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread for the duration (no-op without threadpoolctl)."""
    ctl = _blas_controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into at most ``parts`` contiguous, non-empty, near-equal ranges."""
    if n <= 0:
        return []
    parts = max(1, min(parts, n))
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def parallel_for(n: int, fn: Callable[[int, int], None], blas_single: bool = False) -> None:
    """Run fn(lo, hi) over near-equal slices of range(n), one slice per thread.

    The calling thread does the last slice itself.  With ``blas_single`` BLAS
    is held to one thread meanwhile, since the slices already fill the cores.
    """
    ranges = split(n, get_num_threads())
    with _lock:
        ctx = single_threaded_blas() if blas_single else contextlib.nullcontext()
        with ctx:
            if len(ranges) <= 1:
                for lo, hi in ranges:
                    fn(lo, hi)
                return
            futures = [_get_pool().submit(fn, lo, hi) for lo, hi in ranges[:-1]]
            try:
                fn(*ranges[-1])
            finally:
                for f in futures:
                    f.result()  # re-raises a worker's exception here
