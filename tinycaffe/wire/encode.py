"""Frame encoders: each returns a list of buffers for ``socket.sendmsg``.

The first buffer is the header (with the small part of the payload joined to
it when that is cheap); array data follows as memoryviews of the arrays, so a
blob's bytes are never copied in user space. The CRC runs over the same views.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import numpy as np

from tinycaffe.wire.blobs import Buffer, encode_blobs
from tinycaffe.wire.dtypes import Encoding
from tinycaffe.wire.checksum import CRC32, XXH3, Running
from tinycaffe.wire.header import FLAG_CRC, FLAG_XXH3, FrameType, pack_header
from tinycaffe.wire.hello import Hello, hello_bytes

_U32 = struct.Struct("<I")
_CODE = struct.Struct("<H")
_MAX_ERROR_TEXT = 4000
_JOIN_BELOW = 4096  # payload parts smaller than this ride in the header buffer


def encode_frame(ftype: FrameType, seq: int, payload: Sequence[Buffer], *, checksum: bool | str = True
                 ) -> list[Buffer]:
    """Header + payload buffers for one frame.

    ``checksum``: "crc32" (or True), "xxh3", or False/None for none.
    """
    views = [memoryview(p).cast("B") if isinstance(p, memoryview) else p for p in payload]
    algo = CRC32 if checksum is True else (checksum or None)
    running = Running(algo) if algo else None
    length = 0
    for v in views:
        length += len(v)
        if running is not None:
            running.update(v)
    flags = 0 if running is None else (FLAG_XXH3 if algo == XXH3 else FLAG_CRC)
    header = pack_header(ftype, seq & 0xFFFFFFFF, length, 0 if running is None else running.value(), flags)
    if views and len(views[0]) < _JOIN_BELOW:
        return [header + bytes(views[0]), *views[1:]]
    return [header, *views]


def encode_hello(seq: int, hello: Hello) -> list[Buffer]:
    """A HELLO frame (always checksummed: nothing is negotiated yet)."""
    return encode_frame(FrameType.HELLO, seq, [hello_bytes(hello)], checksum=True)


def encode_data(
    seq: int, blobs: Mapping[str, np.ndarray], wire: Encoding = Encoding.RAW, *, checksum: bool | str = True
) -> list[Buffer]:
    """A DATA frame carrying ``blobs``."""
    return encode_frame(FrameType.DATA, seq, encode_blobs(blobs, wire, 0), checksum=checksum)


def encode_result(
    seq: int, ref: int, blobs: Mapping[str, np.ndarray], wire: Encoding = Encoding.RAW, *, checksum: bool | str = True
) -> list[Buffer]:
    """A RESULT frame answering DATA frame ``ref``."""
    return encode_frame(FrameType.RESULT, seq, encode_blobs(blobs, wire, ref & 0xFFFFFFFF), checksum=checksum)


def encode_ack(seq: int, acked: int, *, checksum: bool | str = True) -> list[Buffer]:
    """An ACK of DATA frame ``acked``."""
    return encode_frame(FrameType.ACK, seq, [_U32.pack(acked & 0xFFFFFFFF)], checksum=checksum)


def encode_error(seq: int, code: int, message: str, *, checksum: bool | str = True) -> list[Buffer]:
    """An ERROR frame; the message is cut to a few KB (it is for humans)."""
    text = message.encode("utf-8", "replace")[:_MAX_ERROR_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(FrameType.ERROR, seq, [_CODE.pack(code & 0xFFFF) + text], checksum=checksum)


def encode_bye(seq: int, *, checksum: bool | str = True) -> list[Buffer]:
    """A BYE frame."""
    return encode_frame(FrameType.BYE, seq, [], checksum=checksum)


def join(buffers: Sequence[Buffer]) -> bytes:
    """All buffers as one bytes object (tests, and small frames)."""
    return b"".join(buffers)

