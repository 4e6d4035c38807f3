"""The decoder's fast path (a frame's leading stages parsed straight from buffered bytes)
must behave exactly like the stage-by-stage path: same events, same errors, same state
after every chunk, for any split of the stream, truncated or corrupted."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinycaffe.wire import (
    HEADER_SIZE,
    NEED_DATA,
    Decoder,
    ErrorCode,
    FrameType,
    ProtocolError,
    encode_ack,
    encode_data,
    join,
)
from tinycaffe.wire.frames import (
    AckFrame,
    ByeFrame,
    DataFrame,
    ErrorFrame,
    HelloFrame,
    ResultFrame,
)

from .wire_helpers import blob_sets, examples, frame_lists, resigned_damage

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _describe(ev) -> tuple:
    """A comparable description of an event, arrays included byte for byte."""
    if isinstance(ev, (DataFrame, ResultFrame)):
        blobs = tuple((k, a.dtype.str, a.shape, a.tobytes()) for k, a in ev.blobs.items())
        return (type(ev).__name__, ev.seq, getattr(ev, "ref", None), blobs)
    if isinstance(ev, HelloFrame):
        return ("hello", ev.seq, repr(ev.hello))
    return (repr(ev),)  # ACK, ERROR, BYE (plain dataclasses), NEED_DATA, CLOSED


def _run(fast: bool, stream: bytes, cuts: list[int], eof: bool, targets=None, require=False,
         max_frame: int = 1 << 20, expect=None) -> list[tuple]:
    """Feed ``stream`` cut at ``cuts``; the log of everything observable, up to the first error."""
    dec = Decoder(max_frame, targets=targets, require_checksum=require)
    dec.fast_path = fast
    dec.expect = expect
    log: list[tuple] = []
    last = 0
    try:
        for c in [*cuts, len(stream)]:
            dec.feed(stream[last:c])
            last = c
            while True:
                ev = dec.next_event()
                log.append(_describe(ev))
                if ev is NEED_DATA:
                    break
                if not isinstance(ev, (DataFrame, ResultFrame, HelloFrame, AckFrame, ErrorFrame, ByeFrame)):
                    break  # CLOSED
            view = dec.direct_view()
            log.append(("state", dec.mid_frame, None if view is None else len(view)))
        if eof:
            dec.feed_eof()
            log.append(_describe(dec.next_event()))
    except ProtocolError as e:
        log.append(("error", str(e), e.code))
        try:
            dec.next_event()
        except ProtocolError as again:  # a failed decoder stays failed, with the same text
            log.append(("again", str(again)))
    return log


def _cuts(data, n: int) -> list[int]:
    return sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))


def _both(stream: bytes, cuts: list[int], eof: bool, **kw) -> list[tuple]:
    fast = _run(True, stream, cuts, eof, **kw)
    slow = _run(False, stream, cuts, eof, **kw)
    assert fast == slow
    return fast


@SETTINGS
@given(frame_lists(), st.data())
def test_same_events_for_any_split(frames, data):
    stream = b"".join(b for _, b in frames)
    log = _both(stream, _cuts(data, len(stream)), data.draw(st.booleans()))
    assert not any(e[0] == "error" for e in log)


@SETTINGS
@given(frame_lists(), st.data())
def test_same_refusals_under_limits(frames, data):
    """A frame-size limit, a required checksum and a handshake-only ``expect`` refuse alike."""
    stream = b"".join(b for _, b in frames)
    expect = data.draw(st.sampled_from([None, frozenset({FrameType.HELLO, FrameType.ERROR}),
                                        frozenset({FrameType.DATA, FrameType.ACK})]))
    _both(stream, _cuts(data, len(stream)), data.draw(st.booleans()), require=data.draw(st.booleans()),
          max_frame=data.draw(st.integers(0, 400)), expect=expect)


@SETTINGS
@given(frame_lists(), st.data())
def test_same_outcome_when_truncated(frames, data):
    stream = b"".join(b for _, b in frames)
    stream = stream[: data.draw(st.integers(0, len(stream)))]
    _both(stream, _cuts(data, len(stream)), True)


@SETTINGS
@given(frame_lists(max_frames=3), st.data())
def test_same_error_when_bytes_are_corrupted(frames, data):
    stream = bytearray(b"".join(b for _, b in frames))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(stream) - 1))
        stream[i] = data.draw(st.integers(0, 255))
    stream = bytes(stream)
    _both(stream, _cuts(data, len(stream)), data.draw(st.booleans()), require=data.draw(st.booleans()))


@SETTINGS
@given(blob_sets(max_blobs=3), st.data())
def test_same_error_for_a_damaged_blob_table_with_a_valid_checksum(blobs, data):
    """Re-signed payload damage reaches the prefix and table checks of both paths."""
    stream = resigned_damage(blobs, data) * 2
    _both(stream, _cuts(data, len(stream)), True)


@SETTINGS
@given(blob_sets(dtypes=[np.float32, np.int32, np.uint8], max_blobs=3), st.data())
def test_same_landing_into_targets(blobs, data):
    """Preallocated targets are used (or not) the same way by both paths."""
    stream = join(encode_data(0, blobs)) + join(encode_data(1, blobs))
    targets = {k: np.empty_like(a) for k, a in blobs.items()}
    _both(stream, _cuts(data, len(stream)), True, targets=targets)


def test_the_fast_path_is_taken_for_buffered_frames(monkeypatch):
    """Guards the equivalence tests above against comparing the general path with itself."""
    calls = []
    real = Decoder._fast_frame

    def spy(self, *a):
        calls.append(1)
        return real(self, *a)

    monkeypatch.setattr(Decoder, "_fast_frame", spy)
    stream = join(encode_data(0, {"x": np.ones((2, 3), np.float32)})) + join(encode_ack(1, 0))
    for fast in (True, False):
        calls.clear()
        dec = Decoder(require_checksum=False)
        dec.fast_path = fast
        dec.feed(stream)
        assert isinstance(dec.next_event(), DataFrame)
        assert isinstance(dec.next_event(), AckFrame)
        assert len(calls) == (2 if fast else 0)


def test_parse_header_refuses_a_short_header():
    from tinycaffe.wire.header import parse_header

    head = join(encode_ack(0, 0))[:HEADER_SIZE]
    assert parse_header(head, 1 << 20).ftype == FrameType.ACK
    with pytest.raises(ProtocolError, match="shorter than 28"):
        parse_header(head[:-1], 1 << 20)
    with pytest.raises(ProtocolError, match="bad magic"):
        parse_header(b"XCF1" + head[4:-1], 1 << 20)
    with pytest.raises(ProtocolError, match="unsupported protocol version") as e:
        parse_header(head[:4] + bytes([99]) + head[5:], 1 << 20)
    assert e.value.code == ErrorCode.VERSION
