"""Frames the compute thread writes itself (plain TCP, writer idle), and what it leaves to the writer.

The server skips the hand-off to a session's writer thread when the kernel
takes a whole frame at once (session.Session._post). These tests pin down
the cases where it cannot: a RESULT bigger than the socket buffers is begun
directly and finished by the writer, byte for byte and in order, and a peer
that stops reading never holds the compute thread (another client is served
meanwhile).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import tinycaffe
from tinycaffe.serve import session as session_mod
from tinycaffe.wire import Hello, SinkSession, specs, wanted

from .helpers import SHAPE, ServerThread, batches, expected, run_client, slow
from .helpers import hello as small_hello

BIG = (1, 2 * 1024 * 1024)  # 8 MB of float32: more than loopback's socket buffers take before the peer reads

ECHO = f"""
layer {{ name: "src" type: "Source" top: "x" source_param {{ port: 0 bind: "127.0.0.1" return_top: "r" }}
  input_param {{ shape {{ dim: [{BIG[0]}, {BIG[1]}] }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "x" top: "r" }}
"""


def big_hello() -> Hello:
    return Hello("sink", "edge", specs([("x", "float32", BIG)]), returns=wanted(["r"]))


@pytest.fixture
def spied(monkeypatch):
    """Every direct write: (bytes written, bytes left for the writer)."""
    calls: list[tuple[int, int]] = []
    real = session_mod.send_nowait

    def spy(sock, buffers):
        sent, rest = real(sock, buffers)
        calls.append((sent, sum(len(v) for v in rest)))
        return sent, rest

    monkeypatch.setattr(session_mod, "send_nowait", spy)
    return calls


def test_small_frames_go_out_directly_and_arrive_intact(spied):
    with ServerThread(keep_serving=True) as st:
        xs = batches(5, seed=11)
        got = run_client(st.port, xs)
    for x, y in zip(xs, got):
        np.testing.assert_array_equal(y, expected(x))
    # HELLO, then ACK + RESULT per batch, then BYE: all small, all written whole by their maker.
    assert len(spied) >= 1 + 2 * 5 + 1
    assert all(left == 0 for _, left in spied)


def test_a_result_too_big_for_the_socket_is_finished_by_the_writer_in_order(spied):
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(BIG).astype(np.float32) for _ in range(3)]
    with (ServerThread(tinycaffe.Net(ECHO, seed=1), keep_serving=True, frame_timeout=slow(30)) as st,
          SinkSession.connect("127.0.0.1", st.port, big_hello(), timeout=slow(30), connect_timeout=slow(10),
                              ack_timeout=slow(30)) as s):
        for x in xs:
            s.send({"x": x})
            time.sleep(0.2)  # not reading yet: the socket buffers fill, the writer takes the rest
            np.testing.assert_array_equal(s.result(slow(30)).blobs["r"], np.maximum(x, 0))
    partial = [(sent, left) for sent, left in spied if left]
    assert partial, f"no direct write was cut short: {spied}"


def test_a_peer_that_stops_reading_never_holds_the_compute_thread():
    """Client A sends one batch and never reads its 8 MB answer; client B is served meanwhile."""
    with ServerThread(tinycaffe.Net(ECHO, seed=1), keep_serving=True, frame_timeout=slow(60)) as st:
        a = SinkSession.connect("127.0.0.1", st.port, big_hello(), timeout=slow(30), connect_timeout=slow(10))
        try:
            a.send({"x": np.ones(BIG, np.float32)})
            deadline = time.monotonic() + slow(10)
            while st.server.batches < 1 and time.monotonic() < deadline:
                time.sleep(0.01)  # A's batch is computed and its RESULT is stuck in the writer
            assert st.server.batches == 1
            done = threading.Event()
            out: list = []

            def b() -> None:
                with SinkSession.connect("127.0.0.1", st.port, big_hello(), timeout=slow(30),
                                         connect_timeout=slow(10), ack_timeout=slow(30)) as s:
                    for k in range(2):
                        x = np.full(BIG, k - 0.5, np.float32)
                        s.send({"x": x})
                        out.append(np.array_equal(s.result(slow(30)).blobs["r"], np.maximum(x, 0)))
                done.set()

            threading.Thread(target=b, daemon=True).start()
            # Well before A's writer gives up (frame_timeout 60 s): the compute thread was free.
            assert done.wait(slow(30)), "client B was not served while client A did not read"
            assert out == [True, True]
        finally:
            a.transport.close()


class _Bytes:
    """A stand-in for Metrics that keeps the byte counts (the other hooks do nothing)."""

    def __init__(self) -> None:
        self.sent = self.received = 0
        self.lock = threading.Lock()

    def add_bytes(self, received: int, sent: int) -> None:
        with self.lock:
            self.received += received
            self.sent += sent

    def count(self, what: str, kind: str = "") -> None:
        pass

    def forward_time(self, seconds: float, queue_depth: int, clients: int) -> None:
        pass


@pytest.mark.parametrize("big", [False, True], ids=["small frames", "results cut short"])
def test_bytes_sent_are_counted_once_whichever_thread_writes_them(big):
    counts = _Bytes()
    net = tinycaffe.Net(ECHO, seed=1) if big else None
    with ServerThread(net, keep_serving=True, frame_timeout=slow(30)) as st:
        st.server.metrics = counts  # (the CLI passes it to the constructor; sessions take it when they start)
        rng = np.random.default_rng(8)
        with SinkSession.connect("127.0.0.1", st.port, big_hello() if big else small_hello(), timeout=slow(30),
                                 connect_timeout=slow(10), ack_timeout=slow(30)) as s:
            for _ in range(3):
                s.send({"x": rng.standard_normal(BIG if big else SHAPE).astype(np.float32)})
                if big:
                    time.sleep(0.2)  # let the socket buffers fill: the writer finishes the RESULT
                s.result(slow(30))
        got = s.transport.bytes_received  # HELLO, 3 x (ACK + RESULT), BYE
        deadline = time.monotonic() + slow(10)
        while counts.sent != got and time.monotonic() < deadline:
            time.sleep(0.01)  # the server counts its BYE just after writing it
        assert counts.sent == got
