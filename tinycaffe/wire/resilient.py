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
certificate) or a timeout is not retried: it is raised at once.

A batch the old server took in (ACKed) without returning blobs is done for
the client; if that server is killed before computing it, its score is lost
with it (a server stopped by SIGTERM first answers what it took in).
"""
from __future__ import annotations

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

    def fail(self, message: str, code: int = ErrorCode.APPLICATION) -> None:
        if self.session is not None:
            self.session.fail(message, code)

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
        deadline: float | None = None
        while True:
            try:
                return op()
            except WireError as exc:
                if not retriable(exc):
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
            left = deadline - self._clock()
            if left <= 0:
                raise type(cause)(f"{cause} (gave up after {attempts} reconnect attempts in {self.retry_for:g} s, "
                                  f"{len(self.pending)} batches unanswered)",
                                  *_extra(cause)) from None
            self._sleep(min(delay, left))
            delay = min(delay * 2, self.max_backoff)
            attempts += 1
            try:
                self.session = self._connect(max(0.05, min(left, 1.0)))
            except WireError as exc:
                if not retriable(exc):
                    raise
                continue
            self._sent = 0
            self.reconnects += 1
            return


def _extra(exc: WireError) -> tuple:
    if isinstance(exc, TransportError):
        return (exc.peer, exc.kind)
    if isinstance(exc, PeerError):
        return (exc.code, exc.reason)
    return ()
