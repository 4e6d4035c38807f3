"""The sans-I/O codec: round trips, chunking, truncation, corruption, limits."""
from __future__ import annotations

import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinycaffe.errors import WireError
from tinycaffe.wire import (
    CLOSED,
    MAGIC,
    NEED_DATA,
    DataFrame,
    Decoder,
    ErrorCode,
    FrameType,
    LocalProtocolError,
    ProtocolError,
    encode_ack,
    encode_bye,
    encode_data,
    encode_frame,
    join,
)
from tinycaffe.wire.blobs import PREFIX
from tinycaffe.wire.header import FLAG_CRC, PROTOCOL_VERSION

from .wire_helpers import blob_sets, drain, examples, frame_lists, no_checksum, resigned_damage, same_frame

FAST = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stream_of(frames):
    return b"".join(b for _, b in frames)


def check_all(got, frames):
    assert len(got) == len(frames)
    for g, (want, _) in zip(got, frames, strict=True):
        assert same_frame(g, want), (g, want)


# ---- round trips ------------------------------------------------------------


@FAST
@given(frame_lists())
def test_round_trip_fed_whole(frames):
    dec = no_checksum(Decoder())
    dec.feed(stream_of(frames))
    check_all(drain(dec), frames)


@FAST
@given(frame_lists(max_frames=3))
def test_round_trip_one_byte_at_a_time(frames):
    dec = no_checksum(Decoder())
    got = []
    for b in stream_of(frames):
        dec.feed(bytes([b]))
        got += drain(dec)
    check_all(got, frames)


@FAST
@given(frame_lists(), st.data())
def test_round_trip_random_chunks(frames, data):
    stream = stream_of(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    dec = no_checksum(Decoder())
    got, last = [], 0
    for c in cuts + [len(stream)]:
        dec.feed(stream[last:c])
        got += drain(dec)
        last = c
    check_all(got, frames)
    dec.feed_eof()
    assert dec.next_event() is CLOSED


@FAST
@given(frame_lists(), st.data())
def test_round_trip_through_direct_views(frames, data):
    """The recv_into path: bytes written straight into direct_view(), small leftovers fed."""
    stream = memoryview(stream_of(frames))
    dec = no_checksum(Decoder())
    got, pos = [], 0
    while pos < len(stream):
        got += drain(dec)
        step = data.draw(st.integers(1, 4096))
        view = dec.direct_view()
        if view is not None and len(view) and data.draw(st.booleans()):
            n = min(step, len(view), len(stream) - pos)
            view[:n] = stream[pos : pos + n]
            dec.commit(n)
        else:
            n = min(step, len(stream) - pos)
            dec.feed(stream[pos : pos + n])
        pos += n
    got += drain(dec)
    check_all(got, frames)


@FAST
@given(blob_sets(dtypes=[np.float32, np.int32, np.uint8]))
def test_data_lands_in_preallocated_targets(blobs):
    targets = {k: np.empty_like(v) for k, v in blobs.items()}
    dec = Decoder(targets=targets)
    for seq in range(2):  # the same targets serve frame after frame
        dec.feed(join(encode_data(seq, blobs)))
        (ev,) = drain(dec)
        for k, v in blobs.items():
            assert ev.blobs[k] is targets[k]
            np.testing.assert_array_equal(ev.blobs[k], v)


def test_target_of_wrong_shape_is_not_used():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    target = np.empty((3, 2), np.float32)
    dec = Decoder(targets={"x": target})
    dec.feed(join(encode_data(0, {"x": x})))
    (ev,) = drain(dec)
    assert ev.blobs["x"] is not target
    np.testing.assert_array_equal(ev.blobs["x"], x)


def test_encoding_does_not_copy_contiguous_arrays():
    x = np.random.rand(64, 64).astype(np.float32)
    bufs = encode_data(0, {"x": x})
    views = [b for b in bufs if isinstance(b, memoryview)]
    assert len(views) == 1 and views[0].nbytes == x.nbytes
    assert np.shares_memory(np.frombuffer(views[0], np.float32), x)


def test_non_contiguous_and_big_endian_arrays_are_sent_correctly():
    x = np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2]
    dec = Decoder()
    dec.feed(join(encode_data(0, {"x": x})))
    (ev,) = drain(dec)
    np.testing.assert_array_equal(ev.blobs["x"], x)
    assert ev.blobs["x"].dtype == np.dtype("<i4")


def test_trailing_bytes_of_next_frame_wait():
    a = join(encode_ack(0, 7))
    b = join(encode_ack(1, 8))
    dec = Decoder()
    dec.feed(a + b[:5])
    (ev,) = drain(dec)
    assert ev.acked == 7
    assert dec.next_event() is NEED_DATA
    dec.feed(b[5:])
    assert drain(dec)[0].acked == 8


# ---- truncation and corruption ----------------------------------------------


@FAST
@given(frame_lists(), st.data())
def test_truncated_stream_needs_data_and_fails_only_on_close(frames, data):
    stream = stream_of(frames)
    cut = data.draw(st.integers(0, len(stream) - 1))
    ends, total = [], 0
    for _, b in frames:
        total += len(b)
        ends.append(total)
    whole = sum(1 for e in ends if e <= cut)
    dec = no_checksum(Decoder())
    dec.feed(stream[:cut])
    got = drain(dec)
    check_all(got, frames[:whole])
    assert dec.next_event() is NEED_DATA
    dec.feed_eof()
    if cut in ends or cut == 0:
        assert dec.next_event() is CLOSED
    else:
        with pytest.raises(ProtocolError, match="mid-frame"):
            dec.next_event()


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame_lists(max_frames=3, checksums=st.just(True)), st.data())
def test_bit_flip_is_caught_or_harmless(frames, data):
    stream = bytearray(stream_of(frames))
    bit = data.draw(st.integers(0, 8 * len(stream) - 1))
    stream[bit // 8] ^= 1 << (bit % 8)
    dec = Decoder()
    try:
        dec.feed(bytes(stream))
        dec.feed_eof()
        got = drain(dec)
    except ProtocolError:
        return
    check_all(got, frames)  # only allowed if the flip changed nothing that matters


@FAST
@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_errors(blob):
    dec = Decoder()
    try:
        dec.feed(blob)
        dec.feed_eof()
        drain(dec)
    except ProtocolError:
        pass


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blob_sets(max_blobs=3), st.data())
def test_mutated_payload_with_valid_crc_raises_only_protocol_errors(blobs, data):
    """Damage the blob table itself (re-signing the CRC) to reach the payload parser."""
    dec = Decoder()
    dec.feed(resigned_damage(blobs, data))
    dec.feed_eof()
    try:
        drain(dec)
    except ProtocolError:
        pass


def test_failed_decoder_stays_failed():
    dec = Decoder()
    dec.feed(b"XXXX")
    with pytest.raises(ProtocolError, match="bad magic"):
        dec.next_event()
    with pytest.raises(ProtocolError, match="already failed"):
        dec.next_event()


# ---- header-level defects -----------------------------------------------------


def raw_header(ftype=2, flags=FLAG_CRC, seq=0, length=0, crc=0, version=PROTOCOL_VERSION, magic=MAGIC):
    body = struct.pack("<4sBBHIQI", magic, version, ftype, flags, seq, length, crc)
    return body + struct.pack("<I", zlib.crc32(body))


def first_error(data: bytes, **kw) -> ProtocolError:
    dec = Decoder(**kw)
    dec.feed(data)
    with pytest.raises(ProtocolError) as info:
        drain(dec)
    return info.value


def test_bad_magic_is_refused_after_four_bytes():
    e = first_error(b"GET ")
    assert "bad magic" in str(e) and "b'GET '" in str(e)


def test_unknown_version():
    e = first_error(raw_header(version=9)[:5])
    assert e.code == ErrorCode.VERSION and "version 9" in str(e)


def test_unknown_frame_type():
    assert "unknown frame type 77" in str(first_error(raw_header(ftype=77)))


def test_unknown_flags():
    assert "unknown flag" in str(first_error(raw_header(flags=0x8001)))


def test_header_checksum_mismatch():
    h = bytearray(raw_header(ftype=FrameType.BYE))
    h[-1] ^= 0xFF
    assert "header checksum" in str(first_error(bytes(h)))


def test_oversized_length_is_refused_before_allocating():
    tracemalloc.start()
    try:
        e = first_error(raw_header(length=1 << 40), max_frame=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.code == ErrorCode.TOO_LARGE and str(1 << 40) in str(e)
    assert peak < 1 << 20


def test_length_just_above_max_frame():
    e = first_error(raw_header(length=4097), max_frame=4096)
    assert "exceeds" in str(e)


def test_control_frames_have_fixed_or_capped_sizes():
    assert "exceeds" in str(first_error(raw_header(ftype=FrameType.ACK, length=5)))
    assert "exceeds" in str(first_error(raw_header(ftype=FrameType.BYE, length=1)))
    assert "exceeds" in str(first_error(raw_header(ftype=FrameType.HELLO, length=1 << 20)))


def test_payload_checksum_mismatch():
    frame = bytearray(join(encode_ack(0, 5)))
    frame[-1] ^= 1
    e = first_error(bytes(frame))
    assert e.code == ErrorCode.CHECKSUM


def test_missing_checksum_refused_when_required():
    frame = join(encode_ack(0, 5, checksum=False))
    assert "no checksum" in str(first_error(frame))
    dec = no_checksum(Decoder())
    dec.feed(frame)
    assert drain(dec)[0].acked == 5


def test_bytes_after_bye():
    dec = Decoder()
    dec.feed(join(encode_bye(0)) + b"x")
    assert dec.next_event().seq == 0  # the BYE itself is delivered...
    with pytest.raises(ProtocolError, match="1 bytes after BYE"):
        dec.next_event()  # ...and the stray byte refused


def test_after_bye_the_stream_is_closed():
    dec = Decoder()
    dec.feed(join(encode_bye(0)))
    drain(dec)
    assert dec.next_event() is CLOSED
    assert dec.direct_view() is None


def test_feed_after_eof_is_a_local_error():
    dec = Decoder()
    dec.feed_eof()
    with pytest.raises(LocalProtocolError):
        dec.feed(b"x")


# ---- payload-level defects (valid CRCs, bad content) ---------------------------


def data_frame(payload: bytes, ftype=FrameType.DATA) -> bytes:
    return join(encode_frame(ftype, 0, [payload]))


def entry(name=b"x", code=1, enc=0, shape=(2,), nbytes=None, quant=b""):
    nb = 4 * int(np.prod(shape)) if nbytes is None else nbytes
    return (struct.pack("<H", len(name)) + name + struct.pack("<BBI", code, enc, len(shape))
            + struct.pack(f"<{len(shape)}I", *shape) + quant + struct.pack("<Q", nb))


def blob_payload(entries: list[bytes], data: bytes, ref=0, count=None, table_len=None) -> bytes:
    table = b"".join(entries)
    n = len(entries) if count is None else count
    tl = len(table) if table_len is None else table_len
    return PREFIX.pack(ref, n, tl) + table + data


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x00" * 5, "shorter than its blob prefix"),
        (blob_payload([entry()], b"\0" * 8, count=2), "truncated blob table"),
        (blob_payload([entry()], b"\0" * 8, table_len=10_000), "overruns"),
        (blob_payload([entry()[:-3]], b""), "truncated blob table"),
        (blob_payload([entry(nbytes=9)], b"\0" * 9), r"= 8 bytes, but 9 declared"),
        (blob_payload([entry(name=b"\xff\xfe")], b"\0" * 8), "not valid utf-8"),
        (blob_payload([entry(code=200)], b"\0" * 8), "unknown dtype code 200"),
        (blob_payload([entry(enc=9)], b"\0" * 8), "unknown encoding 9"),
        (blob_payload([entry(code=8, enc=1, nbytes=4)], b"\0" * 4), "needs a floating dtype"),
        (blob_payload([entry(), entry()], b"\0" * 16), "appears twice"),
        (blob_payload([entry()], b"\0" * 12), "declare 8 bytes but the frame carries 12"),
        (blob_payload([entry()], b"\0" * 4), "more bytes than"),
        (blob_payload([entry()], b"\0" * 8, ref=3), "nonzero reply reference"),
        (blob_payload([entry(shape=(1,) * 40)], b""), "40 dims"),
        (blob_payload([entry(enc=2, nbytes=2, quant=struct.pack("<dd", float("nan"), 0.0))], b"\0\0"),
         "unusable scale"),
        (blob_payload([entry(enc=2, nbytes=2, quant=struct.pack("<dd", 1e300, 0.0))], b"\0\0"), "unusable scale"),
        (PREFIX.pack(0, 10**6, 0), "declares 1000000 blobs"),
        (blob_payload([entry() + b"zz"], b"\0" * 8, count=1), "stray bytes"),
    ],
)
def test_malformed_blob_payloads(payload, message):
    e = first_error(data_frame(payload))
    assert isinstance(e, WireError)
    assert e.code == ErrorCode.PROTOCOL
    assert message.lower() in str(e).lower() or __import__("re").search(message, str(e))


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\xff\xfe", "not valid utf-8 JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b"{" * 5000, "not valid utf-8 JSON"),
        (json.dumps({"version": 7}).encode(), "version 7"),
        (json.dumps({"version": True}).encode(), "must be an integer"),
    ],
)
def test_malformed_hello(payload, message):
    e = first_error(join(encode_frame(FrameType.HELLO, 0, [payload])))
    assert message in str(e)


def test_hello_with_bad_fields():
    good = {"version": PROTOCOL_VERSION, "role": "sink", "layer": "l", "blobs": [["x", "float32", [2]]], "returns": [],
            "wire": "float32", "max_frame": 1 << 20, "window": 1, "checksum": True}
    for key, value, message in [
        ("role", "boss", "role"),
        ("layer", 5, "layer"),
        ("wire", "float8", "wire dtype"),
        ("checksum", 1, "checksum"),
        ("window", 0, "window"),
        ("max_frame", 10, "max_frame"),
        ("blobs", [["x", "complex64", [2]]], "unknown dtype"),
        ("blobs", [["x", "float32", [-1]]], "shape"),
        ("blobs", [["x", "float32", "2"]], "bad shape"),
        ("blobs", [["x", "float32", [2]], ["x", "float32", [2]]], "twice"),
        ("blobs", "x", "list"),
        ("blobs", [["x"]], "[name, dtype, shape]"),
        ("checksums", "xxh3", "checksums"),
        ("token", 7, "token"),
    ]:
        doc = dict(good, **{key: value})
        e = first_error(join(encode_frame(FrameType.HELLO, 0, [json.dumps(doc).encode()])))
        assert message in str(e), (key, str(e))


def test_error_frame_text_survives_bad_utf8():
    frame = join(encode_frame(FrameType.ERROR, 0, [struct.pack("<H", 3) + b"bad \xff text"]))
    dec = Decoder()
    dec.feed(frame)
    (ev,) = drain(dec)
    assert ev.code == 3 and ev.message.startswith("bad ")


def test_zero_size_and_scalar_blobs():
    blobs = {"empty": np.zeros((0, 3), np.float32), "scalar": np.array(2.5, np.float64), "u": np.zeros(0, np.uint8)}
    dec = Decoder()
    dec.feed(join(encode_data(0, blobs)))
    (ev,) = drain(dec)
    assert isinstance(ev, DataFrame)
    assert ev.blobs["empty"].shape == (0, 3) and ev.blobs["scalar"].shape == () and ev.blobs["scalar"] == 2.5


def test_unsupported_dtype_is_a_local_error():
    with pytest.raises(LocalProtocolError, match="complex"):
        encode_data(0, {"z": np.zeros(2, np.complex64)})
    with pytest.raises(LocalProtocolError, match="str"):
        encode_data(0, {1: np.zeros(2)})  # type: ignore[dict-item]
