"""Errors of the Sink/Source wire protocol.

They all derive from :class:`tinycaffe.errors.WireError`, so the layers (and the
CLI) can catch one class. The split says *whose* fault it is:

* :class:`ProtocolError` -- the bytes the peer sent break the protocol;
* :class:`LocalProtocolError` -- this side's own code asked for something the
  protocol forbids right now (DATA with a full window, DATA before HELLO...);
* :class:`PeerError` -- the peer refused us with an ERROR frame;
* :class:`TransportError` -- TCP itself failed: refused, timed out, closed.
"""
from __future__ import annotations

from enum import IntEnum

from tinycaffe.errors import WireError


class ErrorCode(IntEnum):
    """The u16 code of an ERROR frame (a peer may send codes not listed here)."""

    PROTOCOL = 1  # malformed frame or payload
    VERSION = 2  # unsupported protocol version
    MISMATCH = 3  # the HELLOs (or a DATA frame) do not match the agreed blobs
    TOO_LARGE = 4  # a frame above the receiver's max_frame
    CHECKSUM = 5  # CRC mismatch
    SEQUENCE = 6  # frame lost, duplicated or reordered
    WINDOW = 7  # more un-ACKed DATA frames than the window allows
    APPLICATION = 8  # the peer's own code failed (e.g. the cloud net raised)
    AUTH = 9  # the HELLO carried no token, or the wrong one
    BUSY = 10  # the server is at its client limit (try again later)
    SHUTDOWN = 11  # the server is stopping; unanswered batches must be resent elsewhere


class ProtocolError(WireError):
    """The peer sent bytes that break the protocol; ``code`` is what to answer."""

    def __init__(self, message: str, code: int = ErrorCode.PROTOCOL) -> None:
        super().__init__(message)
        self.code = int(code)


class LocalProtocolError(WireError):
    """This side tried something the protocol does not allow in its current state."""


class PeerError(WireError):
    """The peer sent an ERROR frame; ``code`` and ``reason`` are what it said."""

    def __init__(self, message: str, code: int, reason: str) -> None:
        super().__init__(message)
        self.code = int(code)
        self.reason = reason


class TransportError(WireError):
    """The TCP connection failed; ``peer`` is the "host:port" on the other side.

    ``kind``: "closed" (reset or closed by the peer), "refused" (nobody
    listens), "timeout" (no answer in time), "tls" (the peer's certificate or
    TLS handshake failed) or "local" (this side could not listen or accept).
    A client may reconnect after "closed" or "refused", not after the others.
    """

    def __init__(self, message: str, peer: str = "", kind: str = "closed") -> None:
        super().__init__(message)
        self.peer = peer
        self.kind = kind


def reword(exc: WireError, prefix: str) -> WireError:
    """A copy of ``exc`` (same class and fields) whose message starts with ``prefix``.

    The Sink and Source layers use it to add their layer name and peer.
    """
    cls = type(exc)
    new = cls.__new__(cls)  # not copy.copy: the subclasses' __init__ takes extra fields
    new.__dict__.update(exc.__dict__)
    new.args = (f"{prefix}{exc}",)
    return new
