"""The HELLO's optional ``cut`` field: sent only when set, read back, bounded."""
from __future__ import annotations

import json

import pytest

from tinycaffe.wire.errors import LocalProtocolError, ProtocolError
from tinycaffe.wire.hello import Hello, hello_bytes, parse_hello, specs


def sink(**kw) -> Hello:
    return Hello("sink", "edge", specs([("pool1", "float32", (2, 4, 4, 4))]), **kw)


def test_cut_round_trips():
    assert parse_hello(hello_bytes(sink(cut="pool1"))).cut == "pool1"


def test_no_cut_sends_no_field():
    # A HELLO without a cut is byte for byte what version-2 peers before the field sent.
    assert "cut" not in json.loads(hello_bytes(sink()))
    assert parse_hello(hello_bytes(sink())).cut == ""


def test_bad_cut_field_is_a_protocol_error():
    doc = json.loads(hello_bytes(sink()))
    doc["cut"] = 7
    with pytest.raises(ProtocolError, match="cut"):
        parse_hello(json.dumps(doc).encode())
    doc["cut"] = "x" * 2000
    with pytest.raises(ProtocolError, match="cut"):
        parse_hello(json.dumps(doc).encode())
    with pytest.raises(LocalProtocolError, match="cut"):
        sink(cut="x" * 2000)
