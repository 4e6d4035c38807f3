"""Sans-I/O frame decoder: bytes in, frames out (modelled on h11).

No sockets, clocks or threads here. Feed it bytes with :meth:`Decoder.feed`
and pull frames with :meth:`Decoder.next_event` until it says NEED_DATA.
For big payloads a transport may skip the copy through ``feed``: it asks
:meth:`Decoder.direct_view` for the exact bytes still missing at the current
destination (a preallocated array, say), ``recv_into`` them there and then
:meth:`Decoder.commit` the count.

Every size is checked against ``max_frame`` before anything is allocated,
and every defect in the stream raises :class:`ProtocolError`, never a
``struct.error``, ``UnicodeDecodeError`` or NumPy error. ``expect`` limits
the frame types accepted next (an Endpoint allows only HELLO and ERROR until
the handshake is done), checked at the header, before the payload is read.

A failed decoder keeps only the failure's text and code, never the exception
(whose traceback would reference the decoder and its buffers in a cycle), and
drops its buffers at once: a hostile stream leaves nothing behind.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

import numpy as np

from tinycaffe.wire.blobs import (
    MAX_BLOBS,
    MAX_ENTRY,
    PREFIX,
    BlobEntry,
    Buffer,
    Landing,
    parse_table,
    plan_landing,
)
from tinycaffe.wire.checksum import XXH3, Running, available
from tinycaffe.wire.errors import ErrorCode, LocalProtocolError, ProtocolError
from tinycaffe.wire.frames import (
    CLOSED,
    NEED_DATA,
    AckFrame,
    ByeFrame,
    DataFrame,
    ErrorFrame,
    Event,
    Frame,
    HelloFrame,
    ResultFrame,
)
from tinycaffe.wire.header import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    MAGIC,
    FrameType,
    Header,
    check_prefix,
    parse_header,
)
from tinycaffe.wire.hello import parse_hello

_HEADER, _PREFIX, _TABLE, _DATA, _BODY, _DONE = range(6)
_U32 = struct.Struct("<I")
_CODE = struct.Struct("<H")
_EMPTY = memoryview(b"")


class Decoder:
    """Turns a byte stream into frames; one instance per direction of a connection.

    ``targets`` maps blob names to preallocated arrays: a DATA/RESULT blob whose
    dtype and shape match its target is received straight into it (the frame's
    dict then holds the target itself, overwritten by each frame). Other blobs
    get fresh arrays. ``require_checksum`` refuses frames sent without a CRC.
    A blob table byte-for-byte equal to the previous frame's (a stream's usual
    case) is not parsed again; it is still checked against the frame's length.

    Bytes land in a target before the frame's CRC can be checked: when the
    CRC then fails, the target holds damaged data -- the ProtocolError says
    so and the stream is dead, so the frame must not be used.
    """

    def __init__(
        self,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        targets: Mapping[str, np.ndarray] | None = None,
        require_checksum: bool = True,
    ) -> None:
        self.max_frame = max_frame
        self.targets: dict[str, np.ndarray] = dict(targets or {})
        self.require_checksum = require_checksum
        #: Frame types allowed next (None: any); others are refused at their header.
        self.expect: frozenset[FrameType] | None = None
        self._pending = bytearray()
        self._ppos = 0
        self._eof = False
        #: Parse a frame's header, blob prefix and table in one go when they are already
        #: buffered (see _fast_frame); False runs every stage through the general loop
        #: (the reference the tests compare it with).
        self.fast_path = True
        self._failed: tuple[str, int] | None = None  # (message, code): never the exception itself
        self._ready: Frame | None = None
        self._hbuf = bytearray(HEADER_SIZE)
        self._hview = memoryview(self._hbuf)
        self._pbuf = bytearray(PREFIX.size)
        # The last blob table parsed, (raw bytes, data bytes, entries): a stream repeats
        # one table frame after frame, so it is parsed and checked once, then compared.
        self._last_table: tuple[bytes, int, int, list[BlobEntry]] | None = None
        self._start_header()

    # ---- public API -------------------------------------------------------

    def feed(self, data: Buffer) -> None:
        """Add bytes received from the peer (they are copied)."""
        if self._eof:
            raise LocalProtocolError("feed() after feed_eof()")
        if self._ppos:
            # A fresh object rather than an in-place delete: never resizes a
            # buffer that a memoryview might still export.
            self._pending = self._pending[self._ppos :]
            self._ppos = 0
        self._pending += data

    def feed_eof(self) -> None:
        """The peer closed its side; the next calls report CLOSED or raise if mid-frame."""
        self._eof = True

    def next_event(self) -> Event:
        """The next whole frame, NEED_DATA, or CLOSED; raises ProtocolError on a bad stream."""
        if self._failed is not None:
            raise ProtocolError(f"stream already failed: {self._failed[0]}", self._failed[1])
        try:
            return self._next()
        except ProtocolError as e:
            self._fail(e)
            raise

    def _fail(self, e: ProtocolError) -> None:
        """Remember why the stream failed and let go of every buffer."""
        self._failed = (str(e), e.code)
        self._pending = bytearray()
        self._ppos = 0
        self._landings = []
        self._segments = []
        self._ready = None
        self._view = _EMPTY
        self._filled = 0
        self._last_table = None

    def events(self) -> Iterator[Frame]:
        """Yield every frame that is already whole."""
        while True:
            ev = self.next_event()
            if not isinstance(ev, Frame):
                return
            yield ev

    def direct_view(self) -> memoryview | None:
        """Writable view of the bytes the stream needs next, or None.

        None while fed bytes are still queued (they must be used first), while
        a frame waits to be taken, or once the stream has ended.
        """
        if (
            self._failed is not None
            or self._ready is not None
            or self._ppos < len(self._pending)
            or self._phase == _DONE
            or self._eof
        ):
            return None
        return self._view[self._filled :]

    def commit(self, n: int) -> None:
        """Account for ``n`` bytes written into the last :meth:`direct_view`."""
        if not 0 <= n <= len(self._view) - self._filled or self._ppos < len(self._pending) or self._eof:
            raise LocalProtocolError(f"commit({n}) does not match the last direct_view()")
        try:
            self._landed(n)
        except ProtocolError as e:
            self._fail(e)
            raise

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame has arrived but not all of it."""
        return self._phase not in (_HEADER, _DONE) or self._filled > 0 or self._ppos < len(self._pending)

    # ---- state machine ----------------------------------------------------

    def _start_header(self) -> None:
        self._phase = _HEADER
        self._head: Header | None = None
        self._check_crc = False
        self._crc: Running | None = None
        self._got = 0  # payload bytes received so far
        self._landings: list[Landing] | tuple = ()  # filled by _on_table: none until then
        self._segments: list[memoryview] | tuple = ()
        self._seg = 0
        self._ref = 0
        self._count = 0
        self._view = self._hview
        self._filled = 0

    def _set_target(self, view: memoryview) -> None:
        self._view = view
        self._filled = 0

    def _next(self) -> Event:
        if self._ready is None:
            if self._phase == _DONE:
                left = len(self._pending) - self._ppos
                if left:
                    raise ProtocolError(f"{left} bytes after BYE")
                return CLOSED
            if self._ppos < len(self._pending):
                self._drain()
        if self._ready is not None:
            ev, self._ready = self._ready, None
            return ev
        if self._eof and self._phase != _DONE:
            if self.mid_frame:
                raise ProtocolError(f"stream ended mid-frame ({self._progress()})")
            return CLOSED
        return NEED_DATA

    def _drain(self) -> None:
        with memoryview(self._pending) as src:
            end = len(src)
            while self._ppos < end and self._ready is None and self._phase != _DONE:
                pos = self._ppos
                if self._phase == _HEADER and self._filled == 0 and end - pos >= HEADER_SIZE and self.fast_path:
                    self._ppos = self._fast_frame(src, pos, end)
                    continue
                n = min(end - pos, len(self._view) - self._filled)
                self._view[self._filled : self._filled + n] = src[pos : pos + n]
                self._ppos = pos + n
                self._landed(n)
        if self._ppos == len(self._pending):
            self._pending = bytearray()
            self._ppos = 0

    def _fast_frame(self, src: memoryview, pos: int, end: int) -> int:
        """Take a frame's leading stages straight from the buffered bytes; return the new position.

        Called with a whole header buffered and nothing of it taken yet. It runs the
        same checks as the stage-by-stage path (``_on_header``, ``_on_prefix``,
        ``_on_table``, ``_finish``), in the same order, and stops wherever the buffer
        runs out, leaving the state exactly as that path would. What it saves is the
        general loop's per-stage bookkeeping (a step through ``_landed`` and
        ``_complete`` for each of header, prefix, table and body) and the header's copy
        into its buffer. Blob data still goes through the general loop.
        """
        self._on_header(parse_header(src[pos : pos + HEADER_SIZE], self.max_frame))
        pos += HEADER_SIZE
        if self._phase == _PREFIX:
            if end - pos < PREFIX.size:
                return pos
            pos = self._take_stage(src, pos)
            self._on_prefix()
            if end - pos < len(self._view):
                return pos
            pos = self._take_stage(src, pos)
            self._on_table()
            return pos
        # A control frame (HELLO, ACK, ERROR, BYE): its whole body, then the frame.
        if end - pos < len(self._view):
            return pos
        pos = self._take_stage(src, pos)
        self._finish()
        return pos

    def _take_stage(self, src: memoryview, pos: int) -> int:
        """Fill the whole current stage buffer from ``src`` at ``pos``; return the position after it."""
        n = len(self._view)
        if n:
            chunk = src[pos : pos + n]
            self._view[:] = chunk
            self._got += n
            if self._check_crc:
                self._crc.update(chunk)
        self._filled = n
        return pos + n

    def _landed(self, n: int) -> None:
        """Account for ``n`` new bytes at the current destination."""
        start = self._filled
        self._filled += n
        if self._phase == _HEADER:
            if start <= len(MAGIC) and self._filled < HEADER_SIZE:
                # A foreign stream is refused after 4 bytes; a whole header, by parse_header.
                check_prefix(self._view[: self._filled])
        else:
            self._got += n
            if self._check_crc and n:
                self._crc.update(self._view[start : self._filled])
        while self._filled == len(self._view) and self._ready is None and self._phase != _DONE:
            self._complete()

    def _complete(self) -> None:
        """The current destination is full: move to the next one."""
        if self._phase == _HEADER:
            self._on_header(parse_header(self._hbuf, self.max_frame))
        elif self._phase == _PREFIX:
            self._on_prefix()
        elif self._phase == _TABLE:
            self._on_table()
        elif self._phase == _DATA:
            self._seg += 1
            self._next_segment()
        else:
            self._finish()

    def _on_header(self, h: Header) -> None:
        if self.expect is not None and h.ftype not in self.expect:
            allowed = " or ".join(sorted(t.name for t in self.expect))
            when = " before HELLO" if FrameType.HELLO in self.expect else ""
            raise ProtocolError(f"{h.ftype.name} frame{when}: only {allowed} may come now (refused at its header)")
        algo = h.algo
        if self.require_checksum and algo is None:
            raise ProtocolError(f"{h.ftype.name} frame seq {h.seq} carries no checksum, but one is required")
        self._head = h
        self._check_crc = algo is not None
        if algo == XXH3 and XXH3 not in available():
            raise ProtocolError(f"{h.ftype.name} frame uses the XXH3 checksum, which this side cannot check")
        self._crc = Running(algo) if algo else None
        if h.ftype in (FrameType.DATA, FrameType.RESULT):
            if h.length < PREFIX.size:
                raise ProtocolError(f"{h.ftype.name} payload of {h.length} bytes is shorter than its blob prefix")
            self._phase = _PREFIX
            self._set_target(memoryview(self._pbuf))
        else:
            self._phase = _BODY
            self._set_target(memoryview(bytearray(h.length)))

    def _on_prefix(self) -> None:
        h = self._head
        assert h is not None
        ref, count, table_len = PREFIX.unpack(self._view)
        if h.ftype == FrameType.DATA and ref != 0:
            raise ProtocolError(f"DATA frame seq {h.seq} has a nonzero reply reference {ref}")
        if count > MAX_BLOBS:
            raise ProtocolError(f"{h.ftype.name} frame declares {count} blobs (at most {MAX_BLOBS})")
        if table_len > h.length - PREFIX.size:
            raise ProtocolError(f"blob table of {table_len} bytes overruns the {h.length}-byte payload")
        if table_len > count * MAX_ENTRY:
            # Checked before the table's buffer exists: a few bytes cannot make us reserve a big one.
            raise ProtocolError(f"blob table of {table_len} bytes is too long for {count} blobs")
        self._ref, self._count = ref, count
        self._phase = _TABLE
        self._set_target(memoryview(bytearray(table_len)))

    def _on_table(self) -> None:
        h = self._head
        assert h is not None
        data_len = h.length - PREFIX.size - len(self._view)
        last = self._last_table
        if last is not None and last[1] == self._count and last[2] == data_len and last[0] == self._view:
            entries = last[3]  # the same bytes as the last table: the same (already checked) entries
        else:
            entries = parse_table(self._view, self._count, data_len)
            self._last_table = (bytes(self._view), self._count, data_len, entries)
        self._landings = [plan_landing(e, self.targets.get(e.name)) for e in entries]
        self._segments = [ld.view() for ld in self._landings if ld.entry.nbytes]
        self._seg = 0
        self._phase = _DATA
        self._next_segment()

    def _next_segment(self) -> None:
        if self._seg < len(self._segments):
            self._set_target(self._segments[self._seg])
        else:
            self._finish()

    def _finish(self) -> None:
        h = self._head
        assert h is not None
        if self._check_crc and self._crc.value() != h.crc:
            raise ProtocolError(f"{h.ftype.name} frame seq {h.seq}: payload checksum mismatch", ErrorCode.CHECKSUM)
        self._ready = self._build(h)
        if h.ftype == FrameType.BYE:
            self._phase = _DONE
            self._set_target(_EMPTY)
        else:
            self._start_header()

    def _build(self, h: Header) -> Frame:
        body = self._view
        if h.ftype == FrameType.HELLO:
            return HelloFrame(h.seq, parse_hello(body))
        if h.ftype == FrameType.ACK:
            return AckFrame(h.seq, _U32.unpack(body)[0])
        if h.ftype == FrameType.ERROR:
            # The text is for humans: keep it even if the peer mangled its utf-8.
            return ErrorFrame(h.seq, _CODE.unpack_from(body)[0], bytes(body[_CODE.size :]).decode("utf-8", "replace"))
        if h.ftype == FrameType.BYE:
            return ByeFrame(h.seq)
        blobs = {ld.entry.name: ld.finish() for ld in self._landings}
        if h.ftype == FrameType.DATA:
            return DataFrame(h.seq, blobs)
        return ResultFrame(h.seq, self._ref, blobs)

    def _progress(self) -> str:
        if self._phase == _HEADER:
            return f"{self._filled + len(self._pending) - self._ppos} of {HEADER_SIZE} header bytes"
        h = self._head
        assert h is not None
        return f"{h.ftype.name} frame seq {h.seq}: {self._got} of {h.length} payload bytes"
