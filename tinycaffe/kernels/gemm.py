"""A matrix product spread over tinycaffe's thread pool.

BLAS runs on one thread inside tinycaffe (threads.py says why), so a large
product, such as a fully connected layer, is cut here into row or column
blocks, one single-threaded BLAS call each, run by the pool.  Small products
stay one call on the calling thread.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .scratch import scratch
from .threads import get_num_threads, parallel_for, will_split

_FLOPS_PER_US = 1e5  # rough single-thread speed, for the serial threshold


def matmul(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None,
           accumulate: bool = False) -> np.ndarray:
    """``out = a @ b`` (or ``out += a @ b`` with ``accumulate``) for 2-D NumPy arrays.

    ``out`` (m, n) may be any view BLAS can write (unit stride along rows);
    without it a new array of the result dtype is returned.  The pool splits
    the rows of ``a`` (or, when ``a`` has fewer rows than threads, the columns
    of ``b``); each block is one BLAS call, so results do not depend on the
    thread count beyond BLAS's own blocking.
    """
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not chain")
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate needs an out array")
        out = np.empty((m, n), dtype=np.result_type(a, b))
    elif out.shape != (m, n):
        raise ValueError(f"matmul: out has shape {out.shape}, expected {(m, n)}")
    work = 2.0 * m * n * k / _FLOPS_PER_US
    threads = get_num_threads()
    by_rows = m >= threads
    size = m if by_rows else n
    if not will_split(size, work):
        _block(a, b, out, accumulate)
        return out

    def run(lo, hi):
        if by_rows:
            _block(a[lo:hi], b, out[lo:hi], accumulate)
        else:
            _block(a, b[:, lo:hi], out[:, lo:hi], accumulate)

    parallel_for(size, run, work=work)
    return out


def _block(a, b, out, accumulate):
    if not accumulate:
        np.matmul(a, b, out=out)
        return
    tmp = scratch("gemm", out.shape[0] * out.shape[1], out.dtype).reshape(out.shape)
    np.matmul(a, b, out=tmp)
    out += tmp
