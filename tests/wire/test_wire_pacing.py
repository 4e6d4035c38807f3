"""Rate strings and the pacer (fake clock: no sleeping in these tests)."""
from __future__ import annotations

import pytest

from tinycaffe.errors import WireError
from tinycaffe.wire import Pacer, parse_rate


@pytest.mark.parametrize(
    "text, bytes_per_s",
    [
        ("10Mbps", 1.25e6),
        ("500kbps", 62_500),
        ("1Gbps", 1.25e8),
        ("12.5MB/s", 12.5e6),
        ("8 MiB/s", 8 * 2**20),
        ("100B/s", 100),
        ("64 Kbps", 8000),
        ("2e3kbps", 250_000),
        ("10mbps", 1.25e6),
        ("1.5 Gbit/s", 1.875e8),
        ("3MBps", 3e6),
    ],
)
def test_parse_rate(text, bytes_per_s):
    assert parse_rate(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text", ["", "10", "fast", "-5Mbps", "0Mbps", "10 furlongs", "Mbps", "1e999Mbps", "10Xbps"])
def test_parse_rate_refuses_nonsense(text):
    with pytest.raises(WireError, match="bad rate"):
        parse_rate(text)


class FakeTime:
    """A clock that sleep() advances, optionally oversleeping like a busy OS."""

    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = 100.0
        self.overshoot = overshoot

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s + self.overshoot


def send(p: Pacer, n: int, chunk: int = 65536) -> None:
    p.start()
    while n:
        c = min(chunk, n)
        p.wait(c)
        n -= c


def test_n_bytes_take_n_over_rate():
    t = FakeTime()
    p = Pacer(1.25e6, clock=t.clock, sleep=t.sleep)
    send(p, 3_276_877)
    assert t.now - 100.0 == pytest.approx(3_276_877 / 1.25e6, rel=1e-9)


def test_late_wakeups_do_not_add_up():
    t = FakeTime(overshoot=0.004)  # every sleep ends 4 ms late
    p = Pacer(1.25e6, clock=t.clock, sleep=t.sleep)
    send(p, 3_276_877)
    # Only the last wake-up's lateness remains (the tiny last chunk rides on it).
    assert 3_276_877 / 1.25e6 < t.now - 100.0 <= 3_276_877 / 1.25e6 + 0.004 + 1e-9


@pytest.mark.parametrize("idle", [5.0, 0.001, 0.0])
def test_idle_link_gives_no_burst_credit(idle):
    t = FakeTime()
    p = Pacer(1e6, clock=t.clock, sleep=t.sleep)
    send(p, 100_000)
    t.now += idle
    start = t.now
    send(p, 100_000)
    assert t.now - start == pytest.approx(0.1)


def test_back_to_back_bursts_queue_behind_each_other():
    t = FakeTime()
    p = Pacer(1e6, clock=t.clock, sleep=t.sleep)
    p.start()
    p.wait(50_000)  # due at +0.05 s...
    t.now -= 0.05  # ...pretend we did not sleep: the link is still busy
    send(p, 50_000)
    assert t.now - 100.0 == pytest.approx(0.1)


def test_bad_pacer_rate():
    with pytest.raises(WireError):
        Pacer(0)
