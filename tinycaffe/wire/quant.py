"""Linear uint8 quantisation of a floating blob, and its inverse.

The blob's min maps to 0 and its max to 255, so ``x ~ q * scale + offset``
with an error of at most ``scale / 2`` (plus float rounding).
"""
from __future__ import annotations

import math

import numpy as np

from tinycaffe.wire.errors import LocalProtocolError

# Below this, 1/scale would overflow float32: do the arithmetic in float64.
_F32_SAFE_SCALE = 1e-30
_F32_SAFE_MAG = 1e37
# Dequantisation's slow path works in float64: q * scale must stay finite there.
_MAX_RANGE = float(np.finfo(np.float64).max) / 2


def quantize_u8(a: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Quantise ``a`` to uint8; returns ``(q, scale, offset)``."""
    if a.size == 0:
        return np.zeros(a.shape, np.uint8), 1.0, 0.0
    lo, hi = float(a.min()), float(a.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise LocalProtocolError("cannot quantise a blob holding NaN or infinity to uint8")
    if not hi - lo <= _MAX_RANGE:
        raise LocalProtocolError(f"blob range {lo:g}..{hi:g} is too wide to quantise to uint8")
    scale = (hi - lo) / 255.0
    if hi - lo <= 255.0 and np.array_equal(a, np.rint(a)):
        # Whole numbers spanning at most 256 values (labels, class ids): a step
        # of 1 carries them exactly, where min..max over 255 steps would not.
        scale = 1.0
    elif scale < 1e-300:
        # A constant blob, or a range so tiny that /255 underflows: one step
        # spanning the whole range still keeps the error within scale/2.
        scale = (hi - lo) if hi > lo else 1.0
    if not dequant_fits(scale, lo, a.dtype):
        # The receiver could not rebuild the top of the range in this dtype.
        raise LocalProtocolError(f"blob range {lo:g}..{hi:g} is too wide to quantise to uint8")
    fast = (
        a.dtype == np.float32
        and scale >= _F32_SAFE_SCALE
        and max(abs(lo), abs(hi)) <= _F32_SAFE_MAG
    )
    work = np.float32 if fast else np.float64
    t = np.subtract(a, work(lo), dtype=work)
    if fast:
        t *= work(1.0 / scale)
    else:
        t /= scale  # 1/scale could overflow for subnormal ranges
    np.rint(t, out=t)
    np.clip(t, 0, 255, out=t)
    return t.astype(np.uint8), scale, lo


def dequantize_u8(q: np.ndarray, scale: float, offset: float, out: np.ndarray) -> np.ndarray:
    """Fill the floating array ``out`` with ``q * scale + offset`` and return it."""
    info = np.finfo(out.dtype)
    if float(info.tiny) <= scale and 255.0 * scale < float(info.max) / 2:
        kind = out.dtype.type
        np.multiply(q, kind(scale), out=out)
        out += kind(offset)
    else:
        # In ``out``'s dtype the scale would lose precision (subnormal) or
        # q * scale alone would overflow although the sum fits: use float64.
        np.copyto(out, q * scale + offset, casting="unsafe")
    return out


def dequant_fits(scale: float, offset: float, dtype: np.dtype) -> bool:
    """True when every value ``q * scale + offset`` is finite in ``dtype``."""
    if not (math.isfinite(scale) and math.isfinite(offset) and 0 < 255.0 * scale <= _MAX_RANGE):
        return False
    big = float(np.finfo(dtype).max)
    return abs(offset) <= big and abs(offset + 255.0 * scale) <= big
