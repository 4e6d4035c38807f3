"""Two in-memory Endpoints (no sockets): the conversation rules."""
from __future__ import annotations

import numpy as np
import pytest

from tinycaffe.wire import (
    CLOSED,
    AckFrame,
    ByeFrame,
    DataFrame,
    Endpoint,
    ErrorCode,
    ErrorFrame,
    Hello,
    HelloFrame,
    LocalProtocolError,
    ProtocolError,
    ResultFrame,
    encode_ack,
    encode_data,
    encode_error,
    join,
    specs,
)

from .wire_helpers import drain

X = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
PROB = np.full((2, 10), 0.1, np.float32)


def pair(window=1, source_window=None, returns=True, sink_shape=X.shape, **kw):
    sink = Endpoint(Hello("sink", "edge_cut", specs([("pool1", "float32", sink_shape)]),
                          returns=specs({"prob": PROB}) if returns else (), window=window, **kw))
    source = Endpoint(Hello("source", "cloud_in", specs({"pool1": X}), returns=specs({"prob": PROB}) if returns else (),
                            wire="any", window=window if source_window is None else source_window, **kw))
    return sink, source


def deliver(bufs, to: Endpoint):
    to.feed(join(bufs))
    return drain(to)


def handshake(sink, source):
    (h,) = deliver(sink.send_hello(), source)
    assert isinstance(h, HelloFrame) and h.hello.layer == sink.local.layer
    (h,) = deliver(source.send_hello(), sink)
    assert isinstance(h, HelloFrame) and sink.ready and source.ready


def test_full_exchange():
    sink, source = pair(window=2)
    handshake(sink, source)
    for i in range(3):
        seq, bufs = sink.send_data({"pool1": X + i})
        (d,) = deliver(bufs, source)
        assert isinstance(d, DataFrame) and d.seq == seq
        np.testing.assert_array_equal(d.blobs["pool1"], X + i)
        (a,) = deliver(source.send_ack(d.seq), sink)
        assert isinstance(a, AckFrame) and a.acked == seq
        (r,) = deliver(source.send_result(d.seq, {"prob": PROB * i}), sink)
        assert isinstance(r, ResultFrame) and r.ref == seq
        np.testing.assert_array_equal(r.blobs["prob"], PROB * i)
    assert sink.in_flight == 0 and sink.pending_results == 0
    (b,) = deliver(sink.send_bye(), source)
    assert isinstance(b, ByeFrame)
    (b,) = deliver(source.send_bye(), sink)
    assert isinstance(b, ByeFrame)
    assert sink.closed and source.closed
    assert sink.next_event() is CLOSED


def test_hello_shape_mismatch_names_both_layers_and_shapes():
    sink, source = pair(sink_shape=(2, 3, 8, 8))
    with pytest.raises(ProtocolError) as info:
        deliver(sink.send_hello(), source)
    msg = str(info.value)
    assert info.value.code == ErrorCode.MISMATCH
    for part in ("'pool1'", "cloud_in", "edge_cut", "(2, 3, 4, 4)", "(2, 3, 8, 8)"):
        assert part in msg, msg
    (err,) = deliver(source.send_error(info.value.code, msg), sink)
    assert isinstance(err, ErrorFrame) and err.code == ErrorCode.MISMATCH and err.message == msg
    assert sink.failed
    with pytest.raises(LocalProtocolError):
        sink.send_data({"pool1": X})


def test_hello_dtype_and_name_mismatch():
    sink = Endpoint(Hello("sink", "a", specs([("pool1", "float16", X.shape)])))
    source = Endpoint(Hello("source", "b", specs({"pool1": X})))
    with pytest.raises(ProtocolError, match=r"float32 \(2, 3, 4, 4\).*float16 \(2, 3, 4, 4\)"):
        deliver(sink.send_hello(), source)
    sink = Endpoint(Hello("sink", "a", specs({"conv1": X})))
    source = Endpoint(Hello("source", "b", specs({"pool1": X})))
    with pytest.raises(ProtocolError, match="expects blob 'pool1'.*has 'conv1'"):
        deliver(sink.send_hello(), source)


def test_hello_wire_and_frame_size_mismatch():
    sink = Endpoint(Hello("sink", "a", specs({"pool1": X}), wire="uint8"))
    source = Endpoint(Hello("source", "b", specs({"pool1": X}), wire="float16"))
    with pytest.raises(ProtocolError, match="wire dtype"):
        deliver(sink.send_hello(), source)
    big = np.zeros((1024, 1024), np.float32)
    sink = Endpoint(Hello("sink", "a", specs({"x": big})))
    source = Endpoint(Hello("source", "b", specs({"x": big}), max_frame=1 << 20))
    with pytest.raises(ProtocolError, match="max_frame") as info:
        deliver(sink.send_hello(), source)
    assert info.value.code == ErrorCode.TOO_LARGE


def test_both_sides_negotiate_the_smaller_window():
    sink, source = pair(window=3, source_window=2)
    handshake(sink, source)
    assert sink.window == source.window == 2


def test_window_1_refuses_a_second_data_before_the_ack():
    sink, source = pair(window=1)
    handshake(sink, source)
    seq, bufs = sink.send_data({"pool1": X})
    with pytest.raises(LocalProtocolError, match="window of 1 full"):
        sink.send_data({"pool1": X})
    (d,) = deliver(bufs, source)
    deliver(source.send_ack(d.seq), sink)
    sink.send_data({"pool1": X})  # room again


def test_a_frame_prepared_with_the_window_full_goes_out_once_the_ack_came():
    """prepare_data encodes (and checksums) the next DATA early; nothing changes until send_prepared."""
    sink, source = pair(window=1, returns=False)
    handshake(sink, source)
    _, bufs = sink.send_data({"pool1": X})
    prepared = sink.prepare_data({"pool1": X + 1})
    assert sink.in_flight == 1
    with pytest.raises(LocalProtocolError, match="window of 1 full"):
        sink.send_prepared(*prepared)
    (d,) = deliver(bufs, source)
    deliver(source.send_ack(d.seq), sink)
    seq, bufs2 = sink.send_prepared(*prepared)
    assert seq == d.seq + 1 and sink.in_flight == 1
    (d2,) = deliver(bufs2, source)
    np.testing.assert_array_equal(d2.blobs["pool1"], X + 1)


def test_a_stale_or_mismatched_prepared_frame_is_refused():
    sink, source = pair(window=2, returns=False)
    handshake(sink, source)
    early = sink.prepare_data({"pool1": X})
    sink.send_data({"pool1": X + 1})  # takes the seq the early frame was encoded with
    with pytest.raises(LocalProtocolError, match="stale"):
        sink.send_prepared(*early)
    with pytest.raises(LocalProtocolError, match="blob 'pool1'"):
        sink.prepare_data({"pool1": X[:1]})
    with pytest.raises(LocalProtocolError, match="only a sink"):
        source.prepare_data({"pool1": X})


def test_a_frame_prepared_before_the_source_said_bye_is_not_sent():
    sink, source = pair(window=1, returns=False)
    handshake(sink, source)
    prepared = sink.prepare_data({"pool1": X})
    deliver(source.send_bye(), sink)
    with pytest.raises(LocalProtocolError, match="source said BYE"):
        sink.send_prepared(*prepared)


def test_window_3_allows_three_in_flight():
    sink, source = pair(window=3, returns=False)
    handshake(sink, source)
    sent = [sink.send_data({"pool1": X}) for _ in range(3)]
    assert sink.in_flight == 3
    with pytest.raises(LocalProtocolError, match="window of 3 full"):
        sink.send_data({"pool1": X})
    frames = deliver([b for _, bufs in sent for b in bufs], source)
    assert [f.seq for f in frames] == [s for s, _ in sent]
    for f in frames:
        deliver(source.send_ack(f.seq), sink)
    assert sink.in_flight == 0


def test_source_refuses_a_sink_that_ignores_the_window():
    sink, source = pair(window=1, returns=False)
    handshake(sink, source)
    sink.window = 5  # a buggy peer
    bufs = [b for _ in range(2) for b in sink.send_data({"pool1": X})[1]]
    with pytest.raises(ProtocolError, match="window") as info:
        deliver(bufs, source)
    assert info.value.code == ErrorCode.WINDOW


def test_duplicated_frame_is_an_error():
    sink, source = pair(returns=False)
    handshake(sink, source)
    seq, bufs = sink.send_data({"pool1": X})
    frame = join(bufs)
    (d,) = deliver([frame], source)
    deliver(source.send_ack(d.seq), sink)
    with pytest.raises(ProtocolError, match="duplicated") as info:
        deliver([frame], source)
    assert info.value.code == ErrorCode.SEQUENCE


def test_skipped_frame_is_an_error():
    sink, source = pair(returns=False)
    handshake(sink, source)
    with pytest.raises(ProtocolError, match="seq 5, expected 1"):
        deliver(encode_data(5, {"pool1": X}), source)


def test_an_error_frame_is_reported_even_after_a_skipped_number():
    # A server interrupted between numbering a RESULT and sending it sends its ERROR with
    # the next number; the client must still hear why it stopped.
    sink, source = pair(returns=False)
    handshake(sink, source)
    # The source numbered a frame 1 that never left; its ERROR comes as 2.
    (e,) = deliver(encode_error(2, ErrorCode.APPLICATION, "server interrupted"), sink)
    assert isinstance(e, ErrorFrame) and e.seq == 2 and "server interrupted" in e.message


def test_ack_for_the_wrong_seq_is_an_error():
    sink, source = pair(returns=False)
    handshake(sink, source)
    sink.send_data({"pool1": X})
    with pytest.raises(ProtocolError, match="ACK of seq 9"):
        deliver(encode_ack(1, 9), sink)


def test_result_before_ack_is_an_error():
    sink, source = pair()
    handshake(sink, source)
    seq, bufs = sink.send_data({"pool1": X})
    (d,) = deliver(bufs, source)
    with pytest.raises(LocalProtocolError, match="ACK DATA seq"):
        source.send_result(d.seq, {"prob": PROB})


def test_result_blobs_are_checked():
    sink, source = pair()
    handshake(sink, source)
    seq, bufs = sink.send_data({"pool1": X})
    (d,) = deliver(bufs, source)
    deliver(source.send_ack(d.seq), sink)
    with pytest.raises(LocalProtocolError, match="'prob' is float32 \\(3, 10\\), expected float32 \\(2, 10\\)"):
        source.send_result(d.seq, {"prob": np.zeros((3, 10), np.float32)})


def test_sent_data_is_checked_against_the_hello():
    sink, source = pair()
    handshake(sink, source)
    with pytest.raises(LocalProtocolError, match="expected float32 \\(2, 3, 4, 4\\)"):
        sink.send_data({"pool1": X[:1]})
    with pytest.raises(LocalProtocolError, match="carries blobs"):
        sink.send_data({"pool2": X})


def test_received_data_is_checked_against_the_hello():
    sink, source = pair(returns=False)
    handshake(sink, source)
    with pytest.raises(ProtocolError, match="expected float32 \\(2, 3, 4, 4\\)") as info:
        deliver(encode_data(1, {"pool1": X[:1]}), source)
    assert info.value.code == ErrorCode.MISMATCH


def test_nothing_before_hello():
    sink, source = pair(returns=False)
    with pytest.raises(LocalProtocolError, match="HELLO"):
        sink.send_data({"pool1": X})
    with pytest.raises(LocalProtocolError, match="after the sink's"):
        source.send_hello()
    with pytest.raises(ProtocolError, match="before HELLO"):
        deliver(encode_data(0, {"pool1": X}), source)


def test_bye_with_unacked_data_is_an_error():
    sink, source = pair(returns=False)
    handshake(sink, source)
    sink.send_data({"pool1": X})
    with pytest.raises(ProtocolError, match="1 DATA un-ACKed"):
        deliver(source.send_bye(), sink)


def test_source_cannot_say_bye_with_work_pending():
    sink, source = pair()
    handshake(sink, source)
    _, bufs = sink.send_data({"pool1": X})
    deliver(bufs, source)
    with pytest.raises(LocalProtocolError, match="BYE"):
        source.send_bye()


def test_close_without_bye_is_an_error():
    sink, source = pair()
    handshake(sink, source)
    source.feed_eof()
    with pytest.raises(ProtocolError, match="without BYE"):
        source.next_event()


@pytest.mark.parametrize(
    "sink_crc, source_crc, sink_algos, source_algos, used, flag",
    [
        (True, True, ("xxh3", "crc32"), ("xxh3", "crc32"), "xxh3", 2),
        (False, True, ("xxh3", "crc32"), ("xxh3", "crc32"), "xxh3", 2),
        (True, True, ("crc32",), ("xxh3", "crc32"), "crc32", 1),  # a peer without xxhash
        (True, True, ("xxh3", "crc32"), ("crc32",), "crc32", 1),
        (False, False, ("xxh3", "crc32"), ("xxh3", "crc32"), False, 0),
    ],
)
def test_checksum_negotiation(sink_crc, source_crc, sink_algos, source_algos, used, flag):
    pytest.importorskip("xxhash")
    sink = Endpoint(Hello("sink", "a", specs({"pool1": X}), checksum=sink_crc, checksums=sink_algos))
    source = Endpoint(Hello("source", "b", specs({"pool1": X}), checksum=source_crc, checksums=source_algos))
    handshake(sink, source)
    assert sink.checksum == source.checksum == used
    _, bufs = sink.send_data({"pool1": X})
    assert join(bufs)[6] & 3 == flag  # FLAG_CRC (1) or FLAG_XXH3 (2) in the header's flags
    (d,) = deliver(bufs, source)
    np.testing.assert_array_equal(d.blobs["pool1"], X)


def test_a_damaged_payload_fails_its_xxh3_checksum():
    pytest.importorskip("xxhash")
    sink, source = pair(returns=False)
    handshake(sink, source)
    assert sink.checksum == "xxh3"
    _, bufs = sink.send_data({"pool1": X})
    raw = bytearray(join(bufs))
    raw[-5] ^= 0x10
    with pytest.raises(ProtocolError, match="checksum mismatch") as info:
        deliver([bytes(raw)], source)
    assert info.value.code == ErrorCode.CHECKSUM


def test_data_lands_in_endpoint_targets():
    sink, source = pair(returns=False)
    handshake(sink, source)
    target = np.empty_like(X)
    source.targets = {"pool1": target}
    _, bufs = sink.send_data({"pool1": X})
    (d,) = deliver(bufs, source)
    assert d.blobs["pool1"] is target
    np.testing.assert_array_equal(target, X)


def test_uint8_wire_between_endpoints():
    sink = Endpoint(Hello("sink", "a", specs({"pool1": X}), wire="uint8"))
    source = Endpoint(Hello("source", "b", specs({"pool1": X}), wire="any"))
    handshake(sink, source)
    _, bufs = sink.send_data({"pool1": X})
    assert sum(len(b) for b in bufs) < X.nbytes / 2
    (d,) = deliver(bufs, source)
    assert d.blobs["pool1"].dtype == np.float32
    assert np.max(np.abs(d.blobs["pool1"] - X)) <= (X.max() - X.min()) / 255 / 2 * 1.001
