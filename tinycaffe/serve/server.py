"""The cloud server: it owns the connections; the net is a pure function of its inputs.

:class:`Server` listens on the port of each Source of the net, gives every
connection its own :class:`~tinycaffe.serve.session.Session` (two threads),
and runs the net in one compute thread (the caller's, in :meth:`run`): for
each batch, ACK as it is taken in, ``net.forward(**blobs)``, then the
``return_top`` blobs go back as a RESULT. Every client is its own session
with its own HELLO, shapes, window and returned blobs.

Why threads per connection rather than a selector loop: the transport is
blocking (``recv_into`` straight into arrays, TLS through ``ssl`` without the
want-read/want-write dance), the GIL is released in every socket call, and
the client count is bounded by ``max_clients``; each peer's deadlines then
live in its own thread, so a slow or silent peer holds only its own slot.
The compute thread never waits on a socket: it queues outgoing frames for the
session's writer, or writes one itself when the writer is idle and the kernel
takes the whole frame at once (see :mod:`tinycaffe.serve.session`).

With ``ServeOptions.any_cut`` the net is the whole net behind one Source and
a client's HELLO may name its cut: its batches then run through that cut's
cloud half (:mod:`tinycaffe.serve.cuts`), so a client can move its cut by
reconnecting (:mod:`tinycaffe.plan.recut`).

Admission: a connection beyond ``max_clients`` (or beyond as many again
still in their handshake) gets an ERROR frame (code BUSY) at once. A
connection that does not complete TLS and a matching HELLO (with the token,
when one is set) within ``handshake_timeout`` is refused; before that the
server holds for it only a socket, a thread and a small control-frame buffer.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import WireError
from ..wire.errors import ErrorCode
from ..wire.frames import DataFrame
from ..wire.hello import Hello
from ..wire.transport import listen, peer_name
from .batcher import Batcher
from .inputs import InputPort, declare_inputs
from .log import RefusalLog
from .options import ServeOptions
from .peer import END, FAILED, ByeOne, Peer
from .session import Session, refuse
from .tls import is_loopback

_POLL = 0.1  # how often blocking waits look at the stop flags
_MAX_REFUSERS = 32


class Server:
    """Serve ``net`` (a built Net whose Sources declare its inputs) to many clients.

    ``on_batch(peer, outputs, loss)`` and ``on_end(peer, error)`` are called
    in the thread that runs :meth:`run`, in order. Use as a context manager
    or call :meth:`close`.
    """

    def __init__(
        self,
        net,
        options: ServeOptions | None = None,
        *,
        on_batch: Callable[[Peer, dict, float], None] | None = None,
        on_start: Callable[[Peer], None] | None = None,
        on_end: Callable[[Peer, BaseException | None], None] | None = None,
        log: RefusalLog | None = None,
        metrics: Any = None,
    ) -> None:
        self.net = net
        self.options = options or ServeOptions()
        self.options.check()
        self.ports: list[InputPort] = declare_inputs(net)
        self.on_batch, self.on_start, self.on_end = on_batch, on_start, on_end
        self.log = log or RefusalLog()
        self.metrics = metrics
        for p in self.ports:
            if not is_loopback(p.bind) and self.options.tls is None and not self.options.insecure:
                where = p.bind or "every interface"
                raise WireError(
                    f"source layer '{p.layer}' would listen on {where}:{p.port} without TLS: anyone on the "
                    "network could feed the net and read its answers. Give --tls-cert (and a token), "
                    "or --insecure to do it anyway"
                )
        # Over TLS, whose records carry their own MAC, a payload checksum only costs time
        # (measured: bench/wire_throughput.py --tls); a client may still ask for one.
        self._hellos = [p.hello(checksum=self.options.tls is None) for p in self.ports]
        self.cuts = None
        if self.options.any_cut:
            from .cuts import CutCache

            self.cuts = CutCache(net, self.ports[0])  # checks: one Source
        self.batcher = Batcher(self, self.options.max_batch, self.options.max_delay)  # checks the net first
        self._listeners: list[socket.socket] = []
        try:
            for p in self.ports:
                self._listeners.append(listen(p.bind or "0.0.0.0", p.port, backlog=self.options.backlog))
        except BaseException:
            self._close_listeners()
            raise
        #: (host, port) actually bound, one per Source.
        self.addresses = [s.getsockname()[:2] for s in self._listeners]
        self._lock = threading.Lock()
        # One hand-off per client batch (reader -> compute thread): a C queue, cheaper than queue.Queue.
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._handshaking: dict[Session, float] = {}
        self._active: set[Session] = set()
        self._forming: list[Peer] = []  # clients of a multi-Source net still missing a link
        self._peers: set[Peer] = set()
        self._numbers = 0
        self._refusers = 0
        self._accepting = True
        self._stopping = False
        self._draining = False
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self.batches = 0
        self.clients_ok = 0
        self.clients_failed = 0

    # ---- starting and stopping -------------------------------------------------------

    def start(self) -> None:
        """Start accepting (one thread per port) and the handshake watchdog."""
        for i, sock in enumerate(self._listeners):
            t = threading.Thread(target=self._accept_loop, args=(i, sock), name=f"serve-accept-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._watchdog, name="serve-watchdog", daemon=True)
        t.start()
        self._threads.append(t)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(abort=exc_type is not None)

    def stop_accepting(self) -> None:
        """No new clients; those connected go on."""
        self._accepting = False
        self._close_listeners()

    def finish_run(self) -> None:
        """Stop accepting; :meth:`run` returns once the clients connected now have ended."""
        self.stop_accepting()
        self._stopping = True

    def drain(self) -> None:
        """Stop accepting; answer every batch already received, then tell the clients the server stops.

        Safe to call from a signal handler (it only sets flags).
        """
        self._accepting = False
        self._stopping = True
        self._draining = True

    def close(self, abort: bool = False, reason: str = "the server stopped") -> None:
        """Stop everything; connected clients get an ERROR (code SHUTDOWN) saying ``reason``."""
        self._closed.set()
        self.stop_accepting()
        with self._lock:
            sessions = list(self._active) + list(self._handshaking)
        # An aborted server (Ctrl-C, a failure) ends its clients' runs; a clean stop
        # (SHUTDOWN) lets them reconnect to a server that takes over.
        code = ErrorCode.APPLICATION if abort else ErrorCode.SHUTDOWN
        for s in sessions:
            s.fail(code, reason)
        for s in sessions:
            s.join(1.0)
        for t in self._threads:
            t.join(1.0)

    def _close_listeners(self) -> None:
        for sock in self._listeners:
            try:
                sock.close()
            except OSError:
                pass

    @property
    def drained(self) -> bool:
        """True once :meth:`drain` was called (e.g. on SIGTERM)."""
        return self._draining

    def sessions(self) -> list[Session]:
        """The connections served now (HELLO accepted)."""
        with self._lock:
            return list(self._active)

    def in_flight_capacity(self) -> int:
        """How many batches the connected clients may have sent and not seen answered (their windows)."""
        with self._lock:
            return sum(p.window for p in self._peers)

    @property
    def clients(self) -> int:
        """Clients connected now (HELLO accepted)."""
        with self._lock:
            return len(self._peers)

    # ---- accepting -----------------------------------------------------------------------

    def _accept_loop(self, index: int, listener: socket.socket) -> None:
        listener.settimeout(_POLL)
        while self._accepting and not self._closed.is_set():
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            peer = peer_name(addr)
            with self._lock:
                busy = (len(self._active) >= self.options.max_clients * len(self.ports)
                        or len(self._handshaking) >= self.options.max_clients)
            if busy or not self._accepting:
                self.log.refuse("busy", peer, f"{self.options.max_clients} clients already")
                self._count("refused", "busy")
                self._refuse(sock, ErrorCode.BUSY, "server busy: too many clients, try again later")
                continue
            session = Session(
                sock, peer, self._hellos[index],
                token=self.options.token, tls=self.options.tls,
                handshake_timeout=self.options.handshake_timeout,
                frame_timeout=self.options.frame_timeout,
                idle_timeout=self.options.idle_timeout,
                on_ready=self._admit, on_data=self._on_data, on_end=self._on_session_end,
                on_refused=self._on_refused, port=index,
                on_bytes=self.metrics.add_bytes if self.metrics is not None else (lambda received, sent: None),
                resolve=self._cut_hello if self.cuts is not None else None,
            )
            with self._lock:
                self._handshaking[session] = time.monotonic()
            session.start()
            del session, sock  # this loop must not keep a finished client alive until the next accept

    def _refuse(self, sock: socket.socket, code: int, message: str) -> None:
        """Tell a connection beyond the limits why, in a short-lived thread (a few at most)."""
        with self._lock:
            if self._refusers >= _MAX_REFUSERS:
                sock.close()
                return
            self._refusers += 1

        def run() -> None:
            try:
                refuse(sock, code, message)
            finally:
                with self._lock:
                    self._refusers -= 1

        threading.Thread(target=run, name="serve-refuse", daemon=True).start()

    def _watchdog(self) -> None:
        """Cut connections whose TLS + HELLO handshake overruns its deadline in all."""
        limit = self.options.handshake_timeout
        while not self._closed.wait(_POLL):
            now = time.monotonic()
            with self._lock:
                late = [s for s, t0 in self._handshaking.items() if now - t0 > limit + _POLL]
            for s in late:
                s._close_socket()  # the reader's recv fails at once and refuses the peer

    def _cut_hello(self, client: Hello) -> Hello:
        """The Source HELLO of the cut a client names (its half built on first use); --any-cut only."""
        return self.cuts.get(client.cut).port.hello(checksum=self.options.tls is None)

    def _net_of(self, peer: Peer) -> tuple[Any, InputPort]:
        """The net a client's batches run through and its input port: a cut's half or the served net."""
        session = peer.sessions[0]
        if self.cuts is not None and session is not None and session.hello.cut:
            served = self.cuts.get(session.hello.cut)
            return served.net, served.port
        return self.net, self.ports[0]

    def _on_refused(self, session: Session, kind: str, error: BaseException) -> None:
        with self._lock:
            self._handshaking.pop(session, None)
        self.log.refuse(kind, session.peer, str(error))
        self._count("refused", kind)

    def _admit(self, session: Session) -> bool:
        """The HELLO is accepted: give the client a slot, or refuse it (False)."""
        with self._lock:
            self._handshaking.pop(session, None)
            per_port = sum(1 for s in self._active if s.port == session.port)
            if not self._accepting or self._closed.is_set() or per_port >= self.options.max_clients:
                full = True
            else:
                full = False
                self._active.add(session)
                peer = next((p for p in self._forming if p.sessions[session.port] is None), None)
                if peer is None:
                    self._numbers += 1
                    peer = Peer(self._numbers, [None] * len(self.ports))
                    self._forming.append(peer)
                peer.join(session.port, session)
                if peer.complete:
                    self._forming.remove(peer)
                    self._peers.add(peer)
                    self._work.put((peer, None))  # "started", reported in order by run()
        if full:
            self.log.refuse("busy", session.peer, "no free client slot")
            self._count("refused", "busy")
        return not full

    def _on_data(self, session: Session, frame: DataFrame | None) -> None:
        peer: Peer | None = session.tag
        if peer is None:
            # The client already ended (its batch failed, say) and _end let go of it; this
            # session is closing, and a frame still in its reader has no one to go to.
            return
        try:
            ready = peer.push(session.port, frame)
        except ValueError as e:
            if peer.fail(e, ErrorCode.PROTOCOL, str(e)):
                self._work.put((peer, FAILED))
            return
        for item in ready:
            self._work.put((peer, item))

    def _on_session_end(self, session: Session, error: BaseException | None) -> None:
        with self._lock:
            self._active.discard(session)
            self._handshaking.pop(session, None)
        peer: Peer | None = session.tag
        if error is not None and peer is not None:
            if peer.fail(error, ErrorCode.APPLICATION, f"another link of this client failed: {error}"):
                self._work.put((peer, FAILED))

    # ---- computing -----------------------------------------------------------------------

    def run(self) -> None:
        """Serve until done (see ServeOptions.keep_serving and max_batches) or closed.

        Runs the net in the calling thread; a KeyboardInterrupt stops it (the
        caller then closes the server, telling the clients).
        """
        if not self._threads:
            self.start()
        while not self._closed.is_set():
            if self._draining:
                self._close_listeners()
                if self._work.empty():
                    self._shut_peers("the server is stopping (SIGTERM): resend unanswered batches")
            with self._lock:
                idle = not self._peers and not self._forming
            if self._stopping and idle and self._work.empty():
                return
            try:
                item = self._work.get(timeout=_POLL)
            except queue.Empty:
                continue
            self._handle(*item)
            del item  # an idle loop must not keep the last client (and its buffers) alive

    def _handle(self, peer: Peer, unit: Any) -> None:
        if unit is None:
            if self.on_start:
                self.on_start(peer)
            self._count("clients_total")
            return
        if unit is FAILED:
            self._end(peer, peer.error or WireError("client failed"))
            return
        if peer.failed:
            return  # its FAILED event follows
        if isinstance(unit, ByeOne):
            peer.sessions[unit.index].bye()  # its batches are all answered (they came first)
            return
        if unit is END:
            self._end(peer, None)
            return
        if self.options.max_batches and self.batches >= self.options.max_batches:
            why = f"the server stopped after {self.options.max_batches} batches (--iterations)"
            peer.fail(WireError(why), ErrorCode.SHUTDOWN, why)
            self._end(peer, peer.error)
            return
        self.batcher.run(peer, unit)

    def _shut_peers(self, why: str) -> None:
        with self._lock:
            peers = list(self._peers) + list(self._forming)
        for p in peers:
            if p.fail(WireError(why), ErrorCode.SHUTDOWN, why):
                self._work.put((p, FAILED))

    def forward_one(self, peer: Peer, frames: list[DataFrame]) -> None:
        """One client's batch through the net (the Batcher calls it, or gathers several)."""
        for s, f in zip(peer.sessions, frames):
            s.ack(f.seq)  # taken in: the client may compute its next batch meanwhile
        inputs: dict = {}
        for f in frames:
            inputs.update(f.blobs)
        net, ports = self.net, self.ports
        if self.cuts is not None:
            net, port = self._net_of(peer)
            ports = [port]
        t0 = time.perf_counter()
        outputs = net.forward(**inputs)
        self._observe(time.perf_counter() - t0)
        for port, s, f in zip(ports, peer.sessions, frames):
            if port.returns:
                s.result(f.seq, port.result_blobs(net))
        self.batch_done(peer, outputs, net.loss)

    def batch_done(self, peer: Peer, outputs: dict, loss: float) -> None:
        """Count one answered batch of ``peer`` and report it."""
        peer.batches += 1
        self.batches += 1
        self._count("batches")
        if self.on_batch:
            self.on_batch(peer, outputs, loss)
        if self.options.max_batches and self.batches >= self.options.max_batches:
            self.finish_run()  # clients that say BYE now end cleanly; a further batch is refused

    def _end(self, peer: Peer, error: BaseException | None) -> None:
        with self._lock:
            self._peers.discard(peer)
            if peer in self._forming:
                self._forming.remove(peer)
        for s in peer.sessions:
            if s is not None:
                s.tag = None  # no session <-> client cycle: both go when the last reference does
        if error is None:
            self.clients_ok += 1
        else:
            self.clients_failed += 1
        self._count("clients_ok" if error is None else "clients_failed")
        if self.on_end:
            self.on_end(peer, error)
        if not self.options.keep_serving:
            # One run: no new clients; those already in finish first.
            self.finish_run()

    # ---- metrics hooks -------------------------------------------------------------------

    def _count(self, what: str, kind: str = "") -> None:
        if self.metrics is not None:
            self.metrics.count(what, kind)

    def _observe(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.forward_time(seconds, self._work.qsize(), self.clients)
