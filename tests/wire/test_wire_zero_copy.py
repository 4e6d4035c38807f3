"""The fast paths of the wire: blobs received in place, cached blob tables, the send hand-off.

Each fast path must give exactly what the slow one gives: the bytes that were
sent, for odd sizes and reads split anywhere, and the same refusals of a
hostile stream.
"""
from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from tinycaffe.wire import Decoder, FrameType, LocalProtocolError, ProtocolError, encode_data, encode_frame, join
from tinycaffe.wire.blobs import encode_blobs
from tinycaffe.wire.dtypes import Encoding
from tinycaffe.wire.frames import DataFrame
from tinycaffe.wire.transport import Transport, _Done

from .wire_helpers import Worker, drain

ODD = {
    "odd_f32": (np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7) / 7),  # 420 bytes
    "odd_u8": np.arange(1001, dtype=np.int64).astype(np.uint8),  # not a multiple of anything
    "pool1_b1": np.random.default_rng(1).standard_normal((1, 32, 16, 16), dtype=np.float32),  # 32 KB
    "empty": np.zeros((0, 3), np.float32),
    "big_odd": np.random.default_rng(2).standard_normal((3, 17, 129, 31), dtype=np.float32),  # ~800 KB
}


def _send_frames(sock: socket.socket, frames: list[dict[str, np.ndarray]], checksum) -> None:
    t = Transport(sock, "test-receiver", timeout=30)
    for seq, blobs in enumerate(frames):
        t.send(encode_data(seq, blobs, checksum=checksum))
    sock.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("checksum", [False, "crc32", "xxh3"])
def test_blobs_of_odd_sizes_arrive_whole_through_small_split_reads(checksum):
    """A tiny receive buffer splits every frame into many reads, landing anywhere in a blob."""
    from tinycaffe.wire.checksum import available

    if checksum and checksum not in available():
        pytest.skip(f"{checksum} not installed")
    rx, tx = socket.socketpair()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(6):
        blobs = dict(ODD)
        blobs["odd_f32"] = blobs["odd_f32"] + i  # each frame's bytes differ
        blobs["big_odd"] = rng.standard_normal((3, 17, 129, 31), dtype=np.float32)
        frames.append(blobs)
    targets = {"big_odd": np.empty((3, 17, 129, 31), np.float32), "odd_u8": np.empty(1001, np.uint8)}
    dec = Decoder(targets=targets, require_checksum=bool(checksum))
    sender = Worker(lambda: _send_frames(tx, frames, checksum))
    t = Transport(rx, "test-sender", timeout=30)
    got = []
    try:
        for _ in range(len(frames)):
            ev = t.receive(dec, 30)
            assert isinstance(ev, DataFrame)
            assert ev.blobs["big_odd"] is targets["big_odd"]  # received in place, no copy
            assert ev.blobs["odd_u8"] is targets["odd_u8"]
            got.append({k: v.copy() for k, v in ev.blobs.items()})
        sender.result()
    finally:
        rx.close()
        tx.close()
    for want, have in zip(frames, got, strict=True):
        assert list(have) == list(want)
        for k in want:
            assert have[k].dtype == want[k].dtype and have[k].shape == want[k].shape
            assert have[k].tobytes() == want[k].tobytes(), k


def _decode_one(dec: Decoder, data: bytes) -> DataFrame:
    dec.feed(data)
    (ev,) = drain(dec)
    return ev


def test_a_repeated_table_is_reused_and_a_changed_one_parsed_again():
    """Tables of the same length but other shape, dtype or name must not hit the cache."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    cases = [
        {"x": a},
        {"x": a + 1},  # same table
        {"x": (a + 2).reshape(3, 2)},  # same length, other shape
        {"x": a.astype(np.int32)},  # same length, other dtype
        {"y": a},  # same length, other name
        {"x": a},
    ]
    dec = Decoder()
    tables = []
    for seq, blobs in enumerate(cases):
        ev = _decode_one(dec, join(encode_data(seq, blobs)))
        assert list(ev.blobs) == list(blobs)
        for k, v in blobs.items():
            assert ev.blobs[k].dtype == v.dtype and ev.blobs[k].shape == v.shape
            np.testing.assert_array_equal(ev.blobs[k], v)
        tables.append(bytes(encode_blobs(blobs, Encoding.RAW)[0]))
    assert len({len(t) for t in tables}) == 1  # the cases above really do share one table length


def test_a_cached_table_does_not_skip_the_check_against_the_data_length():
    """The same table bytes with more data behind them are refused, as the first time."""
    x = np.arange(6, dtype=np.float32)
    dec = Decoder()
    _decode_one(dec, join(encode_data(0, {"x": x})))
    head, *views = encode_blobs({"x": x}, Encoding.RAW)
    frame = join(encode_frame(FrameType.DATA, 1, [head, *views, b"\0" * 4]))
    dec.feed(frame)
    with pytest.raises(ProtocolError, match="declare"):
        drain(dec)


def test_a_cached_table_entry_never_hides_a_bad_name():
    x = np.zeros(3, np.float32)
    encode_data(0, {"a": x})  # "a" is now cached
    with pytest.raises(LocalProtocolError, match="names must be str"):
        encode_data(1, {b"a": x})  # type: ignore[dict-item]


def test_encoded_frames_are_the_same_with_and_without_the_entry_cache():
    from tinycaffe.wire import blobs as blobs_mod

    b = {"p": np.ones((2, 3), np.float16), "q": np.arange(4, dtype=np.int64)}
    blobs_mod._ENTRIES.clear()
    first = join(encode_data(7, b))
    assert blobs_mod._ENTRIES  # filled
    again = join(encode_data(7, b))
    assert first == again


def test_done_flag_waits_times_out_and_stays_set():
    done = _Done()
    assert not done.is_set()
    assert done.wait(0.01) is False
    threading.Timer(0.05, done.set).start()
    assert done.wait(30) is True
    assert done.is_set()
    assert done.wait(0) is True  # set stays set, for every later wait
    assert done.wait() is True


def test_after_cached_frames_an_oversize_one_is_still_refused_at_its_header():
    """The fast paths change nothing about admission: the HELLO's declared size bounds every frame."""
    import struct
    import tracemalloc
    import zlib

    from tinycaffe.wire import Endpoint, ErrorCode, Hello, specs
    from tinycaffe.wire.header import CONTROL_MAX, FLAG_CRC, MAGIC, PROTOCOL_VERSION
    from tinycaffe.wire.hello import payload_size

    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    sink = Endpoint(Hello("sink", "edge", specs({"x": x})))
    source = Endpoint(Hello("source", "cloud_in", specs({"x": x}), wire="any"))
    source.feed(join(sink.send_hello()))
    source.next_event()
    sink.feed(join(source.send_hello()))
    sink.next_event()
    target = np.empty_like(x)
    source.targets = {"x": target}
    for _ in range(3):  # the table is cached, the blob lands in place
        _, bufs = sink.send_data({"x": x})
        source.feed(join(bufs))
        ev = source.next_event()
        assert ev.blobs["x"] is target
        np.testing.assert_array_equal(target, x)
        sink.feed(join(source.send_ack(ev.seq)))
        sink.next_event()
    too_big = max(CONTROL_MAX, payload_size(specs({"x": x}), sink.local.encoding)) + 1
    body = struct.pack("<4sBBHIQI", MAGIC, PROTOCOL_VERSION, int(FrameType.DATA), FLAG_CRC, 3, too_big, 0)
    tracemalloc.start()
    try:
        source.feed(body + struct.pack("<I", zlib.crc32(body)))
        with pytest.raises(ProtocolError, match="exceeds") as info:
            source.next_event()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == ErrorCode.TOO_LARGE
    assert peak < 64 * 1024  # nothing the size of the claimed frame was reserved
