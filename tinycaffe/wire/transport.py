"""Blocking TCP transport of frames, every socket operation bounded by a timeout.

:func:`connect` retries with exponential backoff until ``connect_timeout``,
:func:`listen`/:func:`accept` open the server side, and :class:`Transport`
writes frame buffers with ``sendmsg`` (optionally paced to an emulated
bandwidth) and reads with ``recv_into`` -- straight into the destination
array when the decoder knows it, else into one reusable scratch buffer.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import Protocol

from tinycaffe.wire.blobs import Buffer
from tinycaffe.wire.errors import ProtocolError, TransportError
from tinycaffe.wire.frames import NEED_DATA, Event
from tinycaffe.wire.pacing import Pacer, parse_rate

DEFAULT_TIMEOUT = 5.0
CHUNK = 64 * 1024  # pacing granularity
# Header, blob table and small frames arrive through a small scratch buffer
# (copied once more by the decoder); kept small so that a big frame's data
# mostly goes straight from the kernel into its destination.
_SCRATCH = 16 * 1024
_DIRECT_MIN = 4 * 1024  # below this, one recv into scratch beats a syscall per piece
_IOV_MAX = 512
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")


class Receiver(Protocol):
    """What a Transport feeds: a Decoder or an Endpoint."""

    def feed(self, data: Buffer) -> None: ...
    def feed_eof(self) -> None: ...
    def direct_view(self) -> memoryview | None: ...
    def commit(self, n: int) -> None: ...
    def next_event(self) -> Event: ...


def peer_name(address: tuple) -> str:
    """ "host:port" (IPv6 hosts in brackets)."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _tune(sock: socket.socket, timeout: float) -> socket.socket:
    sock.settimeout(timeout)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Small ACK/HELLO frames must not wait for Nagle's 40 ms coalescing.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def connect(
    host: str,
    port: int,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = 10.0,
    backoff: float = 0.05,
    max_backoff: float = 1.0,
) -> socket.socket:
    """Connect to ``host:port``, retrying (backoff doubling up to ``max_backoff``) until ``connect_timeout``."""
    target = peer_name((host, port))
    deadline = time.monotonic() + connect_timeout
    delay = backoff
    attempts = 0
    while True:
        attempts += 1
        left = deadline - time.monotonic()
        try:
            sock = socket.create_connection((host, port), timeout=max(0.01, min(timeout, left)))
        except OSError as e:
            last = e
        else:
            return _tune(sock, timeout)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportError(
                f"cannot connect to {target}: {attempts} attempts in {connect_timeout:g} s, last error: {last}",
                target,
            )
        time.sleep(min(delay, left))
        delay = min(delay * 2, max_backoff)


def listen(bind: str = "127.0.0.1", port: int = 0, backlog: int = 4) -> socket.socket:
    """A listening TCP socket; ``port=0`` picks a free port (see ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise TransportError(f"cannot listen on {peer_name((bind, port))}: {e}") from e
    return sock


def accept(listener: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> tuple[socket.socket, str]:
    """Wait up to ``timeout`` for one connection; returns (socket, "host:port" of the peer)."""
    here = peer_name(listener.getsockname())
    listener.settimeout(timeout)
    try:
        sock, addr = listener.accept()
    except TimeoutError:
        raise TransportError(f"no connection on {here} within {timeout:g} s", here) from None
    except OSError as e:
        raise TransportError(f"accept on {here} failed: {e}", here) from e
    return _tune(sock, timeout), peer_name(addr)


def _chunks(views: list[memoryview], size: int) -> list[list[memoryview]]:
    """Split buffers into groups of at most ``size`` bytes (for pacing)."""
    out: list[list[memoryview]] = []
    cur: list[memoryview] = []
    room = size
    for v in views:
        while len(v):
            take = min(room, len(v))
            cur.append(v[:take])
            v = v[take:]
            room -= take
            if room == 0:
                out.append(cur)
                cur, room = [], size
    if cur:
        out.append(cur)
    return out


class Transport:
    """One connected socket carrying frames; not thread-safe (one thread per side).

    ``timeout`` bounds every socket operation (no progress for that long is
    an error); ``rate`` (bytes/s or a string like "10Mbps") paces sending.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rate: float | str | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.timeout = timeout
        self.chunk = chunk
        bps = parse_rate(rate) if isinstance(rate, str) else rate
        self.pacer = Pacer(bps) if bps else None
        self._scratch = bytearray(_SCRATCH)
        self._scratch_view = memoryview(self._scratch)
        self.bytes_sent = 0
        self.bytes_received = 0

    def send(self, buffers: Sequence[Buffer], timeout: float | None = None) -> None:
        """Write all buffers (one frame or more), pacing when a rate is set."""
        views = [memoryview(b) for b in buffers if len(b)]
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            if self.pacer is None:
                self._send_views(views)
            else:
                self.pacer.start()
                for group in _chunks(views, self.chunk):
                    self.pacer.wait(sum(len(v) for v in group))
                    self._send_views(group)
        except TimeoutError:
            raise TransportError(f"timed out sending to {self.peer}", self.peer) from None
        except OSError as e:
            raise TransportError(f"sending to {self.peer} failed: {e}", self.peer) from e

    def _send_views(self, views: list[memoryview]) -> None:
        if not _HAS_SENDMSG:
            for v in views:
                self.sock.sendall(v)
                self.bytes_sent += len(v)
            return
        i = 0
        while i < len(views):
            # Each call waits at most the socket timeout for room to write:
            # a slow link is fine as long as it keeps moving.
            sent = self.sock.sendmsg(views[i : i + _IOV_MAX])
            self.bytes_sent += sent
            while sent:
                if sent >= len(views[i]):
                    sent -= len(views[i])
                    i += 1
                else:
                    views[i] = views[i][sent:]
                    sent = 0

    def receive(self, rx: Receiver, timeout: float | None = None, waiting_for: str = "data") -> Event:
        """Read until ``rx`` yields an event (a frame, or CLOSED after a clean end).

        Raises TransportError on a timeout (``waiting_for`` names what was
        awaited), a reset, or a close mid-frame, and ProtocolError (message
        prefixed with the peer) on bad bytes.
        """
        limit = self.timeout if timeout is None else timeout
        self.sock.settimeout(limit)
        eof = False
        while True:
            try:
                ev = rx.next_event()
                if ev is not NEED_DATA:
                    return ev
                n = self._recv_some(rx, limit, waiting_for)
            except ProtocolError as e:
                if eof:
                    raise TransportError(f"{self.peer} closed the connection: {e}", self.peer) from e
                raise ProtocolError(f"from {self.peer}: {e}", e.code) from e
            if n == 0:
                eof = True
                rx.feed_eof()

    def _recv_some(self, rx: Receiver, limit: float, waiting_for: str) -> int:
        """One recv: straight into the destination when it is big, else via scratch."""
        try:
            view = rx.direct_view()
            if view is not None and len(view) >= _DIRECT_MIN:
                n = self.sock.recv_into(view)
                if n:
                    rx.commit(n)
            else:
                n = self.sock.recv_into(self._scratch)
                if n:
                    rx.feed(self._scratch_view[:n])
        except TimeoutError:
            raise TransportError(
                f"timed out after {limit:g} s waiting for {waiting_for} from {self.peer}", self.peer
            ) from None
        except OSError as e:
            raise TransportError(f"receiving from {self.peer} failed: {e}", self.peer) from e
        self.bytes_received += n
        return n

    def close(self) -> None:
        """Close the socket (idempotent)."""
        try:
            self.sock.close()
        except OSError:
            pass


