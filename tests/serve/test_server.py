"""The server owns the connections: many clients at once, each its own session and deadlines.

Issue 9's findings as tests that fail on the single-client Source of before:
a silent or trickling peer held the server, clients were served one after
another, a stray connection ended a one-run server, and there was no
refusal beyond a client limit.
"""
from __future__ import annotations

import gc
import socket
import threading
import time
import weakref

import numpy as np
import pytest

from tinycaffe.errors import NetError, WireError
from tinycaffe.serve import ServeOptions, Server
from tinycaffe.wire import ErrorCode, PeerError, SinkSession, TransportError, join
from tinycaffe.wire.endpoint import Endpoint

from .helpers import ServerThread, batches, cloud_net, expected, hello, run_client, slow


def run_clients(port: int, n: int, per_client: int, **kw):
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = run_client(port, batches(per_client, seed=i), **kw)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(slow(60))
    return results, errors


def test_many_clients_at_once_each_get_their_own_answers():
    with ServerThread(keep_serving=True, max_clients=8) as st:
        results, errors = run_clients(st.port, 8, 5)
        assert not errors, errors
        for i, got in results.items():
            for x, y in zip(batches(5, seed=i), got):
                np.testing.assert_array_equal(y, expected(x))
        deadline = time.monotonic() + slow(10)
        while st.server.clients_ok < 8 and time.monotonic() < deadline:
            time.sleep(0.02)  # the last client's end is counted just after its BYE went out
        assert st.server.clients_ok == 8 and st.server.batches == 40


def test_clients_overlap_in_time():
    """Twenty clients hold connections at the same moment (the old server took them one after another)."""
    with ServerThread(keep_serving=True, max_clients=20) as st:
        sessions = [SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
                    for _ in range(20)]  # every HELLO answered before any client sends a batch
        for s, x in zip(sessions, batches(20, seed=3)):
            s.send({"x": x})
        for s, x in zip(sessions, batches(20, seed=3)):
            np.testing.assert_array_equal(s.result(slow(10)).blobs["prob"], expected(x))
            s.close(slow(10))


def test_a_silent_peer_does_not_delay_a_real_client():
    with ServerThread(keep_serving=True, handshake_timeout=slow(60)) as st:
        silent = socket.create_connection(("127.0.0.1", st.port), timeout=slow(5))  # connects, says nothing
        try:
            got = run_client(st.port, batches(3, seed=1))
            assert len(got) == 3
            silent.setblocking(False)
            with pytest.raises(BlockingIOError):
                silent.recv(1)  # still connected and unanswered: it holds only its own slot
        finally:
            silent.close()


def test_a_hello_trickled_a_byte_at_a_time_is_dropped_at_the_handshake_deadline():
    """The deadline counts the whole exchange, not each receive (a byte every 0.2 s kept the old one waiting)."""
    with ServerThread(keep_serving=True, handshake_timeout=1.0) as st:
        data = join(Endpoint(hello()).send_hello())
        sent = 0
        with socket.create_connection(("127.0.0.1", st.port), timeout=slow(5)) as s:
            try:
                for b in data[:50]:
                    s.sendall(bytes([b]))
                    sent += 1
                    time.sleep(0.2)  # 50 bytes take 10 s; the deadline is 1 s
                    s.setblocking(False)
                    try:
                        if s.recv(4096) == b"":
                            break
                    except BlockingIOError:
                        pass
                    except OSError:
                        break
                    finally:
                        s.setblocking(True)
            except OSError:
                pass  # the server closed the connection under us
        assert sent < 50, "the server was still waiting after 10 s of a trickled HELLO"
        deadline = time.monotonic() + slow(5)
        while st.server.log.counts["handshake"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert st.server.log.counts["handshake"] == 1, st.log_text.getvalue()


def test_beyond_max_clients_a_client_is_refused_with_an_error_frame():
    with ServerThread(keep_serving=True, max_clients=2) as st:
        held = [SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
                for _ in range(2)]
        with pytest.raises(PeerError) as info:
            SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        assert info.value.code == ErrorCode.BUSY and "busy" in str(info.value)
        for s in held:
            s.close(slow(10))
        assert len(run_client(st.port, batches(1, seed=0))) == 1  # a slot is free again


def test_a_stray_connection_does_not_end_a_one_run_server():
    st = ServerThread(keep_serving=False)
    try:
        with socket.create_connection(("127.0.0.1", st.port), timeout=slow(5)) as stray:
            stray.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert stray.recv(4096)[:4] == b"TCF1"  # an ERROR frame: it is refused, not left hanging
        got = run_client(st.port, batches(2, seed=5))
        assert len(got) == 2
        st.thread.join(slow(20))
        assert not st.thread.is_alive()  # the run ended with the real client, not with the stray
        assert st.ended == {1: None} and st.server.log.counts["hello"] == 1
    finally:
        st.close()


def test_a_one_run_server_lets_the_clients_already_in_finish():
    st = ServerThread(keep_serving=False)
    try:
        first = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        second = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        first.close(slow(10))  # the run's first client ends: no new clients, but the second goes on
        for x in batches(3, seed=2):
            second.send({"x": x})
            np.testing.assert_array_equal(second.result(slow(10)).blobs["prob"], expected(x))
        second.close(slow(10))
        st.thread.join(slow(20))
        assert not st.thread.is_alive() and st.server.clients_ok == 2
    finally:
        st.close()


def test_a_session_is_freed_when_its_client_leaves():
    with ServerThread(keep_serving=True) as st:
        s = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        for x in batches(2, seed=1):
            s.send({"x": x})
            s.result(slow(10))
        sessions = st.server.sessions()
        assert len(sessions) == 1
        ref = weakref.ref(sessions[0])
        del sessions
        s.close(slow(10))
        deadline = time.monotonic() + slow(10)
        gc.disable()  # freed by reference counting alone: no cycle holds the session's buffers
        try:
            while ref() is not None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ref() is None
        finally:
            gc.enable()


def test_hostile_bytes_leave_no_memory_behind():
    """The finding: 40-byte messages pinned 256 MiB each; now each is refused at its header."""
    import struct
    import tracemalloc
    import zlib

    from tinycaffe.wire.blobs import PREFIX
    from tinycaffe.wire.header import DEFAULT_MAX_FRAME, FLAG_CRC, MAGIC, PROTOCOL_VERSION

    body = struct.pack("<4sBBHIQI", MAGIC, PROTOCOL_VERSION, 2, FLAG_CRC, 0, DEFAULT_MAX_FRAME, 0)
    attack = body + struct.pack("<I", zlib.crc32(body)) + PREFIX.pack(0, 1, DEFAULT_MAX_FRAME - 12)
    with ServerThread(keep_serving=True) as st:
        tracemalloc.start()
        try:
            for _ in range(10):
                with socket.create_connection(("127.0.0.1", st.port), timeout=slow(5)) as s:
                    s.sendall(attack)
                    assert s.recv(4096)[:4] == b"TCF1"  # refused with an ERROR frame
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, peak
        assert len(run_client(st.port, batches(1, seed=0))) == 1


def test_plain_tcp_on_every_interface_needs_tls_or_insecure():
    for bind in ("", "0.0.0.0"):
        with pytest.raises(WireError, match="without TLS"):
            Server(cloud_net(bind=bind), ServeOptions())


def test_a_net_without_source_cannot_be_served():
    import tinycaffe

    net = tinycaffe.Net('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: [1] } } }')
    with pytest.raises(NetError, match="no Source"):
        Server(net)


def test_iterations_stop_the_server_after_that_many_batches():
    st = ServerThread(keep_serving=True, max_batches=2)
    try:
        s = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        xs = batches(3, seed=4)
        for x in xs[:2]:
            s.send({"x": x})
            s.result(slow(10))
        with pytest.raises((PeerError, TransportError)):
            s.send({"x": xs[2]})
            s.result(slow(10))
        s.transport.close()
        st.thread.join(slow(20))
        assert not st.thread.is_alive() and st.server.batches == 2
    finally:
        st.close()


def test_the_public_client_infers_and_reports_the_servers_hello():
    from tinycaffe.serve.client import Client

    with ServerThread(keep_serving=True) as st:
        with Client("127.0.0.1", st.port, {"x": (4, 8)}, returns=["prob"], connect_timeout=slow(10)) as c:
            x = batches(1, seed=3)[0]
            np.testing.assert_array_equal(c.infer({"x": x})["prob"], expected(x))
            assert [(b.name, b.shape) for b in c.server.returns] == [("prob", (4, 3))]
            assert c.last_round_trip is not None


def test_a_frame_begun_and_stalled_is_dropped_at_the_frame_deadline():
    """A client may idle between batches, but a frame, once begun, has frame_timeout in all."""
    with ServerThread(keep_serving=True, frame_timeout=1.0, idle_timeout=slow(60)) as st:
        s = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        _, bufs = s.endpoint.send_data({"x": batches(1, seed=0)[0]})
        s.transport.sock.sendall(join(bufs)[:40])  # the header and a little: then nothing
        s.transport.sock.settimeout(slow(10))
        got = s.transport.sock.recv(4096)  # the server gives up on the frame: ERROR frame or close
        assert got == b"" or got[:4] == b"TCF1"
        deadline = time.monotonic() + slow(5)
        while st.ended.get(1) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "rest of a frame" in str(st.ended.get(1)), st.ended
        s.transport.close()


def test_a_net_cut_along_two_links_pairs_each_clients_two_connections():
    """The study's one Source per crossing blob: a client is one connection per Source."""
    import tinycaffe

    net = tinycaffe.Net(
        'layer { name: "s1" type: "Source" top: "x" source_param { port: 0 } input_param { shape { dim: [4, 8] } } }'
        'layer { name: "s2" type: "Source" top: "y" source_param { port: 0 return_top: "sum" }'
        ' input_param { shape { dim: [4, 8] } } }'
        'layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "y" top: "sum" }'
    )
    from tinycaffe.wire import Hello, specs, wanted

    with ServerThread(net, keep_serving=True) as st:
        p1, p2 = (a[1] for a in st.server.addresses)
        h1 = Hello("sink", "k1", specs([("x", "float32", (4, 8))]))
        h2 = Hello("sink", "k2", specs([("y", "float32", (4, 8))]), returns=wanted(["sum"]))
        a = SinkSession.connect("127.0.0.1", p1, h1, timeout=slow(10), connect_timeout=slow(10))
        b = SinkSession.connect("127.0.0.1", p2, h2, timeout=slow(10), connect_timeout=slow(10))
        for x, y in zip(batches(3, seed=1), batches(3, seed=2)):
            a.send({"x": x})
            b.send({"y": y})
            np.testing.assert_array_equal(b.result(slow(10)).blobs["sum"], x + y)
        a.close(slow(10))
        b.close(slow(10))
        deadline = time.monotonic() + slow(10)
        while not st.ended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert st.ended == {1: None} and st.server.batches == 3


def test_a_batch_the_net_fails_on_ends_that_client_only():
    import tinycaffe

    # Accuracy refuses a label outside 0..9: a client sending one gets told, the other goes on.
    net = tinycaffe.Net(
        'layer { name: "src" type: "Source" top: "x" top: "label" source_param { port: 0 }'
        ' input_param { shape { dim: [4, 10] } shape { dim: [4] } } }'
        'layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "accuracy" }'
    )
    from tinycaffe.wire import Hello, specs

    h = Hello("sink", "k", specs([("x", "float32", (4, 10)), ("label", "float32", (4,))]))
    with ServerThread(net, keep_serving=True) as st:
        bad = SinkSession.connect("127.0.0.1", st.port, h, timeout=slow(10), connect_timeout=slow(10))
        good = SinkSession.connect("127.0.0.1", st.port, h, timeout=slow(10), connect_timeout=slow(10))
        x = np.zeros((4, 10), np.float32)
        with pytest.raises(PeerError, match="failed on this batch"):
            bad.send({"x": x, "label": np.full(4, 99, np.float32)})
            bad.flush()
            bad.send({"x": x, "label": np.zeros(4, np.float32)})
            bad.flush()
        good.send({"x": x, "label": np.zeros(4, np.float32)})
        good.flush()
        good.close(slow(10))
        assert st.error is None


@pytest.mark.parametrize("tls", [False, True])
def test_the_writers_deadline_is_not_the_readers(tls, tmp_path):
    """A client may idle longer than frame_timeout between batches (the two threads keep their own timeouts)."""
    kw, ckw = {}, {}
    if tls:
        trustme = pytest.importorskip("trustme")
        from tinycaffe.serve.tls import client_context, server_context

        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "s.pem"))
        kw["tls"], ckw["tls"] = server_context(tmp_path / "s.pem"), client_context(tmp_path / "ca.pem")
    with ServerThread(keep_serving=True, frame_timeout=0.5, idle_timeout=slow(60), **kw) as st:
        s = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10), **ckw)
        for x in batches(3, seed=6):
            s.send({"x": x})
            np.testing.assert_array_equal(s.result(slow(10)).blobs["prob"], expected(x))
            time.sleep(1.0)  # idle: twice the frame deadline
        s.close(slow(10))
        deadline = time.monotonic() + slow(10)
        while 1 not in st.ended and time.monotonic() < deadline:
            time.sleep(0.02)
        assert st.ended == {1: None}
