"""A client of the server: one session per Source of the net, batches paired across them.

Most nets have one Source, so a client is one connection. A net cut along
several links (the study's one Source per crossing blob) has a client
connect once per Source; a batch is complete when each of its sessions has
delivered one DATA frame, and the client has ended when all said BYE.
"""
from __future__ import annotations

import threading
from collections import deque

from ..wire.frames import DataFrame
from .session import Session

END = object()  # every link of a client said BYE and was answered: the client is done
FAILED = object()  # a client failed: report it


class ByeOne:
    """Session ``index`` has said BYE and its last batch is taken: answer its BYE."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class Peer:
    """One client: ``sessions[i]`` is its connection to the net's i-th Source."""

    def __init__(self, number: int, sessions: list[Session | None]) -> None:
        self.number = number
        self.sessions = sessions
        self.batches = 0
        self.failed = False
        self.error: BaseException | None = None
        self.scores = None  # for whoever reports (the CLI keeps its Scores here)
        self._heads: list[deque] = [deque() for _ in sessions]
        self._byes = [False] * len(sessions)
        self._lock = threading.Lock()
        for i, s in enumerate(sessions):
            if s is not None:
                self.join(i, s)

    def join(self, index: int, session: Session) -> None:
        """``session`` is this client's link to Source ``index``."""
        self.sessions[index] = session
        session.tag = self

    @property
    def complete(self) -> bool:
        """True once every Source has its session."""
        return all(s is not None for s in self.sessions)

    @property
    def window(self) -> int:
        """Batches this client may have in flight (its negotiated window)."""
        return min((s.endpoint.window for s in self.sessions if s is not None), default=1)

    @property
    def name(self) -> str:
        """The client's address(es)."""
        return "+".join(s.peer for s in self.sessions if s is not None) or f"client {self.number}"

    def push(self, index: int, frame: DataFrame | None) -> list:
        """A DATA frame (or None for BYE) from session ``index``: the work it makes ready, in order.

        The list holds units (one frame per session, a list), ``ByeOne(i)``
        once session i's last frame is in a unit (its BYE can be answered
        now, whatever the other links do), and END when every session said
        BYE. Raises ValueError when a link ended while another still sends.
        """
        out: list = []
        with self._lock:
            if frame is None:
                if self._heads[index]:
                    self._heads[index].append(None)  # after its frames still waiting for partners
                else:
                    self._byes[index] = True
                    out.append(ByeOne(index))
            else:
                self._heads[index].append(frame)
            while all(h and h[0] is not None for h in self._heads):
                out.append([h.popleft() for h in self._heads])
                for i, h in enumerate(self._heads):
                    if h and h[0] is None:
                        h.popleft()
                        self._byes[i] = True
                        out.append(ByeOne(i))
            if any(self._byes) and any(h and h[0] is not None for h in self._heads):
                raise ValueError("one link said BYE while another still sent a batch: "
                                 "the client's Sinks must end together")
            if all(self._byes):
                out.append(END)
        return out

    def fail(self, error: BaseException | None, code: int, message: str) -> bool:
        """Mark failed and tell every session; False if it had failed already."""
        with self._lock:
            if self.failed:
                return False
            self.failed = True
            if error is not None:
                # Keep the message, not the frames: a traceback would tie this client to its sessions.
                error.__context__ = None
                error = error.with_traceback(None)
            self.error = error
        for s in self.sessions:
            if s is not None:
                s.fail(code, message)
        return True
