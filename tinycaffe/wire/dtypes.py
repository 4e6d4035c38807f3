"""Element types on the wire: the dtype code table and the three encodings.

A blob has a *logical* dtype (what the receiver gets back) and an *encoding*
(how its elements travel). Floating blobs may travel as float16 or as uint8
with a linear scale; everything else travels as its own bytes.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

from tinycaffe.wire.errors import LocalProtocolError

# Codes are part of the protocol: never renumber, only append.
_CODES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f2"),
    3: np.dtype("<f8"),
    4: np.dtype("u1"),
    5: np.dtype("i1"),
    6: np.dtype("<i2"),
    7: np.dtype("<u2"),
    8: np.dtype("<i4"),
    9: np.dtype("<u4"),
    10: np.dtype("<i8"),
    11: np.dtype("<u8"),
}
_BY_DTYPE: dict[np.dtype, int] = {dt: code for code, dt in _CODES.items()}


class Encoding(IntEnum):
    """How a blob's elements are carried."""

    RAW = 0  # the logical dtype's own little-endian bytes (exact)
    FLOAT16 = 1  # cast to float16, cast back on receipt
    UINT8 = 2  # linear quantisation to 0..255 with a per-blob scale/offset


#: Names accepted for the ``wire`` setting; "float32" means "exact".
WIRE_NAMES: dict[str, Encoding] = {
    "float32": Encoding.RAW,
    "raw": Encoding.RAW,
    "float16": Encoding.FLOAT16,
    "uint8": Encoding.UINT8,
}


def parse_wire(name: str) -> Encoding:
    """The encoding for a ``wire`` setting such as "float16"."""
    try:
        return WIRE_NAMES[name]
    except (KeyError, TypeError):
        raise LocalProtocolError(
            f"unknown wire dtype {name!r} (expected one of {', '.join(WIRE_NAMES)})"
        ) from None


def dtype_code(dtype: np.dtype) -> int:
    """The wire code of a dtype of either byte order (the wire is little-endian)."""
    code = _BY_DTYPE.get(np.dtype(dtype).newbyteorder("<"))
    if code is None:
        raise LocalProtocolError(f"dtype {np.dtype(dtype)} cannot be sent over the wire")
    return code


def code_dtype(code: int) -> np.dtype | None:
    """The dtype of a wire code, or None when the code is unknown."""
    return _CODES.get(code)


def encoding_for(dtype: np.dtype, wire: Encoding) -> Encoding:
    """The encoding actually used: lossy encodings apply to floating blobs only."""
    return wire if np.dtype(dtype).kind == "f" else Encoding.RAW


def wire_dtype(dtype: np.dtype, encoding: Encoding) -> np.dtype:
    """The dtype of the bytes on the wire for a logical dtype and an encoding."""
    if encoding == Encoding.FLOAT16:
        return np.dtype("<f2")
    if encoding == Encoding.UINT8:
        return np.dtype("u1")
    return np.dtype(dtype)
