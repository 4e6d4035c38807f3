"""Counted, rate-limited log lines for refused peers.

A hostile or broken peer must not be able to flood the server's stderr: each
kind of refusal is counted always, printed at most once per ``interval``
seconds, with the number suppressed since the last line.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import TextIO


class RefusalLog:
    """Counts refusals by kind; prints a line per kind at most every ``interval`` seconds."""

    def __init__(self, interval: float = 10.0, stream: TextIO | None = None) -> None:
        self.interval = interval
        self.stream = stream
        self.counts: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()
        self._lock = threading.Lock()

    def refuse(self, kind: str, peer: str, reason: str) -> None:
        """Record one refusal of ``kind`` (e.g. "token") from ``peer``."""
        now = time.monotonic()
        with self._lock:
            self.counts[kind] += 1
            if now - self._last.get(kind, -1e18) < self.interval:
                self._quiet[kind] += 1
                return
            self._last[kind] = now
            hidden, self._quiet[kind] = self._quiet[kind], 0
        more = f" (+{hidden} more since the last such line)" if hidden else ""
        print(f"tinycaffe serve: refused {peer} ({kind}): {reason}{more}",
              file=self.stream or sys.stderr, flush=True)
