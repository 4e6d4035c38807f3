"""Blocking TCP transport of frames, every socket operation bounded by a timeout.

:func:`connect` retries with exponential backoff until ``connect_timeout``,
:func:`listen`/:func:`accept` open the server side, and :class:`Transport`
writes frame buffers with ``sendmsg`` (optionally paced to an emulated
bandwidth) and reads with ``recv_into`` -- straight into the destination
array when the decoder knows it, else into one reusable scratch buffer.
"""
from __future__ import annotations

import queue
import socket
import ssl
import threading
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
_TLS_RECORD = 16 * 1024  # the largest TLS record's plaintext
_TLS_STREAM_PIECE = 256 * 1024  # = tls_stream's write size (see _send_views)


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
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> socket.socket:
    """Connect to ``host:port``, retrying (backoff doubling up to ``max_backoff``) until ``connect_timeout``.

    With ``tls`` the connection is wrapped and the server's certificate
    checked against the context's CA for ``server_hostname`` (default
    ``host``); a failed check is not retried.
    """
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
            if tls is None:
                return _tune(sock, timeout)
            return _tls_client(sock, tls, server_hostname or host, target, timeout)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportError(
                f"cannot connect to {target}: {attempts} attempts in {connect_timeout:g} s, last error: {last}",
                target, "refused",
            )
        time.sleep(min(delay, left))
        delay = min(delay * 2, max_backoff)


def _tls_client(sock: socket.socket, tls: ssl.SSLContext, hostname: str, target: str,
                timeout: float) -> socket.socket:
    """The TLS handshake of a client; a certificate the CA does not vouch for is fatal."""
    sock.settimeout(timeout)
    try:
        wrapped = tls.wrap_socket(sock, server_hostname=hostname)
    except ssl.SSLCertVerificationError as e:
        sock.close()
        raise TransportError(f"TLS: {target} is not who it claims to be ({e.verify_message})", target,
                             "tls") from None
    except (ssl.SSLError, OSError) as e:
        sock.close()
        raise TransportError(f"TLS handshake with {target} failed: {e}", target, "tls") from None
    return _tune(wrapped, timeout)


def tls_accept(sock: socket.socket, tls: ssl.SSLContext, peer: str, timeout: float):
    """The server's side of the TLS handshake, ``timeout`` in all; a TLSStream (see tls_stream)."""
    from tinycaffe.wire.tls_stream import TLSStream

    _tune(sock, timeout)
    stream = TLSStream(sock, tls, server_side=True)
    try:
        stream.handshake(timeout)
    except (ssl.SSLError, OSError) as e:  # TimeoutError is an OSError
        stream.close()
        raise TransportError(f"TLS handshake with {peer} failed: {e or 'timed out'}", peer, "tls") from None
    return stream


def listen(bind: str = "127.0.0.1", port: int = 0, backlog: int = 128) -> socket.socket:
    """A listening TCP socket; ``port=0`` picks a free port (see ``getsockname()``).

    The backlog holds connections the kernel accepted before the server took
    them: it must cover a fleet of clients (re)connecting at once.
    """
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise TransportError(f"cannot listen on {peer_name((bind, port))}: {e}", kind="local") from e
    return sock


def accept(listener: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> tuple[socket.socket, str]:
    """Wait up to ``timeout`` for one connection; returns (socket, "host:port" of the peer)."""
    here = peer_name(listener.getsockname())
    listener.settimeout(timeout)
    try:
        sock, addr = listener.accept()
    except TimeoutError:
        raise TransportError(f"no connection on {here} within {timeout:g} s", here, "timeout") from None
    except OSError as e:
        raise TransportError(f"accept on {here} failed: {e}", here, "local") from e
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


def _consume(views: list[memoryview], sent: int) -> None:
    """Drop the first ``sent`` bytes from ``views``, in place."""
    while sent:
        if sent >= len(views[0]):
            sent -= len(views[0])
            del views[0]
        else:
            views[0] = views[0][sent:]
            sent = 0


def _bytes_view(b: Buffer) -> memoryview:
    """A flat view of ``b`` whose length is its byte count (whatever its item format)."""
    v = memoryview(b)
    return v if v.format == "B" and v.ndim == 1 else v.cast("B")


def send_nowait(sock: socket.socket, buffers: Sequence[Buffer]) -> tuple[int, list[memoryview]]:
    """Write what the kernel takes at once, never waiting: (bytes written, what is left).

    For a plain TCP socket whose other users are idle (it switches the socket
    to non-blocking; a Transport sets its own timeout before each call). A
    small frame usually fits the socket buffer whole, so a thread that would
    otherwise hand it to a writer thread can write it itself; what is left
    (a full buffer, a slow peer) is for that writer, which may wait.
    Raises OSError when the connection is broken.
    """
    views = [_bytes_view(b) for b in buffers if len(b)]
    sock.settimeout(0.0)
    total = 0
    while views:
        try:
            sent = sock.sendmsg(views[:_IOV_MAX])
        except BlockingIOError:
            break
        total += sent
        _consume(views, sent)
    return total, views


def _settle(sock: socket.socket, deadline: float) -> None:
    """Give the next socket call what is left until ``deadline`` (at least a sliver)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


def _is_tls(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket)


def _tls_pieces(views: list[memoryview], piece: int | None) -> list[memoryview]:
    """The writes of a frame over TLS: the header joined to the start of the payload (a
    small TLS record of its own costs one more record and system call, the join copies
    at most 16 KB), then the rest in pieces of at most ``piece`` bytes (None: whole)."""
    if len(views) > 1 and len(views[0]) < _TLS_RECORD:
        fill = _TLS_RECORD - len(views[0])
        views = [memoryview(b"".join((views[0], views[1][:fill]))), views[1][fill:], *views[2:]]
    if piece is None:
        return [v for v in views if len(v)]
    return [v[i : i + piece] for v in views for i in range(0, len(v), piece)]


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
        interruptible: bool = False,
    ) -> None:
        self.sock = sock
        # Ctrl-C lands in the main thread between any two bytecodes, e.g. just after a
        # sendmsg returned and before its count was recorded: a frame cut there cannot be
        # completed. With ``interruptible`` the main thread's writes run in a helper thread
        # (started on the first write) and the main thread only waits for them. (Writing
        # in the main thread with SIGINT held back by a swapped handler was measured
        # slower: two signal.signal calls cost more than the hand-off, bench/results/wire.md.)
        self.interruptible = interruptible
        self._jobs: queue.SimpleQueue | None = None
        self._job: _SendJob | None = None
        self._closed = False
        self.peer = peer
        self.timeout = timeout
        self.chunk = chunk
        bps = parse_rate(rate) if isinstance(rate, str) else rate
        self.pacer = Pacer(bps) if bps else None
        self._scratch = bytearray(_SCRATCH)
        self._scratch_view = memoryview(self._scratch)
        self.bytes_sent = 0
        self.bytes_received = 0
        # What is left of a write that was interrupted (Ctrl-C, a timeout): the exact bytes
        # still owed by a frame cut short, or None when it is unknown (TLS, pacing).
        self._rest: list[memoryview] | None = []

    @property
    def mid_frame(self) -> bool:
        """True when a write stopped (or is still going) part-way through a frame."""
        if self._job is not None and not self._job.done.is_set():
            return True
        return self._rest is None or bool(self._rest)

    def finish_frame(self, timeout: float) -> bool:
        """Write what an interrupted write left of its frame, so the stream can go on (an ERROR, say).

        False when that is impossible (unknown remainder, or the write fails again).
        """
        job = self._job
        if job is not None and not job.done.wait(timeout):
            return False  # the helper thread is still stuck in the write
        if self._rest is None:
            return False
        if not self._rest:
            return True
        rest, self._rest = self._rest, []
        try:
            self.send(rest, timeout)
        except (TransportError, OSError):
            return False
        return not self.mid_frame

    def send(self, buffers: Sequence[Buffer], timeout: float | None = None) -> None:
        """Write all buffers (one frame or more), pacing when a rate is set.

        Without a rate, ``timeout`` (default: the transport's) bounds the whole
        write: a peer reading a byte at a time cannot hold the sender longer.
        With a rate it bounds each chunk (the emulated link itself takes time).
        """
        if self.interruptible and threading.current_thread() is threading.main_thread():
            self._send_via_helper(buffers, timeout)
        else:
            self._send_now(buffers, timeout)

    def _send_via_helper(self, buffers: Sequence[Buffer], timeout: float | None) -> None:
        if self._closed:
            raise TransportError(f"cannot send to {self.peer}: the connection is closed", self.peer)
        if self.mid_frame:
            raise TransportError(f"cannot send to {self.peer}: an earlier write stopped mid-frame", self.peer)
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=_send_jobs, args=(self, self._jobs), name="wire-send", daemon=True).start()
        job = self._job = _SendJob(buffers, timeout)
        self._jobs.put(job)
        job.done.wait()  # a lock wait: Ctrl-C interrupts it, the helper finishes the frame
        if job.error is not None:
            raise job.error

    def _send_now(self, buffers: Sequence[Buffer], timeout: float | None) -> None:
        if self._rest is None or self._rest:  # (the helper's own job is not "an earlier write")
            raise TransportError(f"cannot send to {self.peer}: an earlier write stopped mid-frame", self.peer)
        views = [memoryview(b) for b in buffers if len(b)]
        limit = self.timeout if timeout is None else timeout
        self.sock.settimeout(limit)
        exact = self.pacer is None and _HAS_SENDMSG and hasattr(self.sock, "sendmsg") and not _is_tls(self.sock)
        self._rest = views if exact else None  # _send_views trims it as bytes leave
        try:
            if self.pacer is None:
                self._send_views(views, time.monotonic() + limit)
            else:
                self.pacer.start()
                for group in _chunks(views, self.chunk):
                    self.pacer.wait(sum(len(v) for v in group))
                    self._send_views(group, time.monotonic() + limit)
            self._rest = []
        except TimeoutError:
            raise TransportError(f"timed out after {limit:g} s sending to {self.peer}", self.peer,
                                 "timeout") from None
        except OSError as e:
            raise TransportError(f"sending to {self.peer} failed: {e}", self.peer) from e

    def _send_views(self, views: list[memoryview], deadline: float) -> None:
        if not _HAS_SENDMSG or not hasattr(self.sock, "sendmsg") or _is_tls(self.sock):
            # TLS (an SSLSocket, or a TLSStream side) has no sendmsg: one write per piece.
            # An SSLSocket writes a whole piece in one SSL_write (CPython enables no partial
            # writes), bounded as a whole by the timeout that _settle gives it, so a piece is
            # a whole buffer. A TLSStream gives each of its 256 KB writes the full timeout:
            # pieces of that size keep the deadline, checked between them, nearly exact.
            piece = _TLS_STREAM_PIECE if not isinstance(self.sock, ssl.SSLSocket) else None
            for v in _tls_pieces(views, piece):
                _settle(self.sock, deadline)
                self.sock.sendall(v)
                self.bytes_sent += len(v)
            return
        # ``views`` is trimmed in place as bytes leave: after an interruption it holds the rest.
        while views:
            _settle(self.sock, deadline)
            sent = self.sock.sendmsg(views[:_IOV_MAX])
            self.bytes_sent += sent
            _consume(views, sent)

    def receive(self, rx: Receiver, timeout: float | None = None, waiting_for: str = "data",
                frame_timeout: float | None = None) -> Event:
        """Read until ``rx`` yields an event (a frame, or CLOSED after a clean end).

        ``timeout`` bounds the whole wait for the event, not each read: a peer
        trickling a byte at a time is cut off when it runs out. With
        ``frame_timeout``, a frame once begun must be whole within that time
        (``rx`` tells with its ``mid_frame`` property). Raises
        TransportError on a timeout (``waiting_for`` names what was awaited),
        a reset, or a close mid-frame, and ProtocolError (message prefixed
        with the peer) on bad bytes.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        framed = frame_timeout is None  # True once the frame deadline is set (or when there is none)
        eof = False
        while True:
            try:
                ev = rx.next_event()
                if ev is not NEED_DATA:
                    return ev
                if not framed and getattr(rx, "mid_frame", False):
                    # A frame has begun: the rest of it must come within frame_timeout.
                    framed = True
                    if time.monotonic() + frame_timeout < deadline:
                        deadline, limit = time.monotonic() + frame_timeout, frame_timeout
                        waiting_for = f"the rest of a frame ({waiting_for})"
                n = self._recv_some(rx, limit, waiting_for, deadline)
            except ProtocolError as e:
                if eof:
                    raise TransportError(f"{self.peer} closed the connection: {e}", self.peer) from e
                raise ProtocolError(f"from {self.peer}: {e}", e.code) from e
            if n == 0:
                eof = True
                rx.feed_eof()

    def _recv_some(self, rx: Receiver, limit: float, waiting_for: str, deadline: float) -> int:
        """One recv: straight into the destination when it is big, else via scratch."""
        try:
            _settle(self.sock, deadline)
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
                f"timed out after {limit:g} s waiting for {waiting_for} from {self.peer}", self.peer, "timeout"
            ) from None
        except OSError as e:
            raise TransportError(f"receiving from {self.peer} failed: {e}", self.peer) from e
        self.bytes_received += n
        return n

    def linger_close(self, timeout: float) -> None:
        """Close after the peer has had our last frame: shut our sending side, then read
        and drop what the peer still sends until it closes or ``timeout`` passes.

        Closing a socket that holds unread data (ACKs the peer sent meanwhile) makes
        the kernel answer with RST, and the peer's reads may then lose our final ERROR
        frame and see only "connection reset". Plain TCP only; TLS just closes.
        """
        if not self._closed and type(self.sock) is socket.socket:
            try:
                self.sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    self.sock.settimeout(left)
                    if not self.sock.recv(65536):
                        break  # the peer closed too
            except OSError:
                pass  # reset, timed out or already gone: nothing more to wait for
        self.close()

    def close(self) -> None:
        """Close the socket (idempotent); the send helper thread, if any, ends."""
        self._closed = True
        if self._jobs is not None:
            self._jobs.put(None)
        try:
            self.sock.close()
        except OSError:
            pass


class _Done:
    """A one-shot "finished" flag on a bare lock: the per-frame hand-off to the helper
    thread and back costs less than with ``threading.Event`` (a Condition and a new
    lock per wait). The lock is held until :meth:`set`; a wait on it is interruptible."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        self._set = True  # first: the flag, not the lock, is what "set" means (see wait)
        self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if ``timeout`` passed first."""
        # Ctrl-C raised right after the acquire succeeded (a SIGINT caught by another thread
        # is handled when the main thread wakes) leaves the lock held: the flag still says
        # "set", so the frame is known to be whole and an ERROR can follow it.
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            self._lock.release()  # stays "set" for every later wait
            return True
        return self._set


class _SendJob:
    """One write handed to a Transport's helper thread."""

    __slots__ = ("buffers", "timeout", "done", "error")

    def __init__(self, buffers: Sequence[Buffer], timeout: float | None) -> None:
        self.buffers = buffers
        self.timeout = timeout
        self.done = _Done()
        self.error: BaseException | None = None


def _send_jobs(transport: Transport, jobs: queue.SimpleQueue) -> None:
    """The helper thread of an interruptible Transport: its writes, one after another."""
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            transport._send_now(job.buffers, job.timeout)
        except BaseException as e:  # handed to the waiting caller
            job.error = e
        finally:
            job.done.set()


