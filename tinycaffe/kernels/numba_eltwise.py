"""Element-wise kernels of the training step (ReLU forward and backward), compiled with Numba.

NumPy's expression ``dy * (x > 0).astype(float32)`` makes two full-size
temporaries and runs on one thread; in the cifar10_full training step its
three ReLU backwards took 2.3-4.8 ms (in different runs) of a 90 ms step.
Here each is one pass over contiguous slices, written into ``out``, split
over the shared pool: 0.7 ms (bench/results/train_step.md).

Caffe's numerics: forward ``max(x, 0) + slope * min(x, 0)`` (NaN kept, as
std::max keeps it; with slope 0 just ``max(x, 0)``, as the layer and the fused
convolution/pooling ReLU compute it: Caffe's ``0 * min(-inf, 0)`` would make
-inf NaN there), backward ``dy * ((x > 0) + slope * (x <= 0))`` (a
multiplication, not a select: an inf or NaN gradient at x <= 0 gives NaN, as in
Caffe).  ``x`` may be the ReLU's output instead of its input (an in-place ReLU):
its sign is the same wherever it matters.

The loops run over slices taken first (``x[lo:hi]``) and indexed from 0: with
``range(lo, hi)`` Numba's guard against negative indices stopped LLVM from
vectorising and the kernel ran 2.5x slower (0.55 vs 0.22 ms on a conv2-sized
blob).  In place (``out is dy``) a separate kernel avoids the aliasing check.
Plain portable Numba, fastmath off.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .threads import parallel_for

# The same options as numba_kernels._JIT.
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

# Single-thread microseconds per element for the thread pool's work hint,
# measured on conv2's ReLU (819200 elements, cache-cold: ~0.25 ms).
_US_PER_ELEM = 0.0003


@njit(**_JIT)
def _relu_forward_span(x, slope, y, lo, hi):
    xs, ys = x[lo:hi], y[lo:hi]
    z = np.float32(0)
    if slope == 0.0:
        for i in range(ys.size):
            v = xs[i]
            ys[i] = z if v < z else v
    else:
        s = np.float32(slope)
        for i in range(ys.size):
            v = xs[i]
            ys[i] = (z if v < z else v) + s * (v if v < z else z)


@njit(**_JIT)
def _relu_backward_span(x, dy, slope, dx, lo, hi):
    xs, gs, ds = x[lo:hi], dy[lo:hi], dx[lo:hi]
    z = np.float32(0)
    if slope == 0.0:
        for i in range(ds.size):
            ds[i] = gs[i] * np.float32(xs[i] > z)
    else:
        s = np.float32(slope)
        for i in range(ds.size):
            v = xs[i]
            ds[i] = gs[i] * (np.float32(v > z) + s * np.float32(v <= z))


@njit(**_JIT)
def _relu_backward_span_inplace(x, slope, d, lo, hi):
    xs, ds = x[lo:hi], d[lo:hi]
    z = np.float32(0)
    if slope == 0.0:
        for i in range(ds.size):
            ds[i] = ds[i] * np.float32(xs[i] > z)
    else:
        s = np.float32(slope)
        for i in range(ds.size):
            v = xs[i]
            ds[i] = ds[i] * (np.float32(v > z) + s * np.float32(v <= z))


def _flat(name, a, size):
    if a.dtype != np.float32 or not a.flags.c_contiguous or a.size != size:
        raise ValueError(f"{name} must be a C-contiguous float32 array of {size} elements, "
                         f"got {a.shape} {a.dtype.name}")
    return a.reshape(-1)


def relu_forward(x: np.ndarray, slope: float, out: np.ndarray) -> np.ndarray:
    """out = max(x, 0) + slope * min(x, 0); ``out`` may be ``x`` (in place)."""
    xf = _flat("x", x, x.size)
    yf = _flat("out", out, x.size)
    s = float(slope)
    parallel_for(xf.size, lambda lo, hi: _relu_forward_span(xf, s, yf, lo, hi),
                 work=_US_PER_ELEM * xf.size)
    return out


def relu_backward(x: np.ndarray, dy: np.ndarray, slope: float, out: np.ndarray) -> np.ndarray:
    """out = dy * ((x > 0) + slope * (x <= 0)); ``out`` may be ``dy`` (in place).
    ``x`` is the ReLU's input, or its output for an in-place ReLU."""
    xf = _flat("x", x, x.size)
    gf = _flat("dy", dy, x.size)
    df = _flat("out", out, x.size)
    s = float(slope)
    if np.may_share_memory(gf, df):
        if gf.ctypes.data != df.ctypes.data:
            raise ValueError("out must be dy itself or not overlap it")
        fn = lambda lo, hi: _relu_backward_span_inplace(xf, s, df, lo, hi)  # noqa: E731
    else:
        fn = lambda lo, hi: _relu_backward_span(xf, gf, s, df, lo, hi)  # noqa: E731
    parallel_for(xf.size, fn, work=_US_PER_ELEM * xf.size)
    return out
