"""The wire over TLS: many records per read, exact bytes, deadlines that hold, the header's join.

A TLS read yields at most one 16 KB record, so a big frame is hundreds of
records; TLSStream.recv_into decrypts every record already received in one
call. The client writes a whole buffer per SSL write, bounded as a whole by
the deadline. Certificates come from a throwaway CA made by ``trustme``.
Every socket has a timeout of a few seconds and every thread is joined with
a bound.
"""
from __future__ import annotations

import fcntl
import socket
import ssl
import termios
import threading
import time

import numpy as np
import pytest

trustme = pytest.importorskip("trustme")

from tinycaffe.wire import Hello, SinkSession, TransportError, specs  # noqa: E402
from tinycaffe.wire.endpoint import Endpoint  # noqa: E402
from tinycaffe.wire.session import SourceSession  # noqa: E402
from tinycaffe.wire.tls import client_context, server_context  # noqa: E402
from tinycaffe.wire.tls_stream import TLSStream  # noqa: E402
from tinycaffe.wire.transport import Transport, _tls_pieces, accept, listen, tls_accept  # noqa: E402

from ..conftest import SLOW_FACTOR  # noqa: E402

T = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    return d


class _Pair:
    """A TLS client (ssl.SSLSocket) and the server's TLSStream on the other end of a loopback connection."""

    def __init__(self, pki) -> None:
        listener = listen("127.0.0.1", 0)
        got: dict = {}

        def serve() -> None:
            sock, _ = accept(listener, T)
            got["raw"] = sock
            got["stream"] = TLSStream(sock, server_context(pki / "server.pem"), server_side=True)
            got["stream"].handshake(T)

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        plain = socket.create_connection(listener.getsockname(), timeout=T)
        self.client = client_context(pki / "ca.pem").wrap_socket(plain, server_hostname="127.0.0.1")
        th.join(T)
        listener.close()
        assert "stream" in got, "the TLS handshake did not finish"
        self.stream: TLSStream = got["stream"]
        self.raw: socket.socket = got["raw"]

    def wait_for_ciphertext(self, at_least: int) -> None:
        """Until the server's socket holds ``at_least`` unread bytes (bounded)."""
        deadline = time.monotonic() + T
        buf = bytearray(4)
        while time.monotonic() < deadline:
            fcntl.ioctl(self.raw.fileno(), termios.FIONREAD, buf)
            if int.from_bytes(buf, "little") >= at_least:
                return
            time.sleep(0.01)
        raise AssertionError(f"fewer than {at_least} bytes arrived within {T} s")

    def close(self) -> None:
        self.client.close()
        self.stream.close()


@pytest.fixture
def pair(pki):
    p = _Pair(pki)
    yield p
    p.close()


def _message(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_one_read_takes_every_record_already_received(pair):
    msg = _message(60_000)  # 4 records of at most 16 KB; fits a fresh socket's receive buffer
    pair.client.sendall(msg)
    pair.wait_for_ciphertext(len(msg))
    buf = bytearray(len(msg) + 100)
    pair.raw.settimeout(T)
    n = pair.stream.reader.recv_into(buf)
    assert n == len(msg)  # was 16384: one record per call
    assert bytes(buf[:n]) == msg


@pytest.mark.parametrize("sizes", [(1, 7, 16383, 16385, 100_000), (16384,), (50_000, 3)])
def test_partial_reads_give_the_exact_bytes_in_order(pair, sizes):
    msg = _message(300_000)
    threading.Thread(target=pair.client.sendall, args=(msg,), daemon=True).start()
    pair.raw.settimeout(T)
    out = bytearray()
    i = 0
    while len(out) < len(msg):
        want = sizes[i % len(sizes)]
        i += 1
        buf = bytearray(want + 10)
        n = pair.stream.reader.recv_into(buf, want)
        assert 0 < n <= want
        out += buf[:n]
    assert bytes(out) == msg


def test_a_read_never_goes_past_its_buffer(pair):
    msg = _message(50_000)
    pair.client.sendall(msg)
    pair.wait_for_ciphertext(len(msg))
    pair.raw.settimeout(T)
    buf = bytearray(1000)
    assert pair.stream.reader.recv_into(buf, 5000) == 1000  # nbytes beyond the buffer: the buffer wins
    assert pair.stream.reader.recv_into(bytearray(0)) == 0
    rest = bytearray(len(msg))
    n = pair.stream.reader.recv_into(rest)
    assert bytes(buf) + bytes(rest[:n]) == msg


@pytest.mark.parametrize("close_notify", [True, False])
def test_end_of_stream_after_the_last_records(pair, close_notify):
    msg = _message(40_000)
    pair.client.sendall(msg)
    if close_notify:
        pair.client.setblocking(False)
        with pytest.raises(ssl.SSLWantReadError):
            pair.client.unwrap()  # sends close_notify; the server's own is not awaited
    else:
        pair.client.shutdown(socket.SHUT_WR)  # a bare TCP end (close() would reset: unread tickets)
    pair.raw.settimeout(T)
    out = bytearray()
    buf = bytearray(100_000)
    while n := pair.stream.reader.recv_into(buf):
        out += buf[:n]
    assert bytes(out) == msg
    assert pair.stream.reader.recv_into(buf) == 0  # and it stays ended


def test_tls_pieces_join_the_header_to_the_payload_and_lose_nothing():
    header = memoryview(bytes(range(60)))
    payload = memoryview(_message(100_000))
    for piece in (None, 256 * 1024, 30_000):
        pieces = _tls_pieces([header, payload], piece)
        assert len(pieces[0]) == 16 * 1024  # one full record: header + start of the payload
        assert b"".join(pieces) == bytes(header) + bytes(payload)
        if piece is not None:
            assert max(len(p) for p in pieces) <= piece
    assert _tls_pieces([payload], None) == [payload]  # nothing to join
    small = _tls_pieces([header, memoryview(b"abc")], None)
    assert b"".join(small) == bytes(header) + b"abc" and len(small) == 1


@pytest.mark.parametrize("reader", ["silent", "trickle"])
def test_a_big_tls_write_stops_at_its_deadline(pair, reader):
    """One SSL write per buffer: a peer that reads nothing, or 16 KB every 50 ms, cannot hold the sender
    past its deadline (a per-record timeout would let a trickle hold it for minutes)."""
    stop = threading.Event()

    def trickle() -> None:
        pair.raw.settimeout(T)
        buf = bytearray(16384)
        while not stop.is_set():
            try:
                pair.stream.reader.recv_into(buf)
            except OSError:
                return
            time.sleep(0.05)

    th = threading.Thread(target=trickle, daemon=True)
    if reader == "trickle":
        th.start()
    tr = Transport(pair.client, "server", timeout=0.5)
    big = np.zeros(64 << 20, np.uint8)  # far more than the socket buffers hold
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            tr.send([b"h" * 60, memoryview(big)])
            outcome.append(None)
        except BaseException as e:  # handed to the test's thread
            outcome.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    # A wait for the send to end, not a timing: a timeout per record would hold it for
    # ~200 s against the trickle (64 MB at 16 KB per 50 ms) and for ever against silence.
    sender.join(30 * SLOW_FACTOR)
    stop.set()
    assert not sender.is_alive(), "the sender was still held long after its 0.5 s deadline"
    assert len(outcome) == 1 and isinstance(outcome[0], TransportError), outcome
    assert "timed out" in str(outcome[0])
    assert tr.mid_frame  # the frame is cut and known to be: nothing more may follow it
    if th.is_alive():
        th.join(T)


@pytest.mark.parametrize("checksum", [None, "xxh3"])
def test_big_frames_over_tls_arrive_exact(pki, checksum):
    """SinkSession (SSLSocket) -> SourceSession (TLSStream), blobs of ~1.3 MB (~80 records) each."""
    xs = [np.random.default_rng(i).standard_normal((10, 32, 32, 32), dtype=np.float32) for i in range(4)]
    algos = (checksum,) if checksum else ("crc32",)
    s = specs({"pool1": xs[0]})
    hk = Hello("sink", "edge_cut", s, window=1, checksum=bool(checksum), checksums=algos)
    hs = Hello("source", "cloud_in", s, wire="any", window=1, checksum=bool(checksum), checksums=algos)
    listener = listen("127.0.0.1", 0)
    got: list[np.ndarray] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            sock, peer = accept(listener, T)
            side = tls_accept(sock, server_context(pki / "server.pem"), peer, T).duplex
            session = SourceSession(Transport(side, peer, timeout=T), Endpoint(hs))
            session.handshake()
            while (f := session.receive()) is not None:
                got.append(f.blobs["pool1"].copy())
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    session = SinkSession.connect(*listener.getsockname()[:2], hk, timeout=T, tls=client_context(pki / "ca.pem"))
    for x in xs:
        session.send({"pool1": x})
    session.close()
    th.join(T)
    listener.close()
    assert not errors, errors
    assert len(got) == len(xs)
    for x, y in zip(xs, got):
        np.testing.assert_array_equal(x, y)


def test_tls_stream_refuses_a_tampered_record(pair):
    """TLS's own integrity (what 'checksum none' over TLS relies on): a flipped ciphertext bit is an error."""
    pair.client.sendall(_message(5000))
    pair.wait_for_ciphertext(5000)
    pair.raw.settimeout(T)
    data = bytearray(pair.raw.recv(65536))
    data[len(data) // 2] ^= 0x01
    with pair.stream._lock:
        pair.stream._in.write(bytes(data))
    with pytest.raises(ssl.SSLError):
        pair.stream.reader.recv_into(bytearray(10_000))
