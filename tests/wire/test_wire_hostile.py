"""Hostile input to the sans-I/O protocol: admission before allocation, no leaks, constant-time tokens.

Issue 9's findings, each as a test that fails on the code before the fix:
40 bytes before any HELLO made the decoder zero-fill a 256 MiB table, and a
reference cycle (failure -> exception -> traceback -> decoder) kept it alive.
"""
from __future__ import annotations

import gc
import struct
import tracemalloc
import weakref
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinycaffe.wire import Decoder, Endpoint, ErrorCode, Hello, ProtocolError, join, specs
from tinycaffe.wire.blobs import PREFIX
from tinycaffe.wire.header import CONTROL_MAX, DEFAULT_MAX_FRAME, FLAG_CRC, MAGIC, PROTOCOL_VERSION, FrameType
from tinycaffe.wire.hello import hello_bytes, payload_size

from .wire_helpers import examples

X = np.zeros((4, 8), np.float32)


def header(ftype: int, length: int, seq: int = 0, crc: int = 0, flags: int = FLAG_CRC) -> bytes:
    body = struct.pack("<4sBBHIQI", MAGIC, PROTOCOL_VERSION, ftype, flags, seq, length, crc)
    return body + struct.pack("<I", zlib.crc32(body))


def forty_bytes() -> bytes:
    """The finding: a DATA header at the frame limit and a 12-byte blob prefix announcing a huge table."""
    length = DEFAULT_MAX_FRAME
    return header(FrameType.DATA, length) + PREFIX.pack(0, 1, length - PREFIX.size)


def source_endpoint(token: bytes | None = None) -> Endpoint:
    hello = Hello("source", "cloud_in", specs({"x": X}), wire="any")
    return Endpoint(hello) if token is None else Endpoint(hello, token=token)


def peak_while(fn) -> int:
    """Peak bytes traced by tracemalloc while ``fn`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_forty_bytes_before_hello_allocate_nothing_big():
    assert len(forty_bytes()) == 40

    def attack():
        ep = source_endpoint()
        ep.feed(forty_bytes())
        with pytest.raises(ProtocolError):
            ep.next_event()

    peak = peak_while(attack)
    assert peak < 1 << 20, f"{peak} bytes"  # was 256 MiB


def test_a_bare_decoder_does_not_reserve_a_table_the_blob_count_cannot_fill():
    def attack():
        dec = Decoder()
        dec.feed(forty_bytes())
        with pytest.raises(ProtocolError, match="too long for 1 blobs"):
            dec.next_event()

    assert peak_while(attack) < 1 << 20


def test_a_failed_decoder_is_freed_without_the_garbage_collector():
    """No cycle failure -> exception -> traceback -> decoder: refcounting alone frees it (and its buffers)."""
    gc.disable()
    try:
        dec = Decoder()
        dec.feed(header(FrameType.HELLO, 100) + b"\x00" * 10 + b"XXXX")  # a bad body is not reached...
        dec.feed_eof()  # ...the stream ends mid-frame instead
        for _ in range(2):  # the failure, then "already failed"
            with pytest.raises(ProtocolError):
                dec.next_event()
        ref = weakref.ref(dec)
        del dec
        assert ref() is None
    finally:
        gc.enable()


def test_data_before_hello_is_refused_at_its_header():
    ep = source_endpoint()
    ep.feed(header(FrameType.DATA, 64))
    with pytest.raises(ProtocolError, match="DATA frame before HELLO"):
        ep.next_event()


def test_after_the_hello_the_frame_limit_is_what_the_client_declared():
    sink = Endpoint(Hello("sink", "edge", specs({"x": X})))
    source = source_endpoint()
    source.feed(join(sink.send_hello()))
    source.next_event()
    declared = payload_size(specs({"x": X}), sink.local.encoding)
    too_big = max(CONTROL_MAX, declared) + 1
    source.feed(header(FrameType.DATA, too_big, seq=1))
    with pytest.raises(ProtocolError, match="exceeds") as info:
        source.next_event()
    assert info.value.code == ErrorCode.TOO_LARGE


def test_a_source_with_a_token_refuses_a_hello_without_it():
    for sent in ("", "guess-42"):
        source = source_endpoint(token=b"s3cret")
        sink = Endpoint(Hello("sink", "edge", specs({"x": X}), token=sent))
        source.feed(join(sink.send_hello()))
        with pytest.raises(ProtocolError, match="refused") as info:
            source.next_event()
        assert info.value.code == ErrorCode.AUTH
        assert "s3cret" not in str(info.value) and (not sent or sent not in str(info.value))


def test_the_right_token_is_accepted_and_never_echoed():
    source = source_endpoint(token=b"s3cret")
    sink = Endpoint(Hello("sink", "edge", specs({"x": X}), token="s3cret"))
    assert b"s3cret" in join(sink.send_hello())
    source.feed(join(Endpoint(Hello("sink", "edge", specs({"x": X}), token="s3cret")).send_hello()))
    source.next_event()
    reply = join(source.send_hello())
    assert b"s3cret" not in reply
    assert "s3cret" not in repr(sink.local)  # not in logs either


def test_a_token_check_looks_at_nothing_else_first():
    """A wrong token is refused even when the blobs would not match: nothing about the net leaks."""
    source = source_endpoint(token=b"s3cret")
    sink = Endpoint(Hello("sink", "edge", specs({"other": np.zeros((9, 9), np.float32)})))
    source.feed(join(sink.send_hello()))
    with pytest.raises(ProtocolError) as info:
        source.next_event()
    assert info.value.code == ErrorCode.AUTH and "(9, 9)" not in str(info.value)


frame_types = st.sampled_from([int(t) for t in FrameType] + [0, 99])


@st.composite
def hostile_streams(draw) -> bytes:
    """A valid HELLO or none, then frames with arbitrary types, lengths, prefixes and bytes."""
    out = b""
    if draw(st.booleans()):
        out += join(Endpoint(Hello("sink", "edge", specs({"x": X}))).send_hello())
    for i in range(draw(st.integers(1, 3))):
        length = draw(st.one_of(
            st.integers(0, 4096),
            st.sampled_from([CONTROL_MAX + 1, DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME - 1, 1 << 40]),
            st.integers(0, 1 << 62),
        ))
        ftype = draw(st.one_of(st.sampled_from([FrameType.DATA, FrameType.RESULT]), frame_types))
        out += header(ftype, length, seq=i + 1)
        if draw(st.integers(0, 3)):  # usually a blob prefix follows
            # The blob count and table length a hostile peer picks: often "the whole frame".
            table = draw(st.one_of(st.just(max(length - PREFIX.size, 0) & 0xFFFFFFFF), st.integers(0, 5000),
                                   st.integers(0, (1 << 32) - 1)))
            out += PREFIX.pack(0, draw(st.integers(0, 5000)), table)
        out += draw(st.binary(max_size=200))
    return out


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_streams(), st.integers(1, 64))
def test_fuzz_the_decoder_never_allocates_beyond_what_the_hello_declared(stream, chunk):
    declared = payload_size(specs({"x": X}), Hello("sink", "e", ()).encoding)
    bound = 4 * max(CONTROL_MAX, declared) + (256 << 10)  # the frames it may take, plus bookkeeping

    def feed():
        ep = source_endpoint()
        try:
            for i in range(0, len(stream), chunk):
                ep.feed(stream[i : i + chunk])
                while True:
                    ev = ep.next_event()
                    if not hasattr(ev, "seq"):
                        break
            ep.feed_eof()
            ep.next_event()
        except ProtocolError:
            pass  # the only error hostile bytes may cause

    assert peak_while(feed) < bound


def test_the_hello_json_stays_small_before_admission():
    big = Hello("sink", "edge", specs([(f"b{i}", "float32", (1,) * 32) for i in range(4096)]))
    assert len(hello_bytes(big)) > CONTROL_MAX
    source = source_endpoint()
    source.feed(join(Endpoint(big).send_hello()))
    with pytest.raises(ProtocolError, match="exceeds"):
        source.next_event()
