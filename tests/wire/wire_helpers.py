"""Shared strategies and helpers of the wire tests."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinycaffe.wire import (
    CLOSED,
    NEED_DATA,
    AckFrame,
    ByeFrame,
    DataFrame,
    Decoder,
    ErrorFrame,
    Frame,
    HelloFrame,
    ResultFrame,
    encode_ack,
    encode_bye,
    encode_data,
    encode_error,
    encode_hello,
    encode_frame,
    encode_result,
    join,
)
from tinycaffe.wire.header import HEADER_SIZE, FrameType
from tinycaffe.wire.hello import BlobSpec, Hello


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled by $WIRE_FUZZ_SCALE for a longer soak run."""
    return max(1, int(n * float(os.environ.get("WIRE_FUZZ_SCALE", "1"))))


DTYPES = [np.float32, np.float16, np.float64, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32,
          np.int64, np.uint64]

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def blob_sets(draw: Any, dtypes: list = DTYPES, max_blobs: int = 4) -> dict[str, np.ndarray]:
    """A dict of 0..max_blobs named arrays of random dtype and shape."""
    keys = draw(st.lists(names, max_size=max_blobs, unique=True))
    return {k: draw(hnp.arrays(draw(st.sampled_from(dtypes)), shapes)) for k in keys}


hellos = st.builds(
    Hello,
    role=st.sampled_from(["sink", "source"]),
    layer=names,
    blobs=st.lists(st.builds(BlobSpec, names, st.sampled_from(["float32", "uint8"]),
                             st.tuples(st.integers(0, 9), st.integers(0, 9))),
                   max_size=3, unique_by=lambda b: b.name).map(tuple),
    window=st.integers(1, 8),
    checksum=st.booleans(),
)


@st.composite
def frame_lists(draw: Any, max_frames: int = 5, checksums: Any = None) -> list[tuple[Frame, bytes]]:
    """(expected frame, its bytes) for a random sequence of frames (exact RAW blobs)."""
    if checksums is None:
        from tinycaffe.wire.checksum import available

        checksums = st.sampled_from([False, True, *available()])  # none, CRC32, and XXH3 where xxhash is there
    out: list[tuple[Frame, bytes]] = []
    for seq in range(draw(st.integers(1, max_frames))):
        kind = draw(st.sampled_from(["hello", "data", "result", "ack", "error", "bye"]))
        checksum = draw(checksums)
        if kind == "hello":
            h = draw(hellos)
            out.append((HelloFrame(seq, h), join(encode_hello(seq, h))))
        elif kind == "data":
            b = draw(blob_sets())
            out.append((DataFrame(seq, b), join(encode_data(seq, b, checksum=checksum))))
        elif kind == "result":
            b, ref = draw(blob_sets()), draw(st.integers(0, 2**32 - 1))
            out.append((ResultFrame(seq, ref, b), join(encode_result(seq, ref, b, checksum=checksum))))
        elif kind == "ack":
            a = draw(st.integers(0, 2**32 - 1))
            out.append((AckFrame(seq, a), join(encode_ack(seq, a, checksum=checksum))))
        elif kind == "error":
            code, msg = draw(st.integers(0, 65535)), draw(st.text(st.characters(blacklist_categories=("Cs",)),
                                                                   max_size=30))
            out.append((ErrorFrame(seq, code, msg), join(encode_error(seq, code, msg, checksum=checksum))))
        else:
            out.append((ByeFrame(seq), join(encode_bye(seq, checksum=checksum))))
            break  # nothing may follow a BYE
    return out


def same_frame(got: Frame, want: Frame) -> bool:
    """Frame equality that compares blob dicts array by array (dtype, shape, bits)."""
    if type(got) is not type(want) or got.seq != want.seq:
        return False
    if isinstance(want, (DataFrame, ResultFrame)):
        if isinstance(want, ResultFrame) and got.ref != want.ref:  # type: ignore[union-attr]
            return False
        gb, wb = got.blobs, want.blobs  # type: ignore[union-attr]
        if list(gb) != list(wb):
            return False
        for k in wb:
            w = np.asarray(wb[k])
            if gb[k].dtype != w.dtype.newbyteorder("<") or gb[k].shape != w.shape:
                return False
            if gb[k].tobytes() != np.ascontiguousarray(w, dtype=w.dtype.newbyteorder("<")).tobytes():
                return False
        return True
    return got == want


def drain(dec: Decoder, limit: int = 10_000) -> list[Frame]:
    """All whole frames now available; the loop is bounded so a bug cannot hang a test."""
    out = []
    for _ in range(limit):
        ev = dec.next_event()
        if ev is NEED_DATA or ev is CLOSED:
            return out
        out.append(ev)
    raise AssertionError("decoder produced too many events")


def no_checksum(dec: Decoder) -> Decoder:
    """A decoder that also accepts frames sent without a CRC."""
    dec.require_checksum = False
    return dec


class Worker:
    """Run ``fn`` in a daemon thread; ``result()`` joins (bounded) and re-raises."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as e:  # handed to the test thread
                self._error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 10.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("worker thread did not finish in time")
        if self._error is not None:
            raise self._error
        return self._value



def resigned_damage(blobs: dict[str, np.ndarray], data: Any) -> bytes:
    """A DATA frame whose payload (blob prefix, table, data) has 1-4 bytes damaged and is
    cut short at a drawn length, then signed with a valid checksum: it gets past the
    checksum and reaches the payload parser."""
    payload = bytearray(join(encode_data(0, blobs))[HEADER_SIZE:])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    return join(encode_frame(FrameType.DATA, 0, [bytes(payload[:cut])]))
