"""One client connection on the server: its own threads, deadlines and memory.

A :class:`Session` owns one socket. Its reader thread does the (TLS and)
HELLO handshake within ``handshake_timeout`` in all, then reads DATA frames
and hands each to the server; its writer thread sends what the compute
thread queued (ACKs, RESULTs, BYE, ERROR). Over plain TCP, a frame that the
kernel takes whole at once while the writer is idle (an ACK, a small RESULT:
the usual case) is written by the thread that made it, without waking the
writer (two thread hand-offs per batch less); whatever would have to wait
goes to the writer. Nothing the compute thread does
ever waits on this peer's socket, and this peer's slowness or silence only
costs its own threads: a frame, once begun, must arrive within
``frame_timeout``, and a silent client is dropped after ``idle_timeout``.

Memory: before the HELLO is accepted the decoder takes at most a small
control frame; afterwards, frames up to the size of the blobs the client
declared, at most ``window`` of them queued. Everything goes when the
session ends (the server drops its reference).
"""
from __future__ import annotations

import queue
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import WireError
from ..wire.endpoint import Endpoint
from ..wire.errors import ErrorCode, LocalProtocolError, PeerError, ProtocolError, TransportError
from ..wire.frames import CLOSED, ByeFrame, DataFrame, ErrorFrame, HelloFrame
from ..wire.hello import Hello
from ..wire.transport import Transport, send_nowait, tls_accept
from .held_interrupt import HeldInterrupt

_STOP = object()
_LINGER = 0.5  # seconds to read a refused peer's last bytes, so it sees our ERROR rather than a reset


def _cut_endpoint() -> type:
    from .cuts import CutEndpoint

    return CutEndpoint


def refuse(sock: socket.socket, code: int, message: str, endpoint: Endpoint | None = None) -> None:
    """Send one ERROR frame on a connection we will not serve, then close it gently.

    Used for a client beyond ``--max-clients``: it is told at once, before
    anything is read from it or allocated for it.
    """
    ep = endpoint or Endpoint(Hello("source", "server", ()))
    try:
        sock.settimeout(_LINGER)
        sock.sendall(b"".join(bytes(b) for b in ep.send_error(code, message)))
        sock.shutdown(socket.SHUT_WR)
        # Read (and drop) what the peer already sent, so closing does not reset the
        # connection before it reads our ERROR.
        for _ in range(16):
            if not sock.recv(4096):
                break
    except (OSError, LocalProtocolError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


class Session:
    """One connection: handshake, then DATA in and ACK/RESULT out, on two threads.

    ``on_ready(session)`` is called once the HELLO is accepted; it returns
    False to refuse the client (the server is full). ``on_data(session, frame)``
    gets each DATA frame, ``on_end(session, error)`` is called exactly once
    when the connection is over (error None after a clean BYE).
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        hello: Hello,
        *,
        token: bytes | None,
        tls: ssl.SSLContext | None,
        handshake_timeout: float,
        frame_timeout: float,
        idle_timeout: float,
        on_ready: Callable[[Session], bool],
        on_data: Callable[[Session, DataFrame], None],
        on_end: Callable[[Session, BaseException | None], None],
        on_refused: Callable[[Session, str, BaseException], None],
        on_bytes: Callable[[int, int], None] = lambda received, sent: None,
        port: int = 0,
        resolve: Callable[[Hello], Hello] | None = None,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.port = port
        if resolve is None:
            self.endpoint = Endpoint(hello, token=token)
        else:  # serve --any-cut: a HELLO naming a cut gets that cut's Source HELLO
            from .cuts import CutEndpoint

            self.endpoint = CutEndpoint(hello, token=token, resolve=resolve)
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self._on_ready, self._on_data, self._on_end, self._on_refused = on_ready, on_data, on_end, on_refused
        self._on_bytes = on_bytes
        self._rx_counted = 0
        self.transport: Transport | None = None  # reads (the reader thread)
        self._out: Transport | None = None  # writes (the writer thread)
        self._extra: list[socket.socket] = []  # the writer's duplicate socket
        self.ready = False
        self.failed = False
        self.batches = 0
        self.tag: Any = None  # for the server's bookkeeping (e.g. the client this session belongs to)
        self._send_lock = threading.Lock()  # endpoint sends + queue order
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()  # (a C queue: cheaper per frame than queue.Queue)
        # Direct writes (see _post): the writer's socket when it is plain TCP, and, under
        # _wlock, how many frames the writer has taken on and not finished (0: it is idle).
        self._direct: socket.socket | None = None
        self._wlock = threading.Lock()
        self._queued = 0
        self._stop_queued = False
        self._ended = threading.Event()
        self._end_lock = threading.Lock()
        self._ended_reported = False
        # What ended the connection as the reader saw it (a peer's ERROR, a reset): reported
        # in preference to what it then caused in the other threads (a write failing on the
        # socket the reader shut, an ACK refused on the failed endpoint).
        self._cause: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name=f"serve-read-{peer}", daemon=True)
        self._writer = threading.Thread(target=self._write, name=f"serve-write-{peer}", daemon=True)

    # ---- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the reader (handshake first); the writer starts once the HELLO is accepted."""
        self._reader.start()

    @property
    def hello(self) -> Hello:
        """The client's HELLO (after the handshake)."""
        assert self.endpoint.peer is not None
        return self.endpoint.peer

    def join(self, timeout: float) -> bool:
        """Wait for both threads; True when they are done."""
        self._reader.join(timeout)
        if self._writer.is_alive():
            self._writer.join(timeout)
        return not self._reader.is_alive() and not self._writer.is_alive()

    @property
    def done(self) -> bool:
        return self._ended.is_set()

    # ---- reader thread ------------------------------------------------------------

    def _handshake(self) -> None:
        # ACK and RESULT go out back to back: Nagle would hold the RESULT for the peer's delayed ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The reader and the writer each get their own socket object (same connection), so
        # that each keeps its own timeout; TLS state is shared safely by a TLSStream.
        if self.tls is not None:
            stream = tls_accept(self.sock, self.tls, self.peer, self.handshake_timeout)
            self._extra = [stream.raw_send]
            rsock, wsock = stream.reader, stream.writer
        else:
            wsock = self.sock.dup()
            self._extra = [wsock]
            rsock = self.sock
            if hasattr(wsock, "sendmsg"):
                self._direct = wsock
        self.transport = Transport(rsock, self.peer, timeout=self.frame_timeout)
        self._out = Transport(wsock, self.peer, timeout=self.frame_timeout)
        ev = self.transport.receive(self.endpoint, self.handshake_timeout, "the client's HELLO")
        if isinstance(ev, ErrorFrame):
            raise PeerError(f"{self.peer} sent ERROR {ev.code}: {ev.message}", ev.code, ev.message)
        if not isinstance(ev, HelloFrame):
            raise ProtocolError(f"expected HELLO, got {ev!r}")
        if ev.hello.cut and not isinstance(self.endpoint, _cut_endpoint()):
            raise ProtocolError(f"the client asks for the cut after layer {ev.hello.cut!r:.80}, but this server "
                                "serves one cut only (start it with --any-cut)", ErrorCode.MISMATCH)

    def _read(self) -> None:
        try:
            self._handshake()
        except ProtocolError as e:
            self._on_refused(self, "auth" if e.code == ErrorCode.AUTH else "hello", e)  # counted before the peer hears
            self._refuse_now(e.code, str(e))
            self._finish(e, report=False)
            return
        except (WireError, OSError) as e:
            self._close_socket()
            self._on_refused(self, "handshake", e)
            self._finish(e, report=False)
            return
        if not self._on_ready(self):
            self._refuse_now(ErrorCode.BUSY, "server busy: too many clients, try again later")
            self._finish(None, report=False)
            return
        self.ready = True
        self._writer.start()
        self.send(self.endpoint.send_hello)
        try:
            while True:
                ev = self.transport.receive(self.endpoint, self.idle_timeout, "the next DATA or BYE",
                                            frame_timeout=self.frame_timeout)
                if isinstance(ev, DataFrame):
                    self.batches += 1
                    self._on_bytes(self.transport.bytes_received - self._rx_counted, 0)
                    self._rx_counted = self.transport.bytes_received
                    self._on_data(self, ev)
                elif isinstance(ev, ByeFrame):
                    self._on_data(self, None)  # the server answers BYE after the client's last batch
                    return
                elif isinstance(ev, ErrorFrame):
                    raise PeerError(f"{self.peer} stopped with ERROR {ev.code}: {ev.message}", ev.code, ev.message)
                elif ev is CLOSED:
                    raise TransportError(f"{self.peer} closed the connection", self.peer)
        except ProtocolError as e:
            self._cause = e
            self.fail(e.code, str(e))
            self._finish(e)
        except (WireError, OSError) as e:
            self._cause = e
            self._finish(e)
            self._close_socket()

    def _refuse_now(self, code: int, message: str) -> None:
        try:
            bufs = self.endpoint.send_error(code, message)
        except LocalProtocolError:
            self._close_socket()
            return
        if self._out is not None:
            try:
                self._out.send(bufs, timeout=_LINGER)
                # Let the peer read the ERROR: closing with its bytes unread would reset the connection.
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.settimeout(_LINGER)
                for _ in range(16):
                    if not self.sock.recv(4096):
                        break
            except (WireError, OSError):
                pass
        self._close_socket()

    # ---- called by the compute thread ----------------------------------------------

    def send(self, make: Callable[..., list], *args: Any) -> bool:
        """Queue the frame ``make(*args)`` builds (an Endpoint method); False once the session failed."""
        if self.failed:
            return False
        with self._send_lock:
            if self.failed:
                return False
            try:
                bufs = make(*args)
            except LocalProtocolError as e:
                self.failed = True
                self._stop_writer()
                if not self.endpoint.failed:
                    self._finish(e)
                # else the reader has just seen the connection fail (the peer's ERROR, say) and
                # reports that: "cannot send ACK" would hide why.
                return False
            return self._post(bufs)

    def _post(self, bufs: list) -> bool:
        """Write ``bufs`` now if the writer is idle and the kernel takes them without
        waiting; queue for the writer whatever is left (in order: nothing is in the
        writer's hands when this writes). False when the connection broke."""
        broken: BaseException | None = None
        with self._wlock:
            if self._queued == 0 and self._direct is not None and not self._stop_queued:
                # Ctrl-C waits until the write is counted and its rest queued (the compute
                # loop runs in the main thread): the stream never stops at an unknown place.
                with HeldInterrupt():
                    try:
                        sent, bufs = send_nowait(self._direct, bufs)
                    except OSError as e:
                        sent, broken = 0, TransportError(f"sending to {self.peer} failed: {e}", self.peer)
                    except BaseException:
                        # Anything else between a write and its count: where the frame
                        # stopped is unknown, so nothing more may go on this stream.
                        self.failed = True
                        self._stop_writer_locked()
                        raise
                    if sent:
                        assert self._out is not None
                        self._out.bytes_sent += sent
                        self._on_bytes(0, sent)
                    if broken is None and bufs:
                        self._queue_locked(bufs)  # the rest, for the writer, in order
                if broken is None:
                    return True
            else:
                self._queue_locked(bufs)
                return True
            self.failed = True
            self._stop_writer_locked()
        self._finish(broken)
        return False

    def _queue_locked(self, bufs) -> None:
        """Hand ``bufs`` to the writer (under _wlock): no direct write until it has sent them."""
        self._queued += 1
        self._outbox.put(bufs)

    def _stop_writer(self) -> None:
        """The writer ends after what is queued (or at once if never started); no direct writes from now on."""
        with self._wlock:
            self._stop_writer_locked()

    def _stop_writer_locked(self) -> None:
        self._stop_queued = True
        self._outbox.put(_STOP)

    def ack(self, seq: int) -> bool:
        """ACK DATA frame ``seq`` (the compute thread took it in)."""
        return self.send(self.endpoint.send_ack, seq)

    def result(self, seq: int, blobs: Mapping[str, np.ndarray]) -> bool:
        """Answer DATA frame ``seq``; ``blobs`` must not change until sent (pass copies)."""
        return self.send(self.endpoint.send_result, seq, blobs)

    def bye(self) -> None:
        """The client's last batch is answered: say BYE and close when it is written."""
        if self.send(self.endpoint.send_bye):
            self._stop_writer()
            self._finish(None)

    def fail(self, code: int, message: str) -> None:
        """Send ERROR (best effort) and close."""
        if self.failed:
            return
        with self._send_lock:
            self.failed = True
            try:
                bufs = self.endpoint.send_error(code, message)
            except LocalProtocolError:
                bufs = None
            with self._wlock:  # (no direct write runs now: they hold both locks)
                if bufs is not None:
                    self._queue_locked(bufs)
                self._stop_writer_locked()
        if not self.ready:
            self._close_socket()

    # ---- writer thread ---------------------------------------------------------------

    def _write(self) -> None:
        assert self._out is not None
        try:
            while True:
                item = self._outbox.get()
                if item is _STOP:
                    return
                before = self._out.bytes_sent
                self._out.send(item, timeout=self.frame_timeout)
                self._on_bytes(0, self._out.bytes_sent - before)
                with self._wlock:
                    self._queued -= 1  # at 0 the writer is idle: direct writes may go again
        except WireError as e:
            self.failed = True
            self._finish(e)
        finally:
            self._close_socket()

    # ---- ending ------------------------------------------------------------------------

    def _close_socket(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes both threads, whichever socket object they wait on
        except OSError:
            pass
        # Under _wlock: a direct write must never run on a closed (and maybe reused) descriptor.
        with self._wlock:
            for sock in [self.sock, *self._extra]:
                try:
                    sock.close()
                except OSError:
                    pass

    def _finish(self, error: BaseException | None, report: bool = True) -> None:
        with self._end_lock:
            if self._ended_reported:
                return
            self._ended_reported = True
        if error is not None:
            self.failed = True
            if self._cause is not None:
                error = self._cause
        self._stop_writer()  # the writer ends after what is queued (or at once if never started)
        self._ended.set()
        if report:
            self._on_end(self, error)
