"""Blocking sessions that the Sink and Source layers drive, one thread each.

A :class:`SinkSession` lives in the client (edge) thread: ``send`` a batch's
blobs, optionally read the ``result`` that the cloud sends back, ``close``.
A :class:`SourceServer` listens in the server (cloud) thread and ``accept``
gives a :class:`SourceSession`: ``receive`` returns each DATA frame after
ACKing it (so the sink can go on with its next batch while the cloud
computes), ``send_result`` answers it, and ``receive`` returns None once the
sink said BYE. Any protocol error is answered with an ERROR frame (best
effort) before it is raised.
"""
from __future__ import annotations

import socket
import ssl
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from tinycaffe.wire.endpoint import Endpoint
from tinycaffe.errors import WireError
from tinycaffe.wire.errors import ErrorCode, LocalProtocolError, PeerError, ProtocolError, TransportError
from tinycaffe.wire.frames import CLOSED, ByeFrame, DataFrame, ErrorFrame, Event, HelloFrame, ResultFrame
from tinycaffe.wire.hello import Hello
from tinycaffe.wire.transport import DEFAULT_TIMEOUT, Transport, accept, connect, listen, peer_name, tls_accept

if TYPE_CHECKING:
    from typing_extensions import Self

_ERROR_SEND_TIMEOUT = 0.5


class _Session:
    """What both sides share: event pumping and error reporting."""

    def __init__(self, transport: Transport, endpoint: Endpoint) -> None:
        self.transport = transport
        self.endpoint = endpoint

    @property
    def peer(self) -> Hello:
        """The peer's HELLO."""
        assert self.endpoint.peer is not None
        return self.endpoint.peer

    @property
    def peer_address(self) -> str:
        """ "host:port" of the other side."""
        return self.transport.peer

    @property
    def targets(self) -> dict[str, np.ndarray]:
        """Preallocated arrays that incoming blobs land in (see Decoder)."""
        return self.endpoint.targets

    @targets.setter
    def targets(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.endpoint.targets = arrays

    def _report(self, code: int, message: str) -> None:
        """Tell the peer why we stop, if the connection still allows it.

        A frame cut short (Ctrl-C in the middle of a send) is completed first, so
        that the ERROR arrives as an ERROR and not as garbage.
        """
        if not self.transport.finish_frame(_ERROR_SEND_TIMEOUT):
            return  # the stream is broken mid-frame: closing is all that is left
        try:
            self.transport.send(self.endpoint.send_error(code, message), timeout=_ERROR_SEND_TIMEOUT)
        except (LocalProtocolError, TransportError, OSError):
            pass  # the connection is already gone: nobody left to tell

    def _next(self, timeout: float | None, waiting_for: str) -> Event:
        """One event; protocol errors are reported to the peer, ERROR frames raised."""
        try:
            ev = self.transport.receive(self.endpoint, timeout, waiting_for)
        except ProtocolError as e:
            self._report(e.code, str(e))
            self.transport.close()
            raise
        except TransportError:
            self.transport.close()
            raise
        if isinstance(ev, ErrorFrame):
            self.transport.close()
            raise PeerError(f"{self.transport.peer} stopped with ERROR {ev.code}: {ev.message}", ev.code, ev.message)
        return ev

    def fail(self, message: str, code: int = ErrorCode.APPLICATION) -> None:
        """Abort: send ERROR (best effort) and close, e.g. when the local net raised."""
        self._report(code, message)
        self.transport.linger_close(_ERROR_SEND_TIMEOUT)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.fail(f"{exc_type.__name__}: {exc}")

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class SinkSession(_Session):
    """The client side. ``ack_timeout`` bounds the wait for a free window slot,
    which includes the cloud's compute time on the previous batch."""

    def __init__(self, transport: Transport, endpoint: Endpoint, *, ack_timeout: float | None = None) -> None:
        super().__init__(transport, endpoint)
        self.ack_timeout = transport.timeout if ack_timeout is None else ack_timeout
        self._results: deque[ResultFrame] = deque()

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        hello: Hello,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = 10.0,
        ack_timeout: float | None = None,
        rate: float | str | None = None,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> SinkSession:
        """Connect (with retries), exchange HELLOs, and return a ready session.

        ``tls``: a client context (see :mod:`tinycaffe.serve.tls`) that checks
        the server's certificate; put a shared token in ``hello.token``.
        """
        sock = connect(host, port, timeout=timeout, connect_timeout=connect_timeout, tls=tls,
                       server_hostname=server_hostname)
        # interruptible: Ctrl-C in the client never cuts a frame where it cannot be completed.
        transport = Transport(sock, peer_name((host, port)), timeout=timeout, rate=rate, interruptible=True)
        session = cls(transport, Endpoint(hello), ack_timeout=ack_timeout)
        try:
            session.handshake()
        except BaseException:
            session.transport.close()
            raise
        return session

    def handshake(self, timeout: float | None = None) -> Hello:
        """Send our HELLO and wait for the source's."""
        self.transport.send(self.endpoint.send_hello())
        ev = self._next(timeout, "the source's HELLO")
        if not isinstance(ev, HelloFrame):
            self.fail("expected HELLO", ErrorCode.PROTOCOL)
            raise ProtocolError(f"from {self.transport.peer}: expected HELLO, got {ev!r}")
        return self.peer

    def _pump(self, timeout: float | None, waiting_for: str) -> None:
        ev = self._next(timeout, waiting_for)
        if isinstance(ev, ResultFrame):
            self._results.append(ev)
        elif isinstance(ev, ByeFrame):
            # The source is shutting down with nothing outstanding (Endpoint checked).
            if not self.endpoint.bye_sent:
                self._send_quiet_bye()
            self.transport.close()
        elif ev is CLOSED:
            self.transport.close()

    def _send_quiet_bye(self) -> None:
        try:
            self.transport.send(self.endpoint.send_bye(), timeout=_ERROR_SEND_TIMEOUT)
        except (LocalProtocolError, TransportError):
            pass

    def send(self, blobs: Mapping[str, np.ndarray]) -> int:
        """Send one DATA frame, waiting (up to ``ack_timeout``) for a free window slot; returns its seq.

        With the window full the frame is encoded (and checksummed) before the wait, so
        that this work is off the path from the ACK's arrival to the next write.
        """
        ep = self.endpoint
        if ep.in_flight >= ep.window and ep.ready and not ep.failed and not ep.bye_received:
            prepared = ep.prepare_data(blobs)
            while ep.in_flight >= ep.window and not ep.failed and not ep.bye_received:
                self._pump(self.ack_timeout, f"the ACK of DATA seq {ep.oldest_unacked}")
            seq, bufs = ep.send_prepared(*prepared)
        else:
            seq, bufs = ep.send_data(blobs)
        try:
            self.transport.send(bufs)
        except TransportError:
            self._raise_peer_reason()
            raise
        return seq

    def _raise_peer_reason(self) -> None:
        """After a failed write: if the source said why it stopped (ERROR), raise that instead."""
        try:
            while True:
                ev = self.transport.receive(self.endpoint, _ERROR_SEND_TIMEOUT, "the source's ERROR")
                if isinstance(ev, ErrorFrame) or ev is CLOSED:
                    break
        except (WireError, OSError):
            return  # nothing readable: the write error stands
        if isinstance(ev, ErrorFrame):
            self.transport.close()
            raise PeerError(f"{self.transport.peer} stopped with ERROR {ev.code}: {ev.message}", ev.code, ev.message)

    def flush(self) -> None:
        """Wait until every DATA frame sent so far is ACKed."""
        ep = self.endpoint
        while ep.in_flight and not ep.failed:
            self._pump(self.ack_timeout, f"the ACK of DATA seq {ep.oldest_unacked}")

    def result(self, timeout: float | None = None) -> ResultFrame:
        """The next RESULT, in DATA order (blocks up to ``timeout`` for it)."""
        ep = self.endpoint
        while not self._results:
            if not ep.pending_results or ep.failed:
                raise LocalProtocolError("no RESULT is pending")
            self._pump(timeout, f"the RESULT of DATA seq {ep.oldest_unanswered}")
        return self._results.popleft()

    def close(self, timeout: float | None = None) -> None:
        """Wait for outstanding ACKs and RESULTs (unread ones are dropped), exchange BYE, close."""
        ep = self.endpoint
        try:
            if ep.failed or ep.closed:
                return
            while (ep.in_flight or ep.pending_results) and not ep.bye_received:
                self._pump(timeout, "the last ACK/RESULT")
            if not ep.bye_sent:
                self.transport.send(ep.send_bye())
            while not ep.bye_received:
                self._pump(timeout, "the source's BYE")
        finally:
            self.transport.close()


class SourceSession(_Session):
    """The server side of one sink connection."""

    def handshake(self, timeout: float | None = None) -> Hello:
        """Wait for the sink's HELLO, refuse it (ERROR + raise) if it does not match, else answer."""
        ev = self._next(timeout, "the sink's HELLO")
        if not isinstance(ev, HelloFrame):
            self.fail("expected HELLO", ErrorCode.PROTOCOL)
            raise ProtocolError(f"from {self.transport.peer}: expected HELLO, got {ev!r}")
        self.transport.send(self.endpoint.send_hello())
        return self.peer

    def receive(self, timeout: float | None = None) -> DataFrame | None:
        """The next DATA frame, already ACKed; None once the sink said BYE (BYE is answered)."""
        ep = self.endpoint
        if ep.bye_received:
            return None
        ev = self._next(timeout, "DATA")
        if isinstance(ev, DataFrame):
            self.transport.send(ep.send_ack(ev.seq))
            return ev
        if isinstance(ev, ByeFrame):
            if not ep.pending_results:
                self.transport.send(ep.send_bye())
                self.transport.close()
            return None
        raise ProtocolError(f"from {self.transport.peer}: unexpected {ev!r}")

    def send_result(self, ref: int, blobs: Mapping[str, np.ndarray]) -> None:
        """Answer DATA frame ``ref`` with the returned blobs."""
        self.transport.send(self.endpoint.send_result(ref, blobs))
        ep = self.endpoint
        if ep.bye_received and not ep.pending_results:
            self.transport.send(ep.send_bye())
            self.transport.close()

    def close(self, timeout: float | None = None) -> None:
        """Say BYE (if not done) and close; waits for the sink's BYE if it has not come yet."""
        ep = self.endpoint
        try:
            if ep.failed or ep.bye_sent:
                return
            self.transport.send(ep.send_bye())
            while not ep.bye_received:
                ev = self._next(timeout, "the sink's BYE")
                if isinstance(ev, DataFrame):
                    raise ProtocolError(f"from {self.transport.peer}: DATA after the source said BYE")
        finally:
            self.transport.close()


class SourceServer:
    """Listening side of the cloud: one ``accept`` per sink connection."""

    def __init__(
        self,
        hello: Hello,
        bind: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rate: float | str | None = None,
        token: bytes | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.hello = hello
        self.timeout = timeout
        self.rate = rate
        self.token = token
        self.tls = tls
        self.listener: socket.socket = listen(bind, port)
        host, bound = self.listener.getsockname()[:2]
        #: (host, port) actually bound (useful with port 0).
        self.address: tuple[str, int] = (host, bound)

    def accept(self, timeout: float | None = None, handshake_timeout: float | None = None) -> SourceSession:
        """Wait up to ``timeout`` for a sink, then do the HELLO exchange within
        ``handshake_timeout`` (default: the transport timeout) and return its session."""
        limit = self.timeout if timeout is None else timeout
        shake = self.timeout if handshake_timeout is None else handshake_timeout
        sock, peer = accept(self.listener, limit)
        if self.tls is not None:
            sock = tls_accept(sock, self.tls, peer, shake).duplex
        endpoint = Endpoint(self.hello, token=self.token)
        session = SourceSession(Transport(sock, peer, timeout=self.timeout, rate=self.rate), endpoint)
        try:
            session.handshake(shake)
        except BaseException:
            session.transport.close()
            raise
        return session

    def close(self) -> None:
        """Stop listening."""
        self.listener.close()

    def __enter__(self) -> SourceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
