"""Holding Ctrl-C back while the main thread writes a frame straight to a socket.

The server's compute loop runs in the main thread, where Python raises
KeyboardInterrupt, at any bytecode boundary, right after a system call
returns. A frame written part-way, or written with its byte count lost, would
leave the stream at an unknown place, and the server could then not tell that
client why it stopped (its ERROR frame would land mid-frame). Inside
:class:`HeldInterrupt` a SIGINT is only recorded; it is delivered, to the
handler that was there before, once the write and its bookkeeping are done.
"""
from __future__ import annotations

import signal
import threading


class HeldInterrupt:
    """``with HeldInterrupt():`` defers SIGINT to the end of the block, in the main thread.

    In any other thread (where Python never raises KeyboardInterrupt), or when
    SIGINT's handler is not a Python callable (ignored, default), it does nothing.
    """

    __slots__ = ("_previous", "_caught")

    def __enter__(self) -> HeldInterrupt:
        self._previous = None
        self._caught = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                signal.signal(signal.SIGINT, self._hold)
                self._previous = previous
        return self

    def _hold(self, signum, frame) -> None:
        self._caught = (signum, frame)

    def __exit__(self, *exc: object) -> None:
        previous = self._previous
        if previous is None:
            return
        self._previous = None
        signal.signal(signal.SIGINT, previous)
        if self._caught is not None:
            caught, self._caught = self._caught, None
            previous(*caught)  # Python's default handler raises KeyboardInterrupt here
