"""Protocol version 3: the XXH3 checksum as an 8-byte trailer after the payload.

Framing with a trailer (whole, a byte at a time, in random slices through
direct_view/commit), a damaged or truncated trailer, an XXH3 header that
carries a CRC value, a peer of another version (refused, in its own version
where it can read our ERROR), and the sender's order: a piece is hashed only
after the transport has written it. Plus the non-blocking transport's
deadlines: a peer that stops reading, or reads a trickle, cannot hold a send
past its timeout.
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinycaffe.wire import (
    DataFrame,
    Decoder,
    Endpoint,
    ErrorCode,
    ErrorFrame,
    Hello,
    LocalProtocolError,
    ProtocolError,
    SinkSession,
    SourceServer,
    Transport,
    TransportError,
    encode_data,
    join,
    specs,
)
from tinycaffe.wire import encode as encode_mod
from tinycaffe.wire import transport as transport_mod
from tinycaffe.wire.header import (
    FLAG_XXH3,
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    TRAILER_SIZE,
    FrameType,
)

from .wire_helpers import blob_sets, drain, examples, frame_lists, same_frame

xxhash = pytest.importorskip("xxhash")

X = np.random.default_rng(3).standard_normal((2, 3, 8, 8), dtype=np.float32)
T = 3.0
# Bounds on how long a deadline may be overrun: generous, and scaled on a slow machine.
SLOW = max(1.0, float(os.environ.get("TINYCAFFE_TEST_SLOW", "1") or 1))


def xxh3_frame(seq: int = 0, blobs: dict | None = None) -> bytes:
    return join(encode_data(seq, blobs if blobs is not None else {"x": X}, checksum="xxh3"))


def test_an_xxh3_frame_carries_its_full_hash_after_the_payload():
    frame = xxh3_frame()
    _magic, version, ftype, flags, _seq, length, crc = struct.unpack_from("<4sBBHIQI", frame)
    assert (version, ftype, flags, crc) == (PROTOCOL_VERSION, FrameType.DATA, FLAG_XXH3, 0)
    assert len(frame) == HEADER_SIZE + length + TRAILER_SIZE
    payload = frame[HEADER_SIZE : HEADER_SIZE + length]
    assert struct.unpack("<Q", frame[-TRAILER_SIZE:])[0] == xxhash.xxh3_64_intdigest(payload)
    assert encode_data(0, {"x": X}, checksum="xxh3").nbytes == len(frame)


def test_a_big_payload_is_cut_into_pieces_and_still_hashes_the_same(monkeypatch):
    monkeypatch.setattr(encode_mod, "PIECE", 1000)
    monkeypatch.setattr(encode_mod, "_EAGER_BELOW", 0)
    frame = encode_data(7, {"x": X}, checksum="xxh3")
    bufs = list(frame)
    assert len(bufs) > X.nbytes // 1000  # header(+table), pieces, trailer
    assert max(len(b) for b in bufs[1:-1]) <= 1000
    dec = Decoder()
    dec.feed(b"".join(bufs))
    (got,) = drain(dec)
    np.testing.assert_array_equal(got.blobs["x"], X)


def test_a_piece_is_hashed_only_after_the_transport_has_written_it(monkeypatch):
    """_groups hands a group out before it asks for the next buffer, whose making hashes the piece."""
    monkeypatch.setattr(encode_mod, "PIECE", 1024)
    monkeypatch.setattr(encode_mod, "_EAGER_BELOW", 0)
    events: list[tuple[str, int]] = []

    class Recording(encode_mod.Running):
        def update(self, data) -> None:
            events.append(("hash", len(data)))
            super().update(data)

    monkeypatch.setattr(encode_mod, "Running", Recording)
    big = np.arange(4096, dtype=np.float32)
    frame = encode_data(0, {"x": big}, checksum="xxh3")
    written = []
    for group in transport_mod._groups(frame, 1024):
        events.append(("write", sum(len(v) for v in group)))
        written.append(b"".join(bytes(v) for v in group))
    pieces = [n for kind, n in events if kind == "hash" and n == 1024]
    assert len(pieces) == big.nbytes // 1024
    head = len(written[0]) - 1024  # header, blob prefix and table went out with the first piece
    out = hashed = 0
    for kind, n in events:
        if kind == "write":
            out += n
        elif n == 1024:
            hashed += n
            assert out >= head + hashed  # this piece has been written already
    dec = Decoder()
    dec.feed(b"".join(written))
    (got,) = drain(dec)
    np.testing.assert_array_equal(got.blobs["x"], big)


def test_groups_never_ask_for_more_than_they_hand_out():
    pulled = []

    def buffers():
        for i in range(4):
            pulled.append(i)
            yield bytes(300)

    seen = []
    for group in transport_mod._groups(buffers(), 500):
        seen.append((sum(len(v) for v in group), list(pulled)))
    assert seen == [(600, [0, 1]), (600, [0, 1, 2, 3])]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame_lists(max_frames=3, checksums=st.just("xxh3")), st.data())
def test_bit_flip_in_an_xxh3_stream_is_caught_or_harmless(frames, data):
    stream = bytearray(b"".join(raw for _, raw in frames))
    bit = data.draw(st.integers(0, 8 * len(stream) - 1))
    stream[bit // 8] ^= 1 << (bit % 8)
    dec = Decoder()
    try:
        dec.feed(bytes(stream))
        dec.feed_eof()
        got = drain(dec)
    except ProtocolError:
        return
    assert len(got) == len(frames)
    for g, (want, _) in zip(got, frames):
        assert same_frame(g, want)


def test_a_damaged_trailer_is_a_checksum_error_that_names_the_trailer():
    frame = bytearray(xxh3_frame())
    frame[-3] ^= 0x40
    dec = Decoder()
    dec.feed(bytes(frame))
    with pytest.raises(ProtocolError, match="checksum mismatch.*xxh3 in the trailer") as info:
        drain(dec)
    assert info.value.code == ErrorCode.CHECKSUM


@pytest.mark.parametrize("cut", [1, TRAILER_SIZE - 1, TRAILER_SIZE])
def test_a_stream_ending_inside_the_trailer_is_an_error_not_a_frame(cut):
    frame = xxh3_frame()
    dec = Decoder()
    dec.feed(frame[:-cut])
    dec.feed_eof()
    with pytest.raises(ProtocolError, match=f"{TRAILER_SIZE - cut} of {TRAILER_SIZE} checksum trailer bytes"):
        drain(dec)


def test_an_xxh3_header_with_a_crc_value_is_refused():
    frame = bytearray(xxh3_frame())
    struct.pack_into("<I", frame, 20, 1234)  # the header's CRC field
    struct.pack_into("<I", frame, 24, zlib.crc32(bytes(frame[:24])))  # re-sign the header
    dec = Decoder()
    dec.feed(bytes(frame))
    with pytest.raises(ProtocolError, match="CRC field but no FLAG_CRC"):
        drain(dec)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blob_sets(max_blobs=3), st.lists(st.integers(1, 97), min_size=1, max_size=40))
def test_partial_reads_into_targets_with_a_trailer(blobs, sizes):
    """The transport's path: direct_view + commit in odd slices, feed() when no view is offered."""
    stream = xxh3_frame(0, blobs) + xxh3_frame(1, blobs)
    targets = {k: np.empty_like(v) for k, v in blobs.items()}
    dec = Decoder(targets=targets)
    pos, got, i = 0, [], 0
    while pos < len(stream):
        n = min(sizes[i % len(sizes)], len(stream) - pos)
        i += 1
        view = dec.direct_view()
        if view is not None and len(view):
            n = min(n, len(view))
            view[:n] = stream[pos : pos + n]
            dec.commit(n)
        else:
            dec.feed(stream[pos : pos + n])
        pos += n
        got += drain(dec)
    assert [f.seq for f in got] == [0, 1]
    for f in got:
        assert isinstance(f, DataFrame)
        for k, v in blobs.items():
            np.testing.assert_array_equal(f.blobs[k], v)


def test_a_version_2_peer_is_refused_with_an_error_it_can_read():
    """Version 2 ERROR frames are laid out as ours: the refusal goes out under its version number."""
    hk = Hello("sink", "a", specs({"x": X}))
    old = bytearray(join(Endpoint(hk).send_hello()))
    old[4] = 2
    struct.pack_into("<I", old, 24, zlib.crc32(bytes(old[:24])))
    source = Endpoint(Hello("source", "b", specs({"x": X})))
    source.feed(bytes(old))
    with pytest.raises(ProtocolError, match=f"version 2 \\(this side speaks version {PROTOCOL_VERSION}\\)") as info:
        source.next_event()
    assert info.value.code == ErrorCode.VERSION
    reply = join(source.send_error(info.value.code, str(info.value)))
    assert reply[:4] == MAGIC and reply[4] == 2
    # A version-2 reader sees an ordinary ERROR frame: parse it as one would, with the version byte put back.
    mine = bytearray(reply)
    mine[4] = PROTOCOL_VERSION
    struct.pack_into("<I", mine, 24, zlib.crc32(bytes(mine[:24])))
    dec = Decoder()
    dec.feed(bytes(mine))
    (err,) = drain(dec)
    assert isinstance(err, ErrorFrame) and err.code == ErrorCode.VERSION and "version 2" in err.message


def test_a_peer_of_an_unknown_version_gets_our_version():
    source = Endpoint(Hello("source", "b", specs({"x": X})))
    source.feed(MAGIC + bytes([9]))
    with pytest.raises(ProtocolError):
        source.next_event()
    assert join(source.send_error(ErrorCode.VERSION, "no"))[4] == PROTOCOL_VERSION


def test_session_round_trip_of_a_frame_in_many_pieces(monkeypatch):
    """Over loopback TCP: many pieces and groups, hashing between writes, the trailer checked."""
    monkeypatch.setattr(encode_mod, "PIECE", 64 * 1024)
    big = np.random.default_rng(5).standard_normal((8, 64, 32, 32), dtype=np.float32)  # 2 MB
    hk = Hello("sink", "edge", specs({"x": big}), window=2)
    hs = Hello("source", "cloud", specs({"x": big}), window=2, wire="any")
    server = SourceServer(hs, timeout=T)
    got: list[np.ndarray] = []

    def serve() -> None:
        s = server.accept()
        s.targets = {"x": np.empty_like(big)}
        while (f := s.receive()) is not None:
            got.append(f.blobs["x"].copy())

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    with SinkSession.connect(*server.address, hk, timeout=T) as sink:
        assert sink.endpoint.checksum == "xxh3"
        for i in range(3):
            sink.send({"x": big + i})
    worker.join(T)
    server.close()
    assert not worker.is_alive() and len(got) == 3
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, big + i)


def test_a_peer_that_stops_reading_cannot_hold_a_send_past_its_timeout():
    a, b = socket.socketpair()
    try:
        t = Transport(a, "peer", timeout=0.3)
        big = np.zeros(64 << 20, np.uint8)  # more than the socket buffers hold
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="timed out after 0.3 s sending to peer"):
            t.send([memoryview(big)])
        assert time.monotonic() - t0 < 3.0 * SLOW
        assert t.mid_frame  # the rest of the frame is owed: nothing else may be sent
        with pytest.raises(TransportError, match="stopped mid-frame"):
            t.send([b"next"])
    finally:
        a.close()
        b.close()


def test_a_trickling_reader_cannot_stretch_the_send_deadline():
    """The timeout bounds the whole write, not each call: a reader taking 4 KB every 20 ms is cut off."""
    a, b = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:
        b.settimeout(0.05)
        while not stop.is_set():
            try:
                if not b.recv(4096):
                    return
            except (TimeoutError, OSError):
                pass
            time.sleep(0.02)

    reader = threading.Thread(target=trickle, daemon=True)
    reader.start()
    try:
        t = Transport(a, "peer", timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            t.send([memoryview(np.zeros(64 << 20, np.uint8))])
        assert time.monotonic() - t0 < 4.0 * SLOW
    finally:
        stop.set()
        a.close()
        reader.join(T)
        b.close()


def test_a_silent_peer_times_out_the_receive_as_a_whole():
    a, b = socket.socketpair()
    try:
        t = Transport(a, "peer", timeout=0.3)
        b.sendall(xxh3_frame()[:40])  # a header and a little, then nothing
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="timed out after 0.3 s waiting for data from peer"):
            t.receive(Decoder())
        assert time.monotonic() - t0 < 3.0 * SLOW
    finally:
        a.close()
        b.close()


def _read_all(sock: socket.socket, limit: int = 1 << 24) -> bytes:
    out = bytearray()
    sock.settimeout(T)
    while len(out) < limit:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_the_client_hashes_while_its_helper_writes_and_the_frame_is_the_same(monkeypatch):
    """An interruptible transport (the client's) splits an XXH3 frame: body by the helper, hash here."""
    monkeypatch.setattr(encode_mod, "SPLIT_MIN", 1)
    a, b = socket.socketpair()
    try:
        t = Transport(a, "peer", timeout=T, interruptible=True)
        frame = encode_data(0, {"x": X}, checksum="xxh3")
        t.send(frame)
        assert not t.mid_frame
        a.close()
        assert _read_all(b) == join(frame)
    finally:
        a.close()
        b.close()


def test_ctrl_c_while_the_client_hashes_still_completes_the_frame(monkeypatch):
    """Ctrl-C lands during the caller's hash: the helper hashes instead, the frame stays whole, ERROR follows."""
    a, b = socket.socketpair()
    hk = Hello("sink", "edge", specs({"x": X}))
    hs = Hello("source", "cloud", specs({"x": X}), wire="any")
    sink, source = Endpoint(hk), Endpoint(hs)
    source.feed(join(sink.send_hello()))
    source.next_event()
    sink.feed(join(source.send_hello()))
    sink.next_event()
    assert sink.checksum == "xxh3"
    real = encode_mod.OutFrame.trailer
    calls = []

    def interrupted(self):
        calls.append(threading.current_thread() is threading.main_thread())
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(encode_mod.OutFrame, "trailer", interrupted)
    monkeypatch.setattr(encode_mod, "SPLIT_MIN", 1)
    try:
        t = Transport(a, "peer", timeout=T, interruptible=True)
        _, frame = sink.send_data({"x": X})
        with pytest.raises(KeyboardInterrupt):
            t.send(frame)
        assert t.finish_frame(T)
        t.send(sink.send_error(ErrorCode.APPLICATION, "client stopped"))
        a.close()
        got = _read_all(b)
    finally:
        a.close()
        b.close()
    assert calls == [True, False]  # the main thread was interrupted; the helper hashed
    source.feed(got)
    data, err = source.next_event(), source.next_event()
    np.testing.assert_array_equal(data.blobs["x"], X)
    assert isinstance(err, ErrorFrame) and "client stopped" in err.message


def test_small_frames_hashed_at_once_are_the_same_bytes_as_hashed_piece_by_piece(monkeypatch):
    blobs = {"x": X, "y": np.arange(7, dtype=np.int16)}
    at_once = join(encode_data(3, blobs, checksum="xxh3"))
    monkeypatch.setattr(encode_mod, "_EAGER_BELOW", 0)
    monkeypatch.setattr(encode_mod, "PIECE", 512)
    assert join(encode_data(3, blobs, checksum="xxh3")) == at_once


def test_one_scatter_read_takes_the_end_of_the_payload_and_the_trailer():
    """direct_views offers the last data segment and the trailer; commit() may span both."""
    big = np.random.default_rng(9).standard_normal((4, 1024), dtype=np.float32)
    stream = xxh3_frame(0, {"x": big})
    target = np.empty_like(big)
    dec = Decoder(targets={"x": target})
    head = len(stream) - big.nbytes - TRAILER_SIZE  # header, blob prefix and table
    dec.feed(stream[: head + 100])
    assert drain(dec) == []
    views = dec.direct_views()
    assert [len(v) for v in views] == [big.nbytes - 100, TRAILER_SIZE]
    rest = stream[head + 100 :]
    views[0][:] = rest[: len(views[0])]
    views[1][:5] = rest[len(views[0]) : len(views[0]) + 5]  # a read that stops inside the trailer
    dec.commit(len(views[0]) + 5)
    assert drain(dec) == [] and dec.mid_frame
    dec.feed(rest[len(views[0]) + 5 :])
    (got,) = drain(dec)
    assert got.blobs["x"] is target
    np.testing.assert_array_equal(target, big)


def test_commit_cannot_claim_more_than_the_views_offered():
    stream = xxh3_frame(0, {"x": np.zeros((4, 1024), np.float32)})
    dec = Decoder()
    dec.feed(stream[:200])
    assert drain(dec) == []
    views = dec.direct_views()
    assert len(views) == 2  # the rest of the blob, and the trailer
    with pytest.raises(LocalProtocolError, match="does not match"):
        dec.commit(sum(len(v) for v in views) + 1)
