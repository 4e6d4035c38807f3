"""The events a Decoder produces: one class per frame type, plus two sentinels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tinycaffe.wire.header import FrameType
from tinycaffe.wire.hello import Hello


class _Sentinel:
    """A named singleton returned instead of a frame."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: More bytes are needed before the next frame is whole.
NEED_DATA = _Sentinel("NEED_DATA")
#: The stream ended cleanly (after a BYE, or at a frame boundary at EOF).
CLOSED = _Sentinel("CLOSED")


@dataclass(slots=True)
class Frame:
    """Base of every frame; ``seq`` is the sender's per-direction frame counter."""

    ftype: ClassVar[FrameType]
    seq: int


@dataclass(slots=True)
class HelloFrame(Frame):
    """The peer's declaration (see :class:`~tinycaffe.wire.hello.Hello`)."""

    ftype: ClassVar[FrameType] = FrameType.HELLO
    hello: Hello


@dataclass(slots=True, eq=False)
class DataFrame(Frame):
    """Blobs sent by the sink; arrays are owned by the receiver (or are its targets)."""

    ftype: ClassVar[FrameType] = FrameType.DATA
    blobs: dict[str, np.ndarray]


@dataclass(slots=True, eq=False)
class ResultFrame(Frame):
    """Blobs sent back by the source; ``ref`` is the seq of the DATA frame answered."""

    ftype: ClassVar[FrameType] = FrameType.RESULT
    ref: int
    blobs: dict[str, np.ndarray]


@dataclass(slots=True)
class AckFrame(Frame):
    """The receiver got DATA frame ``acked`` whole."""

    ftype: ClassVar[FrameType] = FrameType.ACK
    acked: int


@dataclass(slots=True)
class ErrorFrame(Frame):
    """The peer refuses to go on; ``code`` is an ErrorCode value (or a newer one)."""

    ftype: ClassVar[FrameType] = FrameType.ERROR
    code: int
    message: str


@dataclass(slots=True)
class ByeFrame(Frame):
    """The peer will send nothing more."""

    ftype: ClassVar[FrameType] = FrameType.BYE


Event = Frame | _Sentinel
