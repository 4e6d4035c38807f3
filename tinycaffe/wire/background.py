"""Send batches from a background thread, so the client computes while the link carries.

With ``window > 1`` the Sink hands each batch to a ``BackgroundSender``: it
copies the blobs into one of ``window + 1`` preallocated buffer sets (the net
may overwrite its own arrays right away) and returns; the sender thread pushes
them through the session, which itself waits whenever ``window`` batches are
un-ACKed. A failure in the thread is raised by the next ``submit`` or ``close``.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Mapping

import numpy as np

from tinycaffe.wire.session import SinkSession

_STOP = object()


class BackgroundSender:
    """One thread that owns ``session`` for sending until ``close``."""

    def __init__(self, session: SinkSession, shapes: Mapping[str, tuple[int, ...]], window: int) -> None:
        self.session = session
        self._free: queue.Queue = queue.Queue()
        for _ in range(window + 1):
            self._free.put({n: np.empty(s, np.float32) for n, s in shapes.items()})
        self._todo: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sink-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            if item is _STOP:
                return
            try:
                if self._error is None:
                    self.session.send(item)
                    # send() returns once the bytes are in the kernel: the buffer is free again.
            except BaseException as exc:  # reported to the caller by submit/close
                self._error = exc
            finally:
                self._free.put(item)

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, blobs: Mapping[str, np.ndarray]) -> None:
        """Queue one batch (copied); blocks while ``window + 1`` batches are on their way."""
        self._raise_pending()
        while True:
            try:
                buffers = self._free.get(timeout=0.2)  # short waits keep Ctrl-C responsive
                break
            except queue.Empty:
                self._raise_pending()
        for name, array in blobs.items():
            np.copyto(buffers[name], array)
        self._todo.put(buffers)

    def close(self) -> None:
        """Wait until every queued batch has been sent; raise the thread's error, if any."""
        self._todo.put(_STOP)
        while self._thread.is_alive():
            self._thread.join(0.2)
        self._raise_pending()
