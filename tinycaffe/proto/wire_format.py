"""Just enough of the protobuf wire format to walk a caffemodel quickly.

Going through protobuf's repeated-float containers costs a Python object per
weight; walking the bytes ourselves lets every packed float array become one
``np.frombuffer`` copy.  Only the pieces caffemodel.py needs are here: varints,
field headers, skipping, and encoding a few header bytes.

Errors are raised as :class:`WireFormatError` carrying the byte offset; the
callers turn them into FormatError with the file name.
"""

from __future__ import annotations

from typing import Iterator

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireFormatError(Exception):
    """Malformed protobuf bytes at ``offset``."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return (value, position after it)."""
    start = pos
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireFormatError(start, "truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError(start, "varint longer than 10 bytes")


def as_signed64(value: int) -> int:
    """Reinterpret a decoded varint as a two's-complement int64."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, value start, value end) for each field.

    For VARINT fields the "value" is the varint's bytes; callers that need the
    number decode it again (cheap, and rare compared with LEN fields).
    Raises WireFormatError on anything that runs past ``end`` or is not a
    valid field header.
    """
    while pos < end:
        header_at = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(header_at, "field number 0")
        if wire_type == VARINT:
            _, value_end = read_varint(buf, pos, end)
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            value_end = pos + length
        elif wire_type == FIXED32:
            value_end = pos + 4
        elif wire_type == FIXED64:
            value_end = pos + 8
        else:
            # Groups never occur in Caffe's schema; 6 and 7 are not wire types.
            raise WireFormatError(header_at, f"unsupported wire type {wire_type} (field {number})")
        if value_end > end:
            raise WireFormatError(header_at, f"field {number} runs past the end of its message")
        yield number, wire_type, pos, value_end
        pos = value_end


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as a varint."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def len_header(number: int, length: int) -> bytes:
    """Key and length prefix of a length-delimited field."""
    return encode_varint(number << 3 | LEN) + encode_varint(length)
