"""Emulated link bandwidth: rate strings and a sender-side pacer.

The pacer releases each chunk when its last byte would have crossed a link
of the given rate. Due times are absolute (computed from the previous due
time, not from when the previous sleep happened to end), so sleep jitter does
not add up over a transfer: n bytes take n/rate seconds plus one jitter.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

from tinycaffe.errors import WireError

_RATE = re.compile(r"^\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z/]+)\s*$")
_DECIMAL = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY = {"ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}
_BITS = ("bps", "b/s", "bit/s", "bits/s")
_BYTES = ("Bps", "B/s", "byte/s", "bytes/s")


def parse_rate(text: str) -> float:
    """Bytes per second of a rate such as "10Mbps", "500kbps", "1Gbps", "12.5MB/s", "8MiB/s".

    Lower-case ``b`` means bits and upper-case ``B`` bytes; SI prefixes are
    powers of 1000 (either case), ``Ki``/``Mi``/``Gi`` powers of 1024.
    """
    m = _RATE.match(text) if isinstance(text, str) else None
    if m is None:
        raise WireError(f"bad rate {text!r}: expected a number and a unit, e.g. '10Mbps' or '12.5MB/s'")
    number = float(m.group(1))  # a huge exponent gives inf, refused below
    unit = m.group(2)
    for base, per_unit in [(u, 0.125) for u in _BITS] + [(u, 1.0) for u in _BYTES]:
        if unit.endswith(base):
            prefix = unit[: -len(base)].lower()
            scale = _DECIMAL.get(prefix) or _BINARY.get(prefix)
            if scale is not None:
                rate = number * scale * per_unit
                if not (math.isfinite(rate) and rate > 0):
                    raise WireError(f"bad rate {text!r}: must be positive and finite")
                return rate
    raise WireError(f"bad rate {text!r}: unknown unit {unit!r} (use bps, kbps, Mbps, Gbps, B/s, kB/s, MB/s, GB/s)")


class Pacer:
    """Token-bucket pacing of a byte stream at ``rate`` bytes per second.

    Call :meth:`start` when a burst of sends begins (one frame, say), then
    :meth:`wait` with each chunk's size just before sending it. Within a
    burst each due time follows the previous one exactly, so a late wake-up
    (scheduler, overshooting sleep) is caught up by the next chunk instead of
    adding up; a new burst gets no credit for the time the link sat idle.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise WireError(f"pacing rate must be positive and finite, got {rate!r}")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._free_at = -math.inf  # when the emulated link finishes its last chunk

    def start(self) -> None:
        """A burst begins now: the link is busy until its previous chunk is through, or free now."""
        self._free_at = max(self._free_at, self._clock())

    def wait(self, nbytes: int) -> float:
        """Sleep until a chunk of ``nbytes`` would have fully crossed the link; returns that due time."""
        if self._free_at == -math.inf:
            self.start()
        due = self._free_at + nbytes / self.rate
        self._free_at = due
        while True:
            left = due - self._clock()
            if left <= 0:
                return due
            self._sleep(left)
