"""Sans-I/O protocol state of one side of a Sink/Source connection.

An :class:`Endpoint` wraps a :class:`~tinycaffe.wire.codec.Decoder` for the
incoming direction and numbers and encodes the outgoing frames. It enforces
the rules of the conversation:

* the sink speaks first (HELLO), the source answers with its own HELLO once
  the sink's matches what it expects; nothing else moves before that;
* every frame's seq is exactly one more than the previous one in its
  direction, so a lost, repeated or reordered frame is an error;
* at most ``window`` DATA frames are un-ACKed (the smaller window wins);
* ACKs come in DATA order; when the HELLOs list returned blobs, each DATA gets
  exactly one RESULT, in order, after its ACK;
* BYE ends a direction; a BYE that would drop un-ACKed DATA or a pending
  RESULT is an error, never silent loss.

Admission before allocation: until the peer's HELLO is accepted the decoder
takes only HELLO or ERROR frames of at most ``CONTROL_MAX`` bytes; a source
given ``token`` refuses a HELLO without that token (compared in constant
time) before it even looks at the blobs; once the HELLO is accepted, the
largest frame taken is the size of the blobs it declared.

Outgoing methods return the buffers to write; incoming bytes go in through
:meth:`feed` (or :meth:`direct_view` + :meth:`commit`) and come out of
:meth:`next_event`. Violations by the peer raise :class:`ProtocolError`
(answer with :meth:`send_error`), misuse by this side :class:`LocalProtocolError`.
"""
from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping

import numpy as np

from tinycaffe.wire import encode as enc
from tinycaffe.wire.blobs import Buffer
from tinycaffe.wire.checksum import choose
from tinycaffe.wire.codec import Decoder
from tinycaffe.wire.errors import ErrorCode, LocalProtocolError, ProtocolError
from tinycaffe.wire.frames import (
    CLOSED,
    AckFrame,
    ByeFrame,
    DataFrame,
    ErrorFrame,
    Event,
    Frame,
    HelloFrame,
    ResultFrame,
)
from tinycaffe.wire.header import CONTROL_MAX, HEADER_SIZE, FrameType
from tinycaffe.wire.hello import ANY, BlobSpec, Hello, check_match, payload_size

_HANDSHAKE_TYPES = frozenset({FrameType.HELLO, FrameType.ERROR})

_SEQ_MASK = 0xFFFFFFFF


def _check_blobs(blobs: Mapping[str, np.ndarray], want: tuple[BlobSpec, ...], what: str) -> str | None:
    """A message describing how ``blobs`` differ from ``want``, or None when they match."""
    if len(blobs) == len(want):
        # Fast path, once per frame: plain comparisons, no string building.
        try:
            if all(
                blobs[b.name].shape == b.shape and blobs[b.name].dtype == np.dtype(b.dtype) for b in want
            ):
                return None
        except (KeyError, AttributeError):
            pass
    names = [b.name for b in want]
    if sorted(blobs) != sorted(names):
        return f"{what} carries blobs {sorted(blobs)}, expected {sorted(names)}"
    for spec in want:
        got = BlobSpec.of(spec.name, np.asarray(blobs[spec.name]))
        if (got.dtype, got.shape) != (spec.dtype, spec.shape):
            return f"{what} blob {spec.name!r} is {got.describe()}, expected {spec.describe()}"
    return None


class Endpoint:
    """One side ("sink" or "source", from ``hello.role``) of a wire connection."""

    def __init__(self, hello: Hello, *, token: bytes | None = None) -> None:
        self.local = hello
        self.peer: Hello | None = None
        self.window = hello.window
        self.checksum: bool | str = True  # HELLO frames always carry a CRC; after it, "crc32", "xxh3" or False
        if token is not None and hello.role != "source":
            raise LocalProtocolError("only a source checks a token; a sink sends its own in its Hello")
        self._token = token
        # Nothing but a small HELLO (or ERROR) is taken before the handshake.
        self._decoder = Decoder(min(hello.max_frame, CONTROL_MAX))
        self._decoder.expect = _HANDSHAKE_TYPES
        self._send_seq = 0
        self._recv_seq = 0
        self._hello_sent = False
        self._unacked: deque[int] = deque()  # DATA seqs not yet ACKed
        self._unanswered: deque[int] = deque()  # DATA seqs still owed a RESULT
        self._bye_sent = False
        self._bye_received = False
        self._error_sent = False
        self._error_received = False

    # ---- state ------------------------------------------------------------

    @property
    def role(self) -> str:
        """"sink" or "source"."""
        return self.local.role

    @property
    def ready(self) -> bool:
        """True once both HELLOs have crossed and matched."""
        return self._hello_sent and self.peer is not None

    @property
    def failed(self) -> bool:
        """True once an ERROR frame went either way, or the stream broke."""
        return self._error_sent or self._error_received

    @property
    def closed(self) -> bool:
        """True once BYE went both ways."""
        return self._bye_sent and self._bye_received

    @property
    def bye_received(self) -> bool:
        """True once the peer said BYE."""
        return self._bye_received

    @property
    def bye_sent(self) -> bool:
        """True once this side said BYE."""
        return self._bye_sent

    @property
    def oldest_unacked(self) -> int | None:
        """Seq of the oldest un-ACKed DATA frame, if any."""
        return self._unacked[0] if self._unacked else None

    @property
    def oldest_unanswered(self) -> int | None:
        """Seq of the oldest DATA frame still owed a RESULT, if any."""
        return self._unanswered[0] if self._unanswered else None

    @property
    def in_flight(self) -> int:
        """DATA frames sent (sink) or received (source) and not yet ACKed."""
        return len(self._unacked)

    @property
    def pending_results(self) -> int:
        """DATA frames still owed a RESULT."""
        return len(self._unanswered)

    @property
    def returns_results(self) -> bool:
        """True when the source sends a RESULT for every DATA."""
        return bool(self.local.returns)

    @property
    def can_send_data(self) -> bool:
        """True when a sink may send DATA now (HELLOs done, window not full)."""
        return (
            self.role == "sink"
            and self.ready
            and not self.failed
            and not self._bye_sent
            and not self._bye_received
            and len(self._unacked) < self.window
        )

    @property
    def targets(self) -> dict[str, np.ndarray]:
        """Preallocated arrays incoming DATA (source) or RESULT (sink) blobs land in."""
        return self._decoder.targets

    @targets.setter
    def targets(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._decoder.targets = dict(arrays)

    # ---- outgoing ---------------------------------------------------------

    def _seq(self) -> int:
        seq = self._send_seq
        self._send_seq = (seq + 1) & _SEQ_MASK
        return seq

    def _usable(self, what: str) -> None:
        if self.failed:
            raise LocalProtocolError(f"cannot send {what}: the connection has failed")
        if self._bye_sent:
            raise LocalProtocolError(f"cannot send {what} after BYE")

    def send_hello(self) -> list[Buffer]:
        """Our HELLO: first for a sink, after the sink's (matching) HELLO for a source."""
        self._usable("HELLO")
        if self._hello_sent:
            raise LocalProtocolError("HELLO already sent")
        if self.role == "source" and self.peer is None:
            raise LocalProtocolError("a source sends its HELLO only after the sink's")
        self._hello_sent = True
        return enc.encode_hello(self._seq(), self.local)

    def send_data(self, blobs: Mapping[str, np.ndarray]) -> tuple[int, list[Buffer]]:
        """(seq, buffers) of a DATA frame; refused when the window is full."""
        self._check_data(window=True)
        return self._take_data(*self._encode_data(blobs))

    def prepare_data(self, blobs: Mapping[str, np.ndarray]) -> tuple[int, list[Buffer]]:
        """Encode (and checksum) the next DATA frame without sending it, even with the window full.

        A sink with a full window can so encode frame k+1 while the ACK of frame k is on its
        way; :meth:`send_prepared` then takes it once there is room. Nothing changes here
        until then.
        """
        self._check_data(window=False)
        return self._encode_data(blobs)

    def send_prepared(self, seq: int, bufs: list[Buffer]) -> tuple[int, list[Buffer]]:
        """(seq, buffers) of a DATA frame from :meth:`prepare_data`; refused when the window is
        full, or when another frame went out since it was prepared (its seq is taken)."""
        self._check_data(window=True)
        if seq != self._send_seq:
            raise LocalProtocolError(f"prepared DATA seq {seq} is stale: the next frame out is seq {self._send_seq}")
        return self._take_data(seq, bufs)

    def _encode_data(self, blobs: Mapping[str, np.ndarray]) -> tuple[int, list[Buffer]]:
        problem = _check_blobs(blobs, self.local.blobs, f"DATA from sink layer {self.local.layer!r}")
        if problem:
            raise LocalProtocolError(problem)
        seq = self._send_seq
        bufs = enc.encode_data(seq, blobs, self.local.encoding, checksum=self.checksum)
        self._check_size(bufs, "DATA")
        return seq, bufs

    def _take_data(self, seq: int, bufs: list[Buffer]) -> tuple[int, list[Buffer]]:
        """Count DATA frame ``seq`` as sent: it now waits for its ACK (and its RESULT)."""
        self._seq()
        self._unacked.append(seq)
        if self.returns_results:
            self._unanswered.append(seq)
        return seq, bufs

    def _check_data(self, *, window: bool) -> None:
        if self.role != "sink":
            raise LocalProtocolError("only a sink sends DATA")
        self._usable("DATA")
        if not self.ready:
            raise LocalProtocolError("cannot send DATA before the HELLO exchange is done")
        if self._bye_received:
            raise LocalProtocolError("cannot send DATA: the source said BYE")
        if window and len(self._unacked) >= self.window:
            raise LocalProtocolError(
                f"window of {self.window} full: DATA seq {self._unacked[0]} not yet acknowledged"
            )

    def _check_size(self, bufs: list[Buffer], what: str) -> None:
        assert self.peer is not None
        size = sum(len(b) for b in bufs)
        if size - HEADER_SIZE > self.peer.max_frame:
            raise LocalProtocolError(
                f"{what} payload of {size - HEADER_SIZE} bytes exceeds the peer's max_frame of {self.peer.max_frame}"
            )

    def send_ack(self, seq: int) -> list[Buffer]:
        """An ACK for the oldest un-ACKed DATA frame, which must be ``seq``."""
        if self.role != "source":
            raise LocalProtocolError("only a source sends ACK")
        self._usable("ACK")
        if not self._unacked or self._unacked[0] != seq:
            raise LocalProtocolError(f"cannot ACK seq {seq}: next un-ACKed DATA is {list(self._unacked)[:1]}")
        self._unacked.popleft()
        return enc.encode_ack(self._seq(), seq, checksum=self.checksum)

    def send_result(self, ref: int, blobs: Mapping[str, np.ndarray]) -> list[Buffer]:
        """A RESULT answering DATA frame ``ref`` (the oldest one not yet answered, already ACKed)."""
        if self.role != "source":
            raise LocalProtocolError("only a source sends RESULT")
        self._usable("RESULT")
        if not self.returns_results:
            raise LocalProtocolError("the HELLOs list no returned blobs: RESULT is not expected")
        if not self._unanswered or self._unanswered[0] != ref:
            raise LocalProtocolError(
                f"cannot answer seq {ref}: next DATA owed a RESULT is {list(self._unanswered)[:1]}"
            )
        if self._unacked and self._unacked[0] == ref:
            raise LocalProtocolError(f"ACK DATA seq {ref} before sending its RESULT")
        problem = _check_blobs(blobs, self.local.returns, f"RESULT from source layer {self.local.layer!r}")
        if problem:
            raise LocalProtocolError(problem)
        seq = self._send_seq
        bufs = enc.encode_result(seq, ref, blobs, self.local.encoding, checksum=self.checksum)
        self._check_size(bufs, "RESULT")
        self._seq()
        self._unanswered.popleft()
        return bufs

    def send_error(self, code: int, message: str) -> list[Buffer]:
        """An ERROR frame; after it this side sends nothing more."""
        if self._error_sent or self._bye_sent:
            raise LocalProtocolError("cannot send ERROR: this side already ended the conversation")
        self._error_sent = True
        return enc.encode_error(self._seq(), code, message, checksum=True)

    def send_bye(self) -> list[Buffer]:
        """BYE: this side sends nothing more. A source must first ACK and answer all DATA."""
        self._usable("BYE")
        if self.role == "source" and (self._unacked or self._unanswered):
            raise LocalProtocolError(
                f"cannot say BYE with {len(self._unacked)} DATA un-ACKed and {len(self._unanswered)} unanswered"
            )
        self._bye_sent = True
        return enc.encode_bye(self._seq(), checksum=self.checksum)

    # ---- incoming ---------------------------------------------------------

    def feed(self, data: Buffer) -> None:
        """Bytes received from the peer."""
        self._decoder.feed(data)

    def feed_eof(self) -> None:
        """The peer closed its side of the connection."""
        self._decoder.feed_eof()

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame has arrived but not all of it."""
        return self._decoder.mid_frame

    def direct_view(self) -> memoryview | None:
        """See :meth:`Decoder.direct_view`."""
        return self._decoder.direct_view()

    def commit(self, n: int) -> None:
        """See :meth:`Decoder.commit`."""
        self._decoder.commit(n)

    def next_event(self) -> Event:
        """The next frame, checked against the protocol rules; NEED_DATA or CLOSED otherwise."""
        try:
            ev = self._decoder.next_event()
        except ProtocolError:
            self._error_received = True  # the stream is unusable from here on
            raise
        if ev is CLOSED:
            if not (self._bye_received or self._error_received):
                self._error_received = True
                raise ProtocolError("peer closed the connection without BYE")
            return ev
        if not isinstance(ev, Frame):
            return ev
        try:
            self._accept(ev)
        except ProtocolError:
            self._error_received = True
            raise
        return ev

    def _accept(self, f: Frame) -> None:
        if isinstance(f, ErrorFrame):
            # An ERROR ends the stream whatever its number: a peer interrupted between
            # numbering a frame and sending it (Ctrl-C) skips that number, and the gap
            # must not hide the reason it stopped behind a "frame lost" complaint.
            self._recv_seq = (f.seq + 1) & _SEQ_MASK
            self._error_received = True
            return
        if f.seq != self._recv_seq:
            kind = "duplicated or reordered" if f.seq < self._recv_seq else "lost or reordered"
            raise ProtocolError(
                f"{f.ftype.name} frame has seq {f.seq}, expected {self._recv_seq} (frame {kind})",
                ErrorCode.SEQUENCE,
            )
        self._recv_seq = (self._recv_seq + 1) & _SEQ_MASK
        if self.peer is None and not isinstance(f, HelloFrame):
            raise ProtocolError(f"{f.ftype.name} frame before HELLO")
        if isinstance(f, HelloFrame):
            self._on_hello(f.hello)
        elif isinstance(f, DataFrame):
            self._on_data(f)
        elif isinstance(f, AckFrame):
            self._on_ack(f)
        elif isinstance(f, ResultFrame):
            self._on_result(f)
        elif isinstance(f, ByeFrame):
            self._on_bye()

    def _on_hello(self, peer: Hello) -> None:
        if self.peer is not None:
            raise ProtocolError("second HELLO")
        if self.role == "sink" and not self._hello_sent:
            raise ProtocolError("the source spoke before the sink's HELLO")
        if self._token is not None and not hmac.compare_digest(peer.token.encode("utf-8", "surrogatepass"), self._token):
            raise ProtocolError(
                f"HELLO from {peer.role} layer {peer.layer!r:.80} refused: "
                + ("no token" if not peer.token else "wrong token"),
                ErrorCode.AUTH,
            )
        check_match(self.local, peer)
        if any(b.dtype == ANY for b in self.local.returns):
            # Returned blobs were asked for by name: from now on expect the source's specs.
            self.local = self.local.with_(returns=peer.returns)
        self.peer = peer
        self.window = min(self.local.window, peer.window)
        wanted = self.local.checksum or peer.checksum
        self.checksum = choose(self.local.checksums, peer.checksums) if wanted else False
        self._decoder.require_checksum = bool(wanted)
        self._decoder.expect = None
        # From now on the peer may send what it declared, and no more.
        if self.role == "source":
            declared = payload_size(peer.blobs, peer.encoding)
        else:
            declared = payload_size(self.local.returns, peer.encoding) if self.local.returns else 0
        self._decoder.max_frame = min(self.local.max_frame, max(CONTROL_MAX, declared))

    def _on_data(self, f: DataFrame) -> None:
        if self.role != "source":
            raise ProtocolError("a sink received DATA")
        if not self._hello_sent:
            raise ProtocolError("DATA before the source's HELLO")
        if self._bye_received:
            raise ProtocolError("DATA after BYE")
        if len(self._unacked) >= self.window:
            raise ProtocolError(
                f"DATA seq {f.seq} exceeds the window of {self.window} un-ACKed frames", ErrorCode.WINDOW
            )
        assert self.peer is not None
        problem = _check_blobs(f.blobs, self.local.blobs, f"DATA seq {f.seq} for source layer {self.local.layer!r}")
        if problem:
            raise ProtocolError(problem, ErrorCode.MISMATCH)
        self._unacked.append(f.seq)
        if self.returns_results:
            self._unanswered.append(f.seq)

    def _on_ack(self, f: AckFrame) -> None:
        if self.role != "sink":
            raise ProtocolError("a source received ACK")
        if not self._unacked or self._unacked[0] != f.acked:
            want = self._unacked[0] if self._unacked else "none"
            raise ProtocolError(f"ACK of seq {f.acked}, but the oldest un-ACKed DATA is {want}", ErrorCode.SEQUENCE)
        self._unacked.popleft()

    def _on_result(self, f: ResultFrame) -> None:
        if self.role != "sink":
            raise ProtocolError("a source received RESULT")
        if not self.returns_results:
            raise ProtocolError("RESULT received, but the HELLOs list no returned blobs")
        if not self._unanswered or self._unanswered[0] != f.ref:
            want = self._unanswered[0] if self._unanswered else "none"
            raise ProtocolError(f"RESULT for seq {f.ref}, but the oldest unanswered DATA is {want}", ErrorCode.SEQUENCE)
        if self._unacked and self._unacked[0] == f.ref:
            raise ProtocolError(f"RESULT for seq {f.ref} came before its ACK", ErrorCode.SEQUENCE)
        problem = _check_blobs(f.blobs, self.local.returns, f"RESULT seq {f.seq} for sink layer {self.local.layer!r}")
        if problem:
            raise ProtocolError(problem, ErrorCode.MISMATCH)
        self._unanswered.popleft()

    def _on_bye(self) -> None:
        if self.role == "sink" and (self._unacked or self._unanswered):
            raise ProtocolError(
                f"source said BYE with {len(self._unacked)} DATA un-ACKed and {len(self._unanswered)} unanswered"
            )
        self._bye_received = True


__all__ = ["Endpoint"]
