"""The fixed 28-byte frame header: layout, packing and validation.

Layout (little-endian)::

    magic    4s   b"TCF1"
    version  u8   PROTOCOL_VERSION
    type     u8   FrameType
    flags    u16  FLAG_CRC or FLAG_XXH3: which payload checksum is present
    seq      u32  per-direction frame counter
    length   u64  payload bytes that follow the header
    crc      u32  payload checksum: CRC32, or the low 32 bits of XXH3-64 (0 when none)
    hcrc     u32  CRC32 of the 24 bytes above

The header carries its own CRC so that a damaged length field is caught at
once, instead of making the receiver wait for bytes that never come.
"""
from __future__ import annotations

import struct
import zlib
from enum import IntEnum
from typing import NamedTuple

from tinycaffe.wire.errors import ErrorCode, ProtocolError

MAGIC = b"TCF1"
#: 2: the XXH3 payload checksum (FLAG_XXH3) and the "checksums" HELLO field.
PROTOCOL_VERSION = 2

FLAG_CRC = 0x0001
FLAG_XXH3 = 0x0002
KNOWN_FLAGS = FLAG_CRC | FLAG_XXH3

_BODY = struct.Struct("<4sBBHIQI")
_HCRC = struct.Struct("<I")
HEADER_SIZE = _BODY.size + _HCRC.size  # 28

#: Default receive limit of one frame's payload (a 3.2 MB blob fits 80 times).
DEFAULT_MAX_FRAME = 256 * 1024 * 1024
#: HELLO and ERROR payloads are small JSON/text; cap them hard.
CONTROL_MAX = 64 * 1024


class FrameType(IntEnum):
    """What a frame carries."""

    HELLO = 1
    DATA = 2
    ACK = 3
    RESULT = 4
    ERROR = 5
    BYE = 6


_TYPES = {int(t): t for t in FrameType}  # a dict lookup is cheaper than FrameType(n)


class Header(NamedTuple):
    """A parsed, validated frame header (a tuple: immutable, and cheap to build once per frame)."""

    ftype: FrameType
    flags: int
    seq: int
    length: int
    crc: int

    @property
    def algo(self) -> str | None:
        """"crc32", "xxh3", or None when the payload carries no checksum."""
        if self.flags & FLAG_XXH3:
            return "xxh3"
        return "crc32" if self.flags & FLAG_CRC else None


def pack_header(ftype: FrameType, seq: int, length: int, crc: int, flags: int) -> bytes:
    """The 28 header bytes for one frame."""
    body = _BODY.pack(MAGIC, PROTOCOL_VERSION, int(ftype), flags, seq, length, crc)
    return body + _HCRC.pack(zlib.crc32(body))


def check_prefix(head: bytes | bytearray | memoryview) -> None:
    """Reject a stream as soon as its first bytes show it is not ours.

    ``head`` may be shorter than a header: a peer speaking another protocol
    (say HTTP) is refused after 4 bytes rather than after 28.
    """
    n = min(len(head), len(MAGIC))
    if bytes(head[:n]) != MAGIC[:n]:
        got = bytes(head[: len(MAGIC)])
        raise ProtocolError(f"bad magic {got!r}: not a tinycaffe wire stream (expected {MAGIC!r})")
    if len(head) > len(MAGIC) and head[len(MAGIC)] != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {head[len(MAGIC)]} (this side speaks {PROTOCOL_VERSION})",
            ErrorCode.VERSION,
        )


def _limit_for(ftype: FrameType, max_frame: int) -> tuple[int, int]:
    """(smallest, largest) payload length allowed for a frame type."""
    if ftype == FrameType.ACK:
        return 4, 4
    if ftype == FrameType.BYE:
        return 0, 0
    if ftype in (FrameType.HELLO, FrameType.ERROR):
        return (2 if ftype == FrameType.ERROR else 1), min(CONTROL_MAX, max_frame)
    return 0, max_frame


def parse_header(head: bytes | bytearray | memoryview, max_frame: int) -> Header:
    """Validate a whole header; every size limit is checked before anything is allocated."""
    if len(head) < HEADER_SIZE:
        check_prefix(head)
        raise ProtocolError(f"frame header of {len(head)} bytes is shorter than {HEADER_SIZE}")
    magic, version, ftype, flags, seq, length, crc = _BODY.unpack_from(head)
    if magic != MAGIC or version != PROTOCOL_VERSION:
        check_prefix(head)  # raises, naming what is wrong
    (hcrc,) = _HCRC.unpack_from(head, _BODY.size)
    if zlib.crc32(head[: _BODY.size]) != hcrc:
        raise ProtocolError("frame header checksum mismatch (corrupted header)", ErrorCode.CHECKSUM)
    kind = _TYPES.get(ftype)
    if kind is None:
        raise ProtocolError(f"unknown frame type {ftype}")
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:04x} in {kind.name} frame")
    if flags & FLAG_CRC and flags & FLAG_XXH3:
        raise ProtocolError(f"{kind.name} frame claims two payload checksums")
    if not flags & (FLAG_CRC | FLAG_XXH3) and crc != 0:
        raise ProtocolError(f"{kind.name} frame has a checksum value but no checksum flag")
    lo, hi = _limit_for(kind, max_frame)
    if length > hi:
        raise ProtocolError(
            f"{kind.name} frame of {length} payload bytes exceeds the limit of {hi} bytes",
            ErrorCode.TOO_LARGE,
        )
    if length < lo:
        raise ProtocolError(f"{kind.name} frame payload of {length} bytes is shorter than {lo}")
    return Header(kind, flags, seq, length, crc)
