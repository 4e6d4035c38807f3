"""Over loopback TCP: sessions, refusals, timeouts, broken peers, pacing.

Every socket has a timeout of at most a few seconds and every thread is
joined with a bound, so a failing test fails instead of hanging.
"""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from tinycaffe.wire import (
    Decoder,
    ErrorCode,
    ErrorFrame,
    Hello,
    PeerError,
    ProtocolError,
    SinkSession,
    SourceServer,
    TransportError,
    connect,
    encode_data,
    encode_hello,
    join,
    specs,
)

from .wire_helpers import Worker, drain

X = np.random.default_rng(1).standard_normal((4, 8, 16, 16), dtype=np.float32)
PROB = np.zeros((4, 10), np.float32)
T = 3.0  # per-operation timeout in these tests


def hellos(window=1, wire="float32", returns=True, source_shape=X.shape):
    ret = specs({"prob": PROB}) if returns else ()
    return (
        Hello("sink", "edge_cut", specs({"pool1": X}), returns=ret, window=window, wire=wire),
        Hello("source", "cloud_in", specs([("pool1", "float32", source_shape)]), returns=ret, window=window,
              wire="any"),
    )


def raw_client(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=T)


def read_until_eof(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    out = b""
    while len(out) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def test_session_round_trip_with_results_and_targets():
    hk, hs = hellos(window=2, wire="float16")
    server = SourceServer(hs, timeout=T)

    def serve():
        with server.accept() as s:
            s.targets = {"pool1": np.empty_like(X)}
            n = 0
            while (f := s.receive()) is not None:
                s.send_result(f.seq, {"prob": PROB + float(f.blobs["pool1"].sum())})
                n += 1
            return n

    w = Worker(serve)
    with SinkSession.connect(*server.address, hk, timeout=T) as sink:
        assert sink.peer.layer == "cloud_in"
        seqs = [sink.send({"pool1": X * i}) for i in range(5)]
        for i, seq in enumerate(seqs):
            r = sink.result()
            assert r.ref == seq
            want = float((X * i).astype(np.float16).astype(np.float32).sum())
            assert r.blobs["prob"][0, 0] == pytest.approx(want, rel=1e-5)
    assert w.result() == 5
    server.close()


def test_connect_refused_retries_then_fails_clearly():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    t0 = time.monotonic()
    with pytest.raises(TransportError) as info:
        connect("127.0.0.1", port, timeout=0.5, connect_timeout=1.0, backoff=0.05)
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "attempts" in msg
    assert int(msg.split(": ")[1].split(" attempts")[0]) > 2  # it did retry
    assert 0.9 <= elapsed < 3.0


def test_accept_times_out():
    _, hs = hellos()
    with SourceServer(hs, timeout=T) as server:
        with pytest.raises(TransportError, match="no connection"):
            server.accept(timeout=0.2)


def test_source_closing_mid_frame_names_the_peer():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(T)
    port = listener.getsockname()[1]
    hk, hs = hellos()

    def half_hello():
        conn, _ = listener.accept()
        conn.settimeout(T)
        conn.recv(65536)
        conn.sendall(join(encode_hello(0, hs))[:20])
        conn.close()

    w = Worker(half_hello)
    with pytest.raises(TransportError) as info:
        SinkSession.connect("127.0.0.1", port, hk, timeout=T)
    w.result()
    listener.close()
    assert f"127.0.0.1:{port}" in str(info.value) and "mid-frame" in str(info.value)


def test_sink_closing_mid_frame_names_the_peer():
    hk, hs = hellos(returns=False)
    server = SourceServer(hs, timeout=T)

    def serve():
        s = server.accept()
        return s.receive()

    w = Worker(serve)
    c = raw_client(server.address[1])
    here = f"127.0.0.1:{c.getsockname()[1]}"
    c.sendall(join(encode_hello(0, hk)))
    dec = Decoder()
    while not drain(dec):  # the source's HELLO
        dec.feed(c.recv(65536))
    c.sendall(join(encode_data(1, {"pool1": X}))[:1000])
    c.close()
    with pytest.raises(TransportError) as info:
        w.result()
    server.close()
    assert here in str(info.value) and "mid-frame" in str(info.value)
    assert "DATA frame seq 1" in str(info.value)


def test_bad_magic_is_answered_with_an_error_frame():
    _, hs = hellos()
    server = SourceServer(hs, timeout=T)
    w = Worker(server.accept)
    c = raw_client(server.address[1])
    here = f"127.0.0.1:{c.getsockname()[1]}"
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = read_until_eof(c)
    c.close()
    with pytest.raises(ProtocolError) as info:
        w.result()
    server.close()
    assert "bad magic" in str(info.value) and here in str(info.value)
    dec = Decoder()
    dec.feed(reply)
    (ev,) = drain(dec)
    assert isinstance(ev, ErrorFrame) and ev.code == ErrorCode.PROTOCOL and "bad magic" in ev.message


def test_ack_timeout_names_the_peer():
    hk, hs = hellos(returns=False)
    server = SourceServer(hs, timeout=T)
    stop = threading.Event()

    def silent():
        s = server.accept()  # HELLOs are exchanged, then DATA is never read
        stop.wait(T)
        s.transport.close()

    w = Worker(silent)
    sink = SinkSession.connect(*server.address, hk, timeout=T, ack_timeout=0.3)
    sink.send({"pool1": X})
    t0 = time.monotonic()
    with pytest.raises(TransportError) as info:
        sink.send({"pool1": X})  # window 1: needs the ACK of the first
    elapsed = time.monotonic() - t0
    stop.set()
    w.result()
    server.close()
    msg = str(info.value)
    assert "ACK of DATA seq 1" in msg and f"127.0.0.1:{server.address[1]}" in msg
    assert 0.25 <= elapsed < 2.0
    assert sink.endpoint.in_flight == 1  # the second frame, encoded before the wait, never went out


def test_hello_mismatch_over_tcp():
    hk, hs = hellos(source_shape=(4, 8, 8, 8))
    server = SourceServer(hs, timeout=T)
    w = Worker(server.accept)
    with pytest.raises(PeerError) as info:
        SinkSession.connect(*server.address, hk, timeout=T)
    with pytest.raises(ProtocolError, match="HELLO mismatch"):
        w.result()
    server.close()
    msg = str(info.value)
    assert info.value.code == ErrorCode.MISMATCH
    assert "(4, 8, 16, 16)" in msg and "(4, 8, 8, 8)" in msg and "cloud_in" in msg and "edge_cut" in msg


def test_source_failure_reaches_the_sink():
    hk, hs = hellos()
    server = SourceServer(hs, timeout=T)

    def serve():
        s = server.accept()
        s.receive()
        s.fail("cloud net raised: out of memory")

    w = Worker(serve)
    sink = SinkSession.connect(*server.address, hk, timeout=T)
    sink.send({"pool1": X})
    with pytest.raises(PeerError, match="out of memory") as info:
        sink.result()
    assert info.value.code == ErrorCode.APPLICATION
    w.result()
    server.close()


def test_source_vanishing_is_a_transport_error():
    hk, hs = hellos(returns=False)
    server = SourceServer(hs, timeout=T)
    w = Worker(lambda: server.accept().transport.close())
    sink = SinkSession.connect(*server.address, hk, timeout=T)
    w.result()
    with pytest.raises(TransportError, match="without BYE"):
        sink.send({"pool1": X})
        sink.flush()
    server.close()


def test_paced_transfer_takes_size_over_rate():
    blob = np.zeros(125_000 // 4, np.float32)  # 125 kB at 10 Mbps: 0.1 s
    hk = Hello("sink", "a", specs({"x": blob}))
    hs = Hello("source", "b", specs({"x": blob}))
    server = SourceServer(hs, timeout=T)
    w = Worker(lambda: [None for _ in iter(server.accept().receive, None)])
    sink = SinkSession.connect(*server.address, hk, timeout=T, rate="10Mbps")
    frame = sum(len(b) for b in encode_data(1, {"x": blob}))
    t0 = time.perf_counter()
    sink.send({"x": blob})
    sink.flush()
    elapsed = time.perf_counter() - t0
    sink.close()
    w.result()
    server.close()
    expected = frame / 1.25e6
    assert expected <= elapsed < expected + 0.25  # never faster; slack above for a busy machine


def test_a_frame_cut_by_ctrl_c_is_completed_before_the_error_frame():
    """Ctrl-C in the middle of a send: the peer must see the whole frame, then ERROR (not garbage)."""
    from tinycaffe.wire import Endpoint, ErrorFrame, Transport
    from tinycaffe.wire.frames import HelloFrame

    a, b = socket.socketpair()

    class CutOnce:
        """A socket whose second sendmsg is interrupted (as a signal during a blocking send does)."""

        family = socket.AF_UNIX

        def __init__(self, sock):
            self.sock, self.calls = sock, 0

        def settimeout(self, t):
            self.sock.settimeout(t)

        def sendmsg(self, views):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.sock.sendmsg([bytes(views[0][:1000])])  # a partial write

        def close(self):
            self.sock.close()

    hk, hs = hellos(returns=False)
    sink = Endpoint(hk)
    t = Transport(CutOnce(a), "peer", timeout=T)
    hello_bytes = join(sink.send_hello())  # the handshake happens in memory; the socket carries the rest
    source = Endpoint(hs)
    source.feed(hello_bytes)
    assert isinstance(source.next_event(), HelloFrame)
    sink.feed(join(source.send_hello()))
    sink.next_event()
    _, bufs = sink.send_data({"pool1": X})
    with pytest.raises(KeyboardInterrupt):
        t.send(bufs)
    assert t.mid_frame
    t.sock = a  # the rest goes out through the real socket
    assert t.finish_frame(T)
    t.send(sink.send_error(ErrorCode.APPLICATION, "client net stopped"))
    a.close()
    got = read_until_eof(b)
    b.close()
    source.feed(got)
    events = [source.next_event(), source.next_event()]
    assert events[0].blobs["pool1"].shape == X.shape
    np.testing.assert_array_equal(events[0].blobs["pool1"], X)
    assert isinstance(events[1], ErrorFrame) and "stopped" in events[1].message


def test_send_nowait_writes_what_the_kernel_takes_and_returns_the_rest_in_order():
    """A peer that does not read: send_nowait returns at once with the rest; the bytes, once
    read, are the frame's in order (what the kernel took, then the rest written normally)."""
    from tinycaffe.wire.transport import send_nowait

    a, b = socket.socketpair()
    try:
        payload = np.arange(4 * 1024 * 1024, dtype=np.uint32)  # 16 MB: far more than the socket buffers
        head = b"HEAD" * 5
        sent, rest = send_nowait(a, [head, payload.data])
        total = len(head) + payload.nbytes
        assert 0 < sent < total and sum(len(v) for v in rest) == total - sent
        got = bytearray()

        def read_all() -> None:
            while len(got) < total:
                chunk = b.recv(1 << 20)
                if not chunk:
                    return
                got.extend(chunk)

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        a.settimeout(30)
        for v in rest:
            a.sendall(v)
        reader.join(30)
        assert bytes(got) == head + payload.tobytes()
    finally:
        a.close()
        b.close()


def test_send_nowait_on_a_closed_connection_raises_oserror():
    from tinycaffe.wire.transport import send_nowait

    a, b = socket.socketpair()
    b.close()
    try:
        with pytest.raises(OSError):
            for _ in range(4):  # the first write may still be accepted by the kernel
                send_nowait(a, [b"x" * 65536])
    finally:
        a.close()
