"""The DATA/RESULT payload: a set of named blobs.

Layout (little-endian)::

    ref      u32   RESULT: seq of the DATA frame it answers; DATA: 0
    count    u32   number of blobs
    toc_len  u32   bytes of the blob table that follows
    table    count entries, each:
               name_len u16, name (utf-8)
               dtype    u8   logical dtype code (what the receiver gets back)
               encoding u8   Encoding
               ndim     u32, then ndim dims (u32 each)
               scale f64, offset f64      only for Encoding.UINT8
               nbytes   u64  bytes of this blob on the wire
    data     every blob's wire bytes, in table order, back to back

All blob headers come before all data, so the receiver knows where every
byte goes before the first one arrives and can ``recv_into`` the arrays.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tinycaffe.wire.dtypes import Encoding, code_dtype, dtype_code, encoding_for, wire_dtype
from tinycaffe.wire.errors import LocalProtocolError, ProtocolError
from tinycaffe.wire.quant import dequant_fits, dequantize_u8, quantize_u8

PREFIX = struct.Struct("<III")
_NAME_LEN = struct.Struct("<H")
_KIND = struct.Struct("<BBI")
_QUANT = struct.Struct("<dd")
_NBYTES = struct.Struct("<Q")

MAX_BLOBS = 4096
MAX_NAME = 1024
MAX_NDIM = 32
#: The longest table entry: name length, name, kind, dims, scale/offset, byte count.
MAX_ENTRY = 2 + MAX_NAME + 6 + 4 * MAX_NDIM + 16 + 8
_U32 = 0xFFFFFFFF

Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class BlobEntry:
    """One parsed entry of the blob table."""

    name: str
    dtype: np.dtype
    encoding: Encoding
    shape: tuple[int, ...]
    nbytes: int
    scale: float = 1.0
    offset: float = 0.0


def _wire_array(a: np.ndarray, enc: Encoding) -> tuple[np.ndarray, float, float]:
    """The C-contiguous little-endian array whose bytes go on the wire."""
    if enc == Encoding.UINT8:
        return quantize_u8(a)
    if enc == Encoding.FLOAT16:
        with np.errstate(over="ignore"):  # float16 overflows to inf, like np.float16 casts
            return np.asarray(a, dtype="<f2", order="C"), 1.0, 0.0
    # No copy when the array is already contiguous and little-endian.
    return np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C"), 1.0, 0.0


def _entry_bytes(name: str, a: np.ndarray, enc: Encoding, w: np.ndarray, scale: float, offset: float) -> bytes:
    if not isinstance(name, str):
        raise LocalProtocolError(f"blob names must be str, got {type(name).__name__}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"blob name {name!r} cannot be encoded as utf-8") from None
    if len(raw) > MAX_NAME:
        raise LocalProtocolError(f"blob name of {len(raw)} bytes exceeds {MAX_NAME}")
    if a.ndim > MAX_NDIM or any(d > _U32 for d in a.shape):
        raise LocalProtocolError(f"blob {name!r} shape {a.shape} cannot be sent (ndim <= {MAX_NDIM}, dims < 2**32)")
    parts = [_NAME_LEN.pack(len(raw)), raw, _KIND.pack(dtype_code(a.dtype), int(enc), a.ndim)]
    parts.append(struct.pack(f"<{a.ndim}I", *a.shape))
    if enc == Encoding.UINT8:
        parts.append(_QUANT.pack(scale, offset))
    parts.append(_NBYTES.pack(w.nbytes))
    return b"".join(parts)


#: Table entries already built, by (name, dtype, shape, encoding): a stream sends the
#: same blobs frame after frame, so each entry is packed once (bounded: cleared when full).
_ENTRIES: dict[tuple, bytes] = {}
_MAX_CACHED = 256


def encode_blobs(blobs: Mapping[str, np.ndarray], wire: Encoding, ref: int = 0) -> list[Buffer]:
    """The payload as a list of buffers: one small header, then one view per blob.

    Raw blobs are not copied (unless not contiguous or big-endian); their
    buffer is a memoryview of the array itself, ready for ``sendmsg``.
    """
    if len(blobs) > MAX_BLOBS:
        raise LocalProtocolError(f"{len(blobs)} blobs in one frame exceeds {MAX_BLOBS}")
    table: list[bytes] = []
    views: list[Buffer] = []
    for name, arr in blobs.items():
        a = np.asarray(arr)
        enc = encoding_for(a.dtype, wire)
        dtype_code(a.dtype)  # refuse unsupported dtypes before any work
        w, scale, offset = _wire_array(a, enc)
        if enc == Encoding.UINT8:  # scale and offset change with every batch
            table.append(_entry_bytes(name, a, enc, w, scale, offset))
        else:
            key = (name, a.dtype.str, a.shape, enc) if type(name) is str else None
            entry = _ENTRIES.get(key)
            if entry is None:
                entry = _entry_bytes(name, a, enc, w, scale, offset)  # checks name and shape
                if len(_ENTRIES) >= _MAX_CACHED:
                    _ENTRIES.clear()
                _ENTRIES[key] = entry
            table.append(entry)
        if w.nbytes:
            views.append(w.reshape(-1).view(np.uint8).data)
    toc = b"".join(table)
    return [PREFIX.pack(ref, len(blobs), len(toc)) + toc, *views]


class _Reader:
    """Bounds-checked sequential reads from the blob table."""

    def __init__(self, buf: Buffer) -> None:
        self.view = memoryview(buf)
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.view):
            raise ProtocolError(f"truncated blob table: {what} needs {n} bytes, {len(self.view) - self.pos} left")
        out = self.view[self.pos : self.pos + n]
        self.pos += n
        return out


def _parse_entry(r: _Reader, index: int) -> BlobEntry:
    (nlen,) = _NAME_LEN.unpack(r.take(_NAME_LEN.size, f"blob {index} name length"))
    try:
        name = bytes(r.take(nlen, f"blob {index} name")).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"blob {index} name is not valid utf-8") from None
    code, enc_code, ndim = _KIND.unpack(r.take(_KIND.size, f"blob {name!r} dtype"))
    dtype = code_dtype(code)
    if dtype is None:
        raise ProtocolError(f"blob {name!r} has unknown dtype code {code}")
    try:
        enc = Encoding(enc_code)
    except ValueError:
        raise ProtocolError(f"blob {name!r} has unknown encoding {enc_code}") from None
    if enc != Encoding.RAW and dtype.kind != "f":
        raise ProtocolError(f"blob {name!r}: encoding {enc.name} needs a floating dtype, not {dtype}")
    if ndim > MAX_NDIM:
        raise ProtocolError(f"blob {name!r} has {ndim} dims (at most {MAX_NDIM})")
    shape = struct.unpack(f"<{ndim}I", r.take(4 * ndim, f"blob {name!r} shape"))
    scale, offset = 1.0, 0.0
    if enc == Encoding.UINT8:
        scale, offset = _QUANT.unpack(r.take(_QUANT.size, f"blob {name!r} scale/offset"))
        if not dequant_fits(scale, offset, dtype):
            raise ProtocolError(f"blob {name!r} has an unusable scale {scale!r} / offset {offset!r}")
    (nbytes,) = _NBYTES.unpack(r.take(_NBYTES.size, f"blob {name!r} byte count"))
    itemsize = wire_dtype(dtype, enc).itemsize
    expect = math.prod(shape) * itemsize
    if nbytes != expect:
        raise ProtocolError(
            f"blob {name!r}: shape {tuple(shape)} x {itemsize} bytes = {expect} bytes, but {nbytes} declared"
        )
    return BlobEntry(name, dtype, enc, tuple(shape), nbytes, scale, offset)


def parse_table(table: Buffer, count: int, data_len: int) -> list[BlobEntry]:
    """Parse and validate the blob table against the data bytes that follow it."""
    r = _Reader(table)
    entries: list[BlobEntry] = []
    seen: set[str] = set()
    total = 0
    for i in range(count):
        e = _parse_entry(r, i)
        if e.name in seen:
            raise ProtocolError(f"blob {e.name!r} appears twice in one frame")
        seen.add(e.name)
        total += e.nbytes
        if total > data_len:
            raise ProtocolError(f"blobs declare more bytes than the {data_len} bytes of data in the frame")
        entries.append(e)
    if r.pos != len(r.view):
        raise ProtocolError(f"{len(r.view) - r.pos} stray bytes after the blob table")
    if total != data_len:
        raise ProtocolError(f"blobs declare {total} bytes but the frame carries {data_len} bytes of data")
    return entries


@dataclass(slots=True)
class Landing:
    """Where one blob's wire bytes land, and the array the receiver gets."""

    entry: BlobEntry
    out: np.ndarray
    wire: np.ndarray  # ``out`` itself for raw blobs, else a scratch array

    def view(self) -> memoryview:
        """Writable bytes of the wire array, for recv_into or a copy."""
        return self.wire.reshape(-1).view(np.uint8).data

    def finish(self) -> np.ndarray:
        """Convert the received wire bytes into ``out`` (a no-op for raw blobs)."""
        if self.entry.encoding == Encoding.FLOAT16:
            np.copyto(self.out, self.wire)
        elif self.entry.encoding == Encoding.UINT8:
            dequantize_u8(self.wire, self.entry.scale, self.entry.offset, self.out)
        return self.out


def plan_landing(entry: BlobEntry, target: np.ndarray | None) -> Landing:
    """Land into ``target`` when it fits the blob exactly; otherwise into a new array."""
    fits = (
        isinstance(target, np.ndarray)
        and target.shape == entry.shape
        and target.dtype == entry.dtype
        and target.flags.c_contiguous
        and target.flags.writeable
    )
    out = target if fits else np.empty(entry.shape, entry.dtype)
    assert out is not None
    wire = out if entry.encoding == Encoding.RAW else np.empty(entry.shape, wire_dtype(entry.dtype, entry.encoding))
    return Landing(entry, out, wire)
