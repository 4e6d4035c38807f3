"""The wire between an edge Sink layer and a cloud Source layer.

Layers:

* sans-I/O codec -- :mod:`header`, :mod:`blobs`, :mod:`hello`, :mod:`encode`,
  :mod:`codec` (``Decoder``), :mod:`quant`, and the :class:`Endpoint` state machine;
* I/O -- :mod:`transport` (TCP or TLS, deadlines for whole exchanges,
  :mod:`pacing` for emulated bandwidth), :mod:`session` (``SinkSession``, and the
  one-client ``SourceServer``/``SourceSession`` of a standalone Source layer) and
  :mod:`resilient` (``ResilientSink``: reconnect and resend).

The many-client server that owns connections is :mod:`tinycaffe.serve`; payload
checksums are in :mod:`checksum` (XXH3 when both sides have ``xxhash``, else CRC32).
"""
from tinycaffe.wire.codec import Decoder
from tinycaffe.wire.dtypes import Encoding, parse_wire
from tinycaffe.wire.encode import (
    encode_ack,
    encode_bye,
    encode_data,
    encode_error,
    encode_frame,
    encode_hello,
    encode_result,
    join,
)
from tinycaffe.wire.endpoint import Endpoint
from tinycaffe.wire.errors import ErrorCode, LocalProtocolError, PeerError, ProtocolError, TransportError
from tinycaffe.wire.frames import (
    CLOSED,
    NEED_DATA,
    AckFrame,
    ByeFrame,
    DataFrame,
    ErrorFrame,
    Frame,
    HelloFrame,
    ResultFrame,
)
from tinycaffe.wire.header import DEFAULT_MAX_FRAME, HEADER_SIZE, MAGIC, PROTOCOL_VERSION, FrameType
from tinycaffe.wire.hello import BlobSpec, Hello, specs, wanted
from tinycaffe.wire.pacing import Pacer, parse_rate
from tinycaffe.wire.quant import dequantize_u8, quantize_u8
from tinycaffe.wire.resilient import ResilientSink
from tinycaffe.wire.session import SinkSession, SourceServer, SourceSession
from tinycaffe.wire.transport import Transport, accept, connect, listen

__all__ = [
    "AckFrame", "BlobSpec", "ByeFrame", "CLOSED", "DEFAULT_MAX_FRAME", "DataFrame", "Decoder",
    "Encoding", "Endpoint", "ErrorCode", "ErrorFrame", "Frame", "FrameType", "HEADER_SIZE",
    "Hello", "HelloFrame", "LocalProtocolError", "MAGIC", "NEED_DATA", "PROTOCOL_VERSION",
    "Pacer", "PeerError", "ProtocolError", "ResilientSink", "ResultFrame", "SinkSession", "SourceServer",
    "SourceSession", "Transport", "TransportError", "accept", "connect", "dequantize_u8",
    "encode_ack", "encode_bye", "encode_data", "encode_error", "encode_frame", "encode_hello",
    "encode_result", "join", "listen", "parse_rate", "parse_wire", "quantize_u8", "specs", "wanted",
]
