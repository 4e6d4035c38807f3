"""Frame encoders: each returns an :class:`OutFrame`, an iterable of buffers for ``socket.sendmsg``.

The first buffer is the header (with the small part of the payload joined to
it when that is cheap); array data follows as memoryviews of the arrays, so a
blob's bytes are never copied in user space. A CRC32 runs over the same views
before the header is made (it goes in the header). An XXH3 checksum goes in a
trailer instead (protocol version 3): iterating the frame yields the payload
in pieces of at most ``PIECE`` bytes and hashes each piece when the next
buffer is asked for, i.e. after a transport that writes each buffer as it
gets it has written that piece. The kernel has copied the piece by then, so
the sender hashes while the peer is still reading, instead of hashing the
whole payload before the first byte may leave (with the checksum in the
header). Still sans-I/O: the frame only makes bytes; whoever iterates it
writes them.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from tinycaffe.wire.blobs import Buffer, encode_blobs
from tinycaffe.wire.checksum import CRC32, XXH3, Running
from tinycaffe.wire.dtypes import Encoding
from tinycaffe.wire.header import (
    FLAG_CRC,
    FLAG_XXH3,
    HEADER_SIZE,
    PROTOCOL_VERSION,
    TRAILER_SIZE,
    FrameType,
    pack_header,
)
from tinycaffe.wire.hello import Hello, hello_bytes

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_CODE = struct.Struct("<H")
_MAX_ERROR_TEXT = 4000
_JOIN_BELOW = 4096  # payload parts smaller than this ride in the header buffer
#: Payload bytes handed out, then hashed, at a time (XXH3 frames). A piece is hashed
#: while the peer drains it from the socket, so a piece should not outgrow what the
#: socket buffers hold (loopback autotunes to 4 MB); bigger pieces mean fewer sends
#: (each extra one cost ~10 us of CPU on loopback, bench/results/wire.md).
PIECE = 4 * 1024 * 1024
#: Below this payload size an XXH3 frame is hashed at once: the hash takes a few
#: microseconds, less than handing pieces out one by one does.
_EAGER_BELOW = 256 * 1024
#: From this payload size on, a transport may hash in another thread while it writes
#: (see has_trailer): below it the hand-off between threads costs more than the hash.
SPLIT_MIN = 1024 * 1024


class OutFrame:
    """One encoded frame: iterate it for its buffers (header, payload, trailer), in order.

    ``nbytes`` is the whole frame's size and ``payload_len`` its payload's.
    Each iteration hashes the payload afresh, after handing it out, so the
    views must not change until the frame has been written (the trailer is
    the checksum of the bytes handed out just before it).
    """

    __slots__ = ("_algo", "_version", "_views", "ftype", "payload_len", "seq")

    def __init__(self, ftype: FrameType, seq: int, views: list[Buffer], algo: str | None,
                 version: int = PROTOCOL_VERSION) -> None:
        self.ftype = ftype
        self.seq = seq & 0xFFFFFFFF
        self._views = views
        self._algo = algo
        self._version = version
        self.payload_len = sum(len(v) for v in views)

    @property
    def has_trailer(self) -> bool:
        """True for an XXH3 frame: its checksum follows the payload."""
        return self._algo == XXH3

    @property
    def worth_splitting(self) -> bool:
        """True for an XXH3 frame big enough (SPLIT_MIN) to hash in one thread while another writes it."""
        return self._algo == XXH3 and self.payload_len >= SPLIT_MIN

    def body(self) -> list[Buffer]:
        """An XXH3 frame's header and payload, without hashing (see :meth:`trailer`)."""
        if self._algo != XXH3:
            raise ValueError("body() and trailer() are for XXH3 frames; iterate the frame instead")
        return _lead(self._header(0, FLAG_XXH3), self._views)

    def trailer(self) -> bytes:
        """An XXH3 frame's trailer: the checksum of its payload as it is now.

        ``body()`` then ``trailer()`` are the same bytes as iterating the frame;
        a transport may write the body in one thread while another hashes.
        """
        if self._algo != XXH3:
            raise ValueError("body() and trailer() are for XXH3 frames; iterate the frame instead")
        running = Running(XXH3)
        for v in self._views:
            running.update(v)
        return _U64.pack(running.digest64())

    @property
    def nbytes(self) -> int:
        """Bytes on the wire: header, payload and trailer."""
        return HEADER_SIZE + self.payload_len + (TRAILER_SIZE if self._algo == XXH3 else 0)

    def _header(self, crc: int, flags: int) -> bytes:
        return pack_header(self.ftype, self.seq, self.payload_len, crc, flags, self._version)

    def __iter__(self) -> Iterator[Buffer]:
        if self._algo == XXH3:
            if self.payload_len < _EAGER_BELOW:
                yield from self.body()
                yield self.trailer()
            else:
                yield from _with_trailer(self._header(0, FLAG_XXH3), self._views)
            return
        crc = 0
        if self._algo is not None:
            running = Running(self._algo)
            for v in self._views:
                running.update(v)
            crc = running.value()
        yield from _lead(self._header(crc, FLAG_CRC if self._algo else 0), self._views)


def _lead(header: bytes, views: list[Buffer]) -> list[Buffer]:
    """The header with a small first payload part joined to it, then the other parts."""
    if views and len(views[0]) < _JOIN_BELOW:
        return [header + bytes(views[0]), *views[1:]]
    return [header, *views]


def _with_trailer(header: bytes, views: list[Buffer]) -> Iterator[Buffer]:
    """Header, payload pieces each hashed once the next buffer is asked for, then the XXH3 trailer."""
    running = Running(XXH3)
    start = 0
    if views and len(views[0]) < _JOIN_BELOW:
        running.update(views[0])
        yield header + bytes(views[0])
        start = 1
    else:
        yield header
    for v in views[start:]:
        if len(v) > PIECE and not isinstance(v, memoryview):
            v = memoryview(v)  # slices of it must not copy
        for i in range(0, len(v), PIECE):
            piece = v[i : i + PIECE]
            yield piece
            running.update(piece)  # written by now (see transport._groups): the peer is reading it
    yield _U64.pack(running.digest64())


def encode_frame(ftype: FrameType, seq: int, payload: Sequence[Buffer], *, checksum: bool | str = True,
                 version: int = PROTOCOL_VERSION) -> OutFrame:
    """Header + payload buffers for one frame.

    ``checksum``: "crc32" (or True), "xxh3", or False/None for none.
    """
    views = [memoryview(p).cast("B") if isinstance(p, memoryview) else p for p in payload]
    algo = CRC32 if checksum is True else (checksum or None)
    if algo not in (None, CRC32, XXH3):
        raise ValueError(f"unknown checksum {checksum!r}")
    return OutFrame(ftype, seq, views, algo, version)


def encode_hello(seq: int, hello: Hello) -> OutFrame:
    """A HELLO frame (always checksummed: nothing is negotiated yet)."""
    return encode_frame(FrameType.HELLO, seq, [hello_bytes(hello)], checksum=True)


def encode_data(
    seq: int, blobs: Mapping[str, np.ndarray], wire: Encoding = Encoding.RAW, *, checksum: bool | str = True
) -> OutFrame:
    """A DATA frame carrying ``blobs``."""
    return encode_frame(FrameType.DATA, seq, encode_blobs(blobs, wire, 0), checksum=checksum)


def encode_result(
    seq: int, ref: int, blobs: Mapping[str, np.ndarray], wire: Encoding = Encoding.RAW, *, checksum: bool | str = True
) -> OutFrame:
    """A RESULT frame answering DATA frame ``ref``."""
    return encode_frame(FrameType.RESULT, seq, encode_blobs(blobs, wire, ref & 0xFFFFFFFF), checksum=checksum)


def encode_ack(seq: int, acked: int, *, checksum: bool | str = True) -> OutFrame:
    """An ACK of DATA frame ``acked``."""
    return encode_frame(FrameType.ACK, seq, [_U32.pack(acked & 0xFFFFFFFF)], checksum=checksum)


def encode_error(seq: int, code: int, message: str, *, checksum: bool | str = True,
                 version: int = PROTOCOL_VERSION) -> OutFrame:
    """An ERROR frame; the message is cut to a few KB (it is for humans).

    ``version``: the header's protocol version, to refuse an older peer in a
    version it reads (ERROR frames are laid out the same in versions 2 and 3).
    """
    text = message.encode("utf-8", "replace")[:_MAX_ERROR_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(FrameType.ERROR, seq, [_CODE.pack(code & 0xFFFF) + text], checksum=checksum,
                        version=version)


def encode_bye(seq: int, *, checksum: bool | str = True) -> OutFrame:
    """A BYE frame."""
    return encode_frame(FrameType.BYE, seq, [], checksum=checksum)


def join(buffers: OutFrame | Sequence[Buffer]) -> bytes:
    """All of a frame's (or a list of buffers') bytes as one bytes object (tests, and small frames)."""
    return b"".join(buffers)

