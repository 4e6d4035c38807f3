"""Shared pieces of the kernel tests: implementations under test, data, comparisons."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinycaffe.backend import asnumpy, gpu_available
from tinycaffe.kernels import numpy_kernels, sizes

from tinycaffe.kernels import numba_kernels  # None where Numba is absent or too old

# Where Numba is missing (32-bit Pi OS) or older than kernels.MIN_NUMBA, only the
# NumPy kernels run: tests of the Numba kernels skip, saying why.
NO_NUMBA = ("numba not usable here: "
            + (getattr(__import__("tinycaffe.kernels", fromlist=["x"]), "numba_unused_because", "")
               or "not installed"))
requires_numba = pytest.mark.skipif(numba_kernels is None, reason=NO_NUMBA)

# Hypothesis settings for the randomised comparisons: fast, no deadline (the
# first example of a run may include Numba's compile or cache load).
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GRAD = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Impl:
    """One fast implementation: its kernel module and how to move arrays to it."""

    name: str
    module: Any
    to_device: Callable[[np.ndarray], Any]

    def run(self, fn: str, *args, **kwargs) -> Any:
        dev = [self.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        out = getattr(self.module, fn)(*dev, **kwargs)
        if isinstance(out, tuple):
            return tuple(None if o is None else asnumpy(o) for o in out)
        return asnumpy(out)


def _cupy_impl() -> Impl:
    import cupy  # noqa: F401  (only reached when a GPU is there)

    return Impl("cupy", numpy_kernels, cupy.asarray)


IMPL_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("numba", id="numba",
                 marks=pytest.mark.skipif(numba_kernels is None, reason="numba not importable")),
    pytest.param("cupy", id="cupy",
                 marks=[pytest.mark.gpu,
                        pytest.mark.skipif(not gpu_available(), reason="no CuPy / GPU")]),
]


def make_impl(name: str) -> Impl:
    if name == "numpy":
        return Impl("numpy", numpy_kernels, lambda a: a)
    if name == "numba":
        return Impl("numba", numba_kernels, lambda a: a)
    return _cupy_impl()


def values(rng: np.random.Generator, shape, kind: str = "normal") -> np.ndarray:
    """float32 test data: 'normal', 'ties' (small integers: many equal maxima),
    or 'distinct' (well-separated values, no kinks for central differences)."""
    n = int(np.prod(shape))
    if kind == "ties":
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    if kind == "distinct":
        return (rng.permutation(n).reshape(shape) * 0.1 - n * 0.05).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def assert_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Element-wise |a - e| <= atol + rtol*|e|, NaN matching NaN (Caffe's 0/0 windows)."""
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


def pool_ok(size: int, kernel: int, stride: int, pad: int) -> bool:
    """A pooling geometry Caffe accepts (pad < kernel) with at least one output."""
    return pad < kernel and size + 2 * pad >= kernel and sizes.pool_out_size(size, kernel, stride, pad) >= 1


@contextlib.contextmanager
def threads_splitting(n_threads: int):
    """``n_threads`` kernel threads with the work threshold off, so that even small test
    arrays are cut into several ranges, as big ones are."""
    from tinycaffe import kernels
    from tinycaffe.kernels import threads

    old_n, old_below = threads.get_num_threads(), threads.SERIAL_BELOW_US
    kernels.set_num_threads(n_threads)
    threads.SERIAL_BELOW_US = 0.0
    try:
        yield
    finally:
        threads.SERIAL_BELOW_US = old_below
        kernels.set_num_threads(old_n)


@contextlib.contextmanager
def conv_settings_restored():
    """Put back the thread count, the serial threshold, the conv kernels' tile sizes and
    the BLAS switch after tests that change them (call only where Numba is usable)."""
    from tinycaffe.kernels import numba_cblas, numba_conv, threads

    names = ("MIN_TILE_COLS", "COL_BYTES", "BIG_COL_BYTES", "DW_TRANSPOSED_BELOW", "MIN_BLOCK_M")
    saved = (threads.get_num_threads(), threads.SERIAL_BELOW_US, numba_cblas.DISABLED,
             {n: getattr(numba_conv, n) for n in names})
    try:
        yield
    finally:
        threads.set_num_threads(saved[0])
        threads.SERIAL_BELOW_US, numba_cblas.DISABLED = saved[1], saved[2]
        for n, v in saved[3].items():
            setattr(numba_conv, n, v)
        numba_conv._plans.clear()
