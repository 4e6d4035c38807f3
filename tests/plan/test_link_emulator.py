"""bench/link_emulator.py: the pacing arithmetic by hand, and a relay that passes every byte both ways."""
from __future__ import annotations

import importlib.util
import socket
import threading

import numpy as np
import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("link_emulator", REPO / "bench" / "link_emulator.py")
link_emulator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(link_emulator)


def test_direction_serialises_then_adds_half_the_rtt():
    d = link_emulator.Direction(rate=1000.0, rtt=0.1)  # 1000 B/s, 100 ms round trip
    # 100 B at t=0 crosses until 0.1, delivered 0.05 later.
    assert d.due(100, 0.0) == pytest.approx(0.15)
    # 100 B at t=0.05 waits for the link (busy until 0.1): crosses 0.1 -> 0.2, delivered at 0.25.
    assert d.due(100, 0.05) == pytest.approx(0.25)
    # After the link sat idle: 50 B at t=1 crosses until 1.05, delivered at 1.1 (no credit for idling).
    assert d.due(50, 1.0) == pytest.approx(1.1)
    for rate, rtt in ((0.0, 0.0), (-1.0, 0.0), (float("inf"), 0.0), (1.0, -0.1)):
        with pytest.raises(ValueError):
            link_emulator.Direction(rate, rtt)


def _echo_server(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(30)
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            conn.sendall(data)


def test_relay_passes_every_byte_both_ways_and_the_end_of_stream():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    server = threading.Thread(target=_echo_server, args=(listener,), daemon=True)
    server.start()
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    with link_emulator.LinkEmulator(listener.getsockname()[1], rate=50e6, rtt=0.002) as link:
        assert "400 Mbit/s each way, rtt 2 ms" in link.describe()
        with socket.create_connection(("127.0.0.1", link.port), timeout=30) as c:
            sender = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)), daemon=True)
            sender.start()
            got = bytearray()
            while True:
                data = c.recv(1 << 16)
                if not data:  # the echo server closed after our end of stream: passed on both ways
                    break
                got += data
            sender.join(30)
        assert bytes(got) == payload
        assert link.connections == 1 and link.errors == []
    server.join(30)
    listener.close()
