"""Compute kernels: convolution, pooling and LRN with Caffe's exact semantics.

Kernels take arrays and plain numbers, never layer objects; float32 NCHW.
Each public function picks its implementation once per call:

* CuPy arrays -> ``numpy_kernels`` (written against ``xp``, runs on the GPU);
* NumPy arrays -> ``numba_kernels`` when Numba imports and
  ``backend.kernel_preference()`` is "numba" (the default), else
  ``numpy_kernels`` (TINYCAFFE_KERNELS=numpy).

``reference`` holds the loop-by-loop specification the tests compare against.
Tuple arguments (stride, pad, kernel, dilation) also accept a single int.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Optional

from ..backend import get_array_module, kernel_preference
from . import numpy_kernels
from .sizes import IntPair, conv_out_size, pool_out_size
from .threads import get_num_threads, set_num_threads

try:
    from . import numba_kernels
except ImportError:  # Numba missing or broken: the vectorised NumPy path still works
    numba_kernels = None  # type: ignore[assignment]

__all__ = [
    "conv_out_size", "pool_out_size", "conv_forward", "conv_backward", "conv_transpose",
    "pool_forward", "pool_backward", "lrn_forward", "lrn_backward",
    "get_num_threads", "set_num_threads", "implementation",
]

Array = Any


def implementation(*arrays: Array) -> ModuleType:
    """The kernel module that will run for ``arrays`` (see the module docstring)."""
    xp = get_array_module(*arrays)
    if xp.__name__ == "numpy" and numba_kernels is not None and kernel_preference() == "numba":
        return numba_kernels
    return numpy_kernels


def conv_forward(x: Array, w: Array, b: Optional[Array], stride: IntPair = (1, 1),
                 pad: IntPair = (0, 0), dilation: IntPair = (1, 1), group: int = 1,
                 out: Optional[Array] = None) -> Array:
    """Caffe convolution (cross-correlation, zero padding, floor output size).

    x (N, C, H, W), w (M, C//group, KH, KW), b (M,) or None -> y (N, M, OH, OW)
    with OH = conv_out_size(H, KH, stride, pad, dilation).  ``out``: an optional
    C-contiguous (N, M, OH, OW) array to write into (it is also returned).
    """
    return implementation(x).conv_forward(x, w, b, stride, pad, dilation, group, out=out)


def conv_backward(x: Array, w: Array, dy: Array, stride: IntPair = (1, 1),
                  pad: IntPair = (0, 0), dilation: IntPair = (1, 1), group: int = 1,
                  need_dx: bool = True) -> tuple[Optional[Array], Array, Array]:
    """Gradients of conv_forward: (dx or None when not ``need_dx``, dw, db).

    dy has y's shape; dw has w's shape; db is (M,) (ignore it without a bias).
    """
    return implementation(x).conv_backward(x, w, dy, stride, pad, dilation, group, need_dx)


def conv_transpose(x: Array, w: Array, b: Optional[Array], stride: IntPair = (1, 1),
                   pad: IntPair = (0, 0), dilation: IntPair = (1, 1), group: int = 1,
                   out_hw: tuple[int, int] = (0, 0)) -> Array:
    """The adjoint of conv_forward (Caffe's Deconvolution forward).

    x (N, M, H, W), w (M, C//group, KH, KW) as Caffe stores deconvolution
    weights, b (C,) or None -> y (N, C, OH, OW) with ``out_hw`` = (OH, OW) such
    that conv_out_size(OH, ...) == H. Runs the xp-generic NumPy/CuPy code.
    """
    return numpy_kernels.conv_transpose(x, w, b, stride, pad, dilation, group, out_hw=out_hw)


def pool_forward(x: Array, method: str, kernel: IntPair, stride: IntPair, pad: IntPair,
                 out: Optional[Array] = None) -> Array:
    """Caffe MAX ("max") or AVE ("ave") pooling, output size pool_out_size (ceil).

    MAX: window [o*stride-pad, +kernel) clipped to the input, start value
    -FLT_MAX, strict '>' (NaN never wins).  AVE: the clipped-window sum divided
    by the window size clipped to the *padded* input only, as Caffe does.
    Global pooling is the caller's job (kernel = H, W; stride 1; pad 0).
    """
    return implementation(x).pool_forward(x, method, kernel, stride, pad, out=out)


def pool_backward(x: Array, y: Array, dy: Array, method: str, kernel: IntPair,
                  stride: IntPair, pad: IntPair) -> Array:
    """dx of pool_forward.  MAX: each dy goes to its window's first maximum in
    Caffe's scan order (recomputed from x, exactly Caffe's mask; ``y`` may be
    None); an empty or all -inf window passes nothing.  AVE: dy / pool_size
    spread over the clipped window."""
    return implementation(x).pool_backward(x, y, dy, method, kernel, stride, pad)


def lrn_forward(x: Array, local_size: int, alpha: float, beta: float, k: float,
                region: str, out: Optional[Array] = None) -> Array:
    """Caffe LRN, y = x * scale^-beta, ``local_size`` odd.

    region "across": scale = k + alpha/local_size * sum of x^2 over channels
    c-(local_size-1)//2 .. c+local_size//2 clipped to [0, C).
    region "within": scale = 1 + alpha * AVE-pool(x^2, kernel local_size,
    pad (local_size-1)//2, stride 1); k is not used (Caffe's layer ignores it),
    and the AVE divisor is local_size^2 everywhere, borders included.
    """
    return implementation(x).lrn_forward(x, local_size, alpha, beta, k, region, out=out)


def lrn_backward(x: Array, y: Array, dy: Array, local_size: int, alpha: float, beta: float,
                 k: float, region: str) -> Array:
    """dx of lrn_forward (y is its output): dy * scale^-beta minus
    2*beta * x * (the adjoint of the neighbourhood sum applied to dy*y/scale)."""
    return implementation(x).lrn_backward(x, y, dy, local_size, alpha, beta, k, region)
