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

import importlib
from types import ModuleType
from typing import Any, Optional

from ..backend import get_array_module, kernel_preference
from . import numpy_kernels
from .sizes import IntPair, conv_out_size, pool_out_size
from .threads import get_num_threads, set_num_threads

# The oldest Numba our kernels are tested with. Debian bookworm's python3-numba is
# 0.56 (what 32-bit Raspberry Pi OS users get from apt): under tools/arm_check.sh
# armv7 it aborted the process inside LLVM while compiling a kernel, so an older
# Numba is left unused rather than trusted.
MIN_NUMBA = (0, 58)
numba_kernels = None  # type: ignore[assignment]
numba_unused_because = ""  # why the NumPy kernels run when Numba is importable


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


try:
    import numba as _numba
except ImportError:  # Numba missing or broken: the vectorised NumPy path still works
    _numba = None
if _numba is not None:
    if _version(_numba.__version__) < MIN_NUMBA:
        numba_unused_because = (f"numba {_numba.__version__} is older than "
                                f"{'.'.join(map(str, MIN_NUMBA))}")
    else:
        try:
            # import_module, not "from . import": the None bound above would be taken as the module.
            numba_kernels = importlib.import_module(".numba_kernels", __name__)
        except ImportError:
            numba_unused_because = "numba failed to import"

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
                 out: Optional[Array] = None, relu: bool = False) -> Array:
    """Caffe convolution (cross-correlation, zero padding, floor output size).

    x (N, C, H, W), w (M, C//group, KH, KW), b (M,) or None -> y (N, M, OH, OW)
    with OH = conv_out_size(H, KH, stride, pad, dilation).  ``out``: an optional
    C-contiguous (N, M, OH, OW) array of x's dtype to write into (it is also
    returned).  ``relu``: apply Caffe's ReLU (max(y, 0), NaN kept) in the same
    output pass, as a Convolution followed by an in-place ReLU would.
    """
    return implementation(x).conv_forward(x, w, b, stride, pad, dilation, group, out=out, relu=relu)


def conv_backward(x: Array, w: Array, dy: Array, stride: IntPair = (1, 1),
                  pad: IntPair = (0, 0), dilation: IntPair = (1, 1), group: int = 1,
                  need_dx: bool = True, dx_out: Optional[Array] = None,
                  dw_out: Optional[Array] = None,
                  db_out: Optional[Array] = None) -> tuple[Optional[Array], Array, Array]:
    """Gradients of conv_forward: (dx or None when not ``need_dx``, dw, db).

    dy has y's shape; dw has w's shape; db is (M,) (ignore it without a bias).
    Optional C-contiguous buffers of x's dtype: ``dx_out`` (x's shape) is
    *overwritten* with dx; the weight and bias gradients are *added* into
    ``dw_out`` (w's shape) and ``db_out`` (M,), as Caffe accumulates parameter
    gradients.  Each given buffer is the one returned in its place.
    """
    return implementation(x).conv_backward(x, w, dy, stride, pad, dilation, group, need_dx,
                                           dx_out=dx_out, dw_out=dw_out, db_out=db_out)


def conv_transpose(x: Array, w: Array, b: Optional[Array], stride: IntPair = (1, 1),
                   pad: IntPair = (0, 0), dilation: IntPair = (1, 1), group: int = 1,
                   out_hw: tuple[int, int] = (0, 0), out: Optional[Array] = None) -> Array:
    """The adjoint of conv_forward (Caffe's Deconvolution forward).

    x (N, M, H, W), w (M, C//group, KH, KW) as Caffe stores deconvolution
    weights, b (C,) or None -> y (N, C, OH, OW) with ``out_hw`` = (OH, OW) such
    that conv_out_size(OH, ...) == H.  ``out``: an optional C-contiguous
    (N, C, OH, OW) array of x's dtype to write into (it is also returned).
    Runs on the same backend as conv_forward.
    """
    return implementation(x).conv_transpose(x, w, b, stride, pad, dilation, group, out_hw=out_hw, out=out)


def pool_forward(x: Array, method: str, kernel: IntPair, stride: IntPair, pad: IntPair,
                 out: Optional[Array] = None, mask: Optional[Array] = None,
                 relu: bool = False) -> Array:
    """Caffe MAX ("max") or AVE ("ave") pooling, output size pool_out_size (ceil).

    MAX: window [o*stride-pad, +kernel) clipped to the input, start value
    -FLT_MAX, strict '>' (NaN never wins; an all -inf window gives -FLT_MAX).
    AVE: the clipped-window sum divided by the window size clipped to the
    *padded* input only, as Caffe does.  Global pooling is the caller's job
    (kernel = H, W; stride 1; pad 0).
    ``out``: an optional C-contiguous (N, C, OH, OW) array of x's dtype to write
    into (it is also returned).  ``mask`` (MAX only): an optional C-contiguous
    int32 (N, C, OH, OW) array that receives each window's first maximum in
    Caffe's scan order as the flat index h*W + w in its plane (-1 when no
    element beats -FLT_MAX), as Caffe's mask; pool_backward can reuse it.
    ``relu``: store 0 where the pooled value is < 0, as a following in-place
    ReLU (negative_slope 0) would (the mask is unaffected).
    """
    return implementation(x).pool_forward(x, method, kernel, stride, pad, out=out, mask=mask, relu=relu)


def pool_backward(x: Array, y: Array, dy: Array, method: str, kernel: IntPair,
                  stride: IntPair, pad: IntPair, out: Optional[Array] = None,
                  mask: Optional[Array] = None, relu_mask: bool = False) -> Array:
    """dx of pool_forward.  MAX: each dy goes to its window's first maximum in
    Caffe's scan order: the index in ``mask`` when given (the forward's mask
    of this same x, as Caffe's backward uses), else found again from x
    (``y`` may be None); a window with no maximum passes nothing.  AVE: dy /
    pool_size spread over the clipped window.  ``out``: an optional
    C-contiguous array of x's shape and dtype, overwritten with dx.
    ``relu_mask``: dx times (x > 0) as well, the backward of an in-place ReLU
    (negative_slope 0) whose output x is, done in the same pass."""
    impl = implementation(x)
    if impl is numba_kernels:
        return impl.pool_backward(x, y, dy, method, kernel, stride, pad, out=out, mask=mask,
                                  relu_mask=relu_mask)
    dx = impl.pool_backward(x, y, dy, method, kernel, stride, pad, out=out, mask=mask)
    if relu_mask:
        dx *= x > 0
    return dx


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
                 k: float, region: str, out: Optional[Array] = None, relu_mask: bool = False) -> Array:
    """dx of lrn_forward (y is its output): dy * scale^-beta minus
    2*beta * x * (the adjoint of the neighbourhood sum applied to dy*y/scale).
    ``out``: an optional C-contiguous array of x's shape and dtype, overwritten
    with dx.  ``relu_mask``: as for pool_backward."""
    impl = implementation(x)
    if impl is numba_kernels:
        return impl.lrn_backward(x, y, dy, local_size, alpha, beta, k, region, out=out,
                                 relu_mask=relu_mask)
    dx = impl.lrn_backward(x, y, dy, local_size, alpha, beta, k, region, out=out)
    if relu_mask:
        dx *= x > 0
    return dx
