"""Output-size rules and argument normalisation shared by every kernel flavour.

Caffe rounds convolution output sizes down and pooling output sizes up; these
functions are the single source of both rules.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

IntPair = Union[int, Sequence[int]]


def pair(v: IntPair) -> tuple[int, int]:
    """``v`` as an (h, w) pair of ints: 3 -> (3, 3), (3, 2) -> (3, 2)."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def conv_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Caffe's convolution output size (floor rounding)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooling output size: ceil rounding, then drop a last window that
    would start in the bottom/right padding (only when pad > 0, as Caffe does)."""
    # -(-a // s) is an exact integer ceil(a / s), also for a < 0.
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def ave_pool_sizes(size: int, kernel: int, stride: int, pad: int, out: int) -> np.ndarray:
    """Per-axis AVE divisors (int64, length ``out``): the window length clipped to
    the *padded* input, before clipping to the real input (Caffe's pool_size)."""
    start = np.arange(out, dtype=np.int64) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    return end - start

