"""A client session that survives a server restart: reconnect with backoff, resend what is unanswered.

:class:`ResilientSink` has the :class:`~tinycaffe.wire.session.SinkSession`
API (``send``, ``result``, ``flush``, ``close``, ``fail``). It keeps a copy
of every batch until it is done -- answered by a RESULT when the source
returns blobs, else ACKed (taken in) -- and numbers batches itself, so that
after a reconnect the batches not yet done are sent again, in order, and
each result reaches the caller exactly once and in order (``last_id``).

It reconnects when the connection closed or was reset, nobody listened, or
the server said BUSY or SHUTDOWN -- for at most ``retry_for`` seconds per
outage, with a doubling backoff. A refusal (wrong net, wrong token, bad
certificate) or a timeout is not retried: it is raised at once. After
:meth:`fail` (this side gave up: Ctrl-C, a failed net) nothing is retried,
not even by a thread already waiting to reconnect.

A batch the old server took in (ACKed) without returning blobs is done for
the client; if that server is killed before computing it, its score is lost
with it (a server stopped by SIGTERM first answers what it took in).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

import numpy as np

from tinycaffe.errors import WireError
from tinycaffe.wire.errors import ErrorCode, PeerError, TransportError
from tinycaffe.wire.frames import ResultFrame
from tinycaffe.wire.hello import Hello
from tinycaffe.wire.session import SinkSession

RETRY_CODES = frozenset({ErrorCode.BUSY, ErrorCode.SHUTDOWN})
# How long fail() waits for another thread's send (a Sink's background sender) to end
# before it writes its ERROR; past that it closes without one.
FAIL_WAIT = 3.0


def retriable(exc: BaseException) -> bool:
    """True for failures a reconnect may cure (see module doc)."""
    if isinstance(exc, TransportError):
        return exc.kind in ("closed", "refused")
    if isinstance(exc, PeerError):
        return exc.code in RETRY_CODES
    return False


class ResilientSink:
    """Reconnecting client session; ``connect(timeout)`` returns a fresh, handshaken SinkSession."""

    def __init__(
        self,
        connect: Callable[[float], SinkSession],
        *,
        returns: bool,
        retry_for: float = 30.0,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self.returns = returns
        self.retry_for = retry_for
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock
        self.session: SinkSession | None = None
        self.pending: deque[tuple[int, dict[str, np.ndarray]]] = deque()  # (batch id, copy) not yet done
        self._sent = 0  # pending[:_sent] went out on the current connection
        self._next_id = 0
        self.last_id: int | None = None  # batch id of the last result handed out
        self.reconnects = 0
        # Set by fail(), possibly from another thread than the one sending (a Sink's
        # background sender): its send then fails on the closed socket and must not
        # reconnect and resend batches of a run the user stopped.
        self.failed = False
        # Held while a thread sends or waits on the connection; fail() takes it before writing
        # its ERROR, so that the ERROR never interleaves with a frame another thread is writing.
        # Reentrant: Ctrl-C may leave it held by the very thread that then calls fail().
        self._io = threading.RLock()

    # ---- the SinkSession API -----------------------------------------------------------

    def open(self, connect_timeout: float) -> None:
        """The first connection (retrying refusals up to ``connect_timeout``, as SinkSession.connect does)."""
        self.session = self._connect(connect_timeout)

    @property
    def peer(self) -> Hello:
        assert self.session is not None
        return self.session.peer

    @property
    def transport(self):
        assert self.session is not None
        return self.session.transport

    def send(self, blobs: Mapping[str, np.ndarray]) -> int:
        """Queue one batch (copied, to resend if need be) and send it; returns its batch id."""
        bid = self._next_id
        self._next_id += 1
        self.pending.append((bid, {n: np.array(a, copy=True) for n, a in blobs.items()}))
        self._retrying(self._send_unsent)
        return bid

    def result(self, timeout: float | None = None) -> ResultFrame:
        """The next batch's RESULT (its batch id in ``last_id``), whatever reconnects it took."""

        def op() -> ResultFrame:
            self._send_unsent()
            assert self.session is not None
            frame = self.session.result(timeout)
            self.last_id, _ = self.pending.popleft()
            self._sent -= 1
            return frame

        return self._retrying(op)

    def flush(self) -> None:
        """Wait until every batch is ACKed (resending after a reconnect)."""

        def op() -> None:
            self._send_unsent()
            assert self.session is not None
            self.session.flush()
            self._drop_acked()

        self._retrying(op)

    def close(self, timeout: float | None = None) -> None:
        """Finish: every batch done, then BYE."""

        def op() -> None:
            self._send_unsent()
            assert self.session is not None
            self.session.close(timeout)

        self._retrying(op)

    def fail(self, message: str, code: int = ErrorCode.APPLICATION, wait: float = FAIL_WAIT) -> None:
        """Give up: ERROR to the server (best effort), close, and never reconnect.

        If another thread is still sending after ``wait`` seconds, the connection is
        closed without the ERROR (two writers would garble the stream).
        """
        self.failed = True
        if self.session is None:
            return
        if self._io.acquire(timeout=wait):
            try:
                self.session.fail(message, code)
            finally:
                self._io.release()
        else:
            self.session.transport.close()

    # ---- the machinery ------------------------------------------------------------------

    def _send_unsent(self) -> None:
        assert self.session is not None
        while self._sent < len(self.pending):
            self.session.send(self.pending[self._sent][1])
            self._sent += 1
            self._drop_acked()

    def _drop_acked(self) -> None:
        """Without returned blobs, a batch is done once ACKed."""
        if self.returns or self.session is None:
            return
        done = self._sent - self.session.endpoint.in_flight
        for _ in range(done):
            self.pending.popleft()
        self._sent -= done

    def _retrying(self, op: Callable):
        with self._io:
            if self.failed:  # a sender thread's next batch after fail(): nothing more goes out
                raise TransportError("the client stopped this connection", self.peer_address, "local")
            return self._retrying_locked(op)

    @property
    def peer_address(self) -> str:
        return self.session.peer_address if self.session is not None else "?"

    def _retrying_locked(self, op: Callable):
        deadline: float | None = None
        while True:
            try:
                return op()
            except WireError as exc:
                if not retriable(exc) or self.failed:
                    raise
                if deadline is None:
                    deadline = self._clock() + self.retry_for
                self._reconnect(deadline, exc)

    def _reconnect(self, deadline: float, cause: WireError) -> None:
        if self.session is not None:
            self.session.transport.close()
        delay = self.backoff
        attempts = 0
        while True:
            if self.failed:
                raise cause
            left = deadline - self._clock()
            if left <= 0:
                raise type(cause)(f"{cause} (gave up after {attempts} reconnect attempts in {self.retry_for:g} s, "
                                  f"{len(self.pending)} batches unanswered)",
                                  *_extra(cause)) from None
            self._sleep(min(delay, left))
            if self.failed:
                raise cause
            delay = min(delay * 2, self.max_backoff)
            attempts += 1
            try:
                session = self._connect(max(0.05, min(left, 1.0)))
            except WireError as exc:
                if not retriable(exc):
                    raise
                continue
            if self.failed:  # gave up while this connection was being made
                session.fail("the client stopped")
                raise cause
            self.session = session
            self._sent = 0
            self.reconnects += 1
            return


def _extra(exc: WireError) -> tuple:
    if isinstance(exc, TransportError):
        return (exc.peer, exc.kind)
    if isinstance(exc, PeerError):
        return (exc.code, exc.reason)
    return ()
