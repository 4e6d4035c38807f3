"""The HELLO handshake: what each side declares, its JSON form, and the match.

The sink (client) says which blobs it sends; the source (server) says which
blobs it expects. The source refuses a HELLO that does not match, with a
message naming both layers and both shapes.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tinycaffe.wire.blobs import MAX_BLOBS, MAX_NAME, MAX_NDIM
from tinycaffe.wire.checksum import CRC32, XXH3, available
from tinycaffe.wire.dtypes import WIRE_NAMES, Encoding, code_dtype, encoding_for, parse_wire, wire_dtype
from tinycaffe.wire.errors import ErrorCode, LocalProtocolError, ProtocolError
from tinycaffe.wire.header import DEFAULT_MAX_FRAME, PROTOCOL_VERSION

ROLES = ("sink", "source")
ANY = "any"  # dtype of a blob asked for by name, shape to be taken from the peer
_DTYPE_NAMES = {str(dt) for dt in (code_dtype(c) for c in range(1, 64)) if dt is not None}
_MIN_MAX_FRAME = 1024
_MAX_WINDOW = 1 << 16
MAX_TOKEN = 1024


@dataclass(frozen=True, slots=True)
class BlobSpec:
    """Name, logical dtype name (e.g. "float32") and shape of one blob."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def of(cls, name: str, array: np.ndarray) -> BlobSpec:
        """The spec of an existing array."""
        return cls(name, str(np.dtype(array.dtype).newbyteorder("=")), tuple(int(d) for d in array.shape))

    def describe(self) -> str:
        return f"{self.dtype} {self.shape}"


@dataclass(frozen=True, slots=True)
class Hello:
    """What one side declares in its HELLO.

    ``blobs``: the sink's sent blobs / the source's expected blobs.
    ``returns``: blobs the source sends back in RESULT frames (``return_top``);
    the sink lists the ones it expects. ``wire``: how this side encodes the
    blobs it sends ("float32" exact, "float16", "uint8"); a source may say
    "any". ``max_frame``: the largest payload this side accepts. ``window``:
    un-ACKed DATA frames allowed in flight (the smaller of both sides wins).
    ``checksum``: CRC32 on payloads (used when either side asks for it).
    ``checksums``: the payload checksums this side can check, fastest first.
    ``token``: the sink's shared secret for a server that asks for one
    (never printed, never sent back by a source). ``cut``: a sink may name
    the last layer it runs (as ``split --after`` takes it) for a server that
    holds the whole net and runs any suffix (``serve --any-cut``); empty: the
    server's own cut. An optional field: peers that predate it ignore it.
    """

    role: str
    layer: str
    blobs: tuple[BlobSpec, ...]
    returns: tuple[BlobSpec, ...] = ()
    wire: str = "float32"
    max_frame: int = DEFAULT_MAX_FRAME
    window: int = 1
    checksum: bool = True
    version: int = field(default=PROTOCOL_VERSION)
    token: str = field(default="", repr=False, compare=False)
    checksums: tuple[str, ...] = field(default_factory=available)
    cut: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise LocalProtocolError(f"HELLO role must be 'sink' or 'source', not {self.role!r}")
        if self.wire != "any":
            parse_wire(self.wire)
        if not (isinstance(self.window, int) and 1 <= self.window <= _MAX_WINDOW):
            raise LocalProtocolError(f"window must be an int in 1..{_MAX_WINDOW}, not {self.window!r}")
        if not (isinstance(self.max_frame, int) and self.max_frame >= _MIN_MAX_FRAME):
            raise LocalProtocolError(f"max_frame must be an int >= {_MIN_MAX_FRAME}, not {self.max_frame!r}")
        if not isinstance(self.cut, str) or len(self.cut.encode("utf-8", "surrogatepass")) > MAX_NAME:
            raise LocalProtocolError(f"cut must be a layer name of at most {MAX_NAME} bytes, not {self.cut!r:.80}")

    @property
    def encoding(self) -> Encoding:
        """The encoding this side uses for the blobs it sends."""
        return Encoding.RAW if self.wire == "any" else parse_wire(self.wire)

    def with_(self, **changes: Any) -> Hello:
        """A copy with some fields changed."""
        return replace(self, **changes)


def wanted(names: Iterable[str]) -> tuple[BlobSpec, ...]:
    """Specs that ask for blobs by name only (dtype "any"): a sink's ``return_top``,
    whose shapes the source's HELLO then supplies."""
    return tuple(BlobSpec(n, ANY, ()) for n in names)


def specs(blobs: Mapping[str, np.ndarray] | Iterable[tuple[str, str, Iterable[int]]]) -> tuple[BlobSpec, ...]:
    """BlobSpecs from a dict of arrays or from (name, dtype, shape) triples."""
    if isinstance(blobs, Mapping):
        return tuple(BlobSpec.of(n, a) for n, a in blobs.items())
    return tuple(BlobSpec(n, str(np.dtype(d)), tuple(int(x) for x in s)) for n, d, s in blobs)


def payload_size(blobs: Iterable[BlobSpec], encoding: Encoding) -> int:
    """An upper bound of the DATA/RESULT payload bytes for these blobs."""
    total = 12
    for b in blobs:
        dt = np.dtype(b.dtype)
        enc = encoding_for(dt, encoding)
        total += 2 + len(b.name.encode("utf-8")) + 6 + 4 * len(b.shape) + 16 + 8
        total += math.prod(b.shape) * wire_dtype(dt, enc).itemsize
    return total


def hello_bytes(h: Hello) -> bytes:
    """The HELLO payload (compact JSON, utf-8)."""
    doc = {
        "version": h.version,
        "role": h.role,
        "layer": h.layer,
        "blobs": [[b.name, b.dtype, list(b.shape)] for b in h.blobs],
        "returns": [[b.name, b.dtype, list(b.shape)] for b in h.returns],
        "wire": h.wire,
        "max_frame": h.max_frame,
        "window": h.window,
        "checksum": h.checksum,
    }
    doc["checksums"] = list(h.checksums)
    if h.token:
        doc["token"] = h.token
    if h.cut:
        doc["cut"] = h.cut
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    # bool is an int subclass: refuse it explicitly.
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProtocolError(f"HELLO field {what} must be an integer in {lo}..{hi}, got {v!r}")
    return v


def _spec_list(v: Any, what: str) -> tuple[BlobSpec, ...]:
    if not isinstance(v, list) or len(v) > MAX_BLOBS:
        raise ProtocolError(f"HELLO field {what} must be a list of at most {MAX_BLOBS} blobs")
    out = []
    seen: set[str] = set()
    for item in v:
        if not (isinstance(item, list) and len(item) == 3):
            raise ProtocolError(f"HELLO field {what} entries must be [name, dtype, shape], got {item!r:.80}")
        name, dtype, shape = item
        if not isinstance(name, str) or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
            raise ProtocolError(f"HELLO field {what} has a bad blob name {name!r:.80}")
        if name in seen:
            raise ProtocolError(f"HELLO field {what} names blob {name!r:.80} twice")
        seen.add(name)
        if dtype not in _DTYPE_NAMES and dtype != ANY:
            raise ProtocolError(f"HELLO blob {name!r} has unknown dtype {dtype!r:.40}")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM:
            raise ProtocolError(f"HELLO blob {name!r} has a bad shape {shape!r:.80}")
        out.append(BlobSpec(name, dtype, tuple(_int(d, f"{name} shape", 0, 0xFFFFFFFF) for d in shape)))
    return tuple(out)


def parse_hello(payload: bytes | bytearray | memoryview) -> Hello:
    """Parse and validate a HELLO payload; any defect is a ProtocolError."""
    try:
        doc = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"HELLO payload is not valid utf-8 JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("HELLO payload must be a JSON object")
    version = _int(doc.get("version"), "version", 0, 255)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"peer speaks protocol version {version}, this side {PROTOCOL_VERSION}", ErrorCode.VERSION
        )
    role, layer, wire, checksum = doc.get("role"), doc.get("layer"), doc.get("wire"), doc.get("checksum")
    if role not in ROLES:
        raise ProtocolError(f"HELLO role must be 'sink' or 'source', got {role!r:.40}")
    if not isinstance(layer, str):
        raise ProtocolError("HELLO field layer must be a string")
    if wire != "any" and wire not in WIRE_NAMES:
        raise ProtocolError(f"HELLO has unknown wire dtype {wire!r:.40}")
    if not isinstance(checksum, bool):
        raise ProtocolError("HELLO field checksum must be true or false")
    algos = doc.get("checksums", [CRC32])
    if not isinstance(algos, list) or len(algos) > 8 or not all(isinstance(a, str) for a in algos):
        raise ProtocolError("HELLO field checksums must be a short list of names")
    token = doc.get("token", "")
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise ProtocolError(f"HELLO field token must be a string of at most {MAX_TOKEN} characters")
    cut = doc.get("cut", "")
    if not isinstance(cut, str) or len(cut.encode("utf-8", "surrogatepass")) > MAX_NAME:
        raise ProtocolError(f"HELLO field cut must be a layer name of at most {MAX_NAME} bytes, got {cut!r:.80}")
    return Hello(
        role=role,
        layer=layer,
        blobs=_spec_list(doc.get("blobs"), "blobs"),
        returns=_spec_list(doc.get("returns", []), "returns"),
        wire=wire,
        max_frame=_int(doc.get("max_frame"), "max_frame", _MIN_MAX_FRAME, 1 << 62),
        window=_int(doc.get("window"), "window", 1, _MAX_WINDOW),
        checksum=checksum,
        version=version,
        token=token,
        checksums=tuple(a for a in algos if a in (CRC32, XXH3)),  # names from the future are ignored
        cut=cut,
    )


def _compare(
    what: str,
    mine: tuple[BlobSpec, ...],
    theirs: tuple[BlobSpec, ...],
    me: str,
    them: str,
) -> None:
    """Refuse unless both lists name the same blobs with the same dtype and shape."""
    have = {b.name: b for b in theirs}
    want = {b.name: b for b in mine}
    for name, w in want.items():
        h = have.get(name)
        if h is None:
            got = ", ".join(repr(n) for n in have) or "nothing"
            raise ProtocolError(f"HELLO mismatch: {me} expects {what} {name!r} ({w.describe()}), {them} has {got}",
                                ErrorCode.MISMATCH)
        if ANY in (h.dtype, w.dtype):
            continue  # a sink asking for a returned blob by name takes the source's shape
        if (h.dtype, h.shape) != (w.dtype, w.shape):
            raise ProtocolError(
                f"HELLO mismatch on {what} {name!r}: {me} expects {w.describe()}, {them} has {h.describe()}",
                ErrorCode.MISMATCH,
            )
    extra = [n for n in have if n not in want]
    if extra:
        raise ProtocolError(f"HELLO mismatch: {them} has unexpected {what} {', '.join(map(repr, extra))}; "
                            f"{me} expects only {', '.join(map(repr, want)) or 'nothing'}", ErrorCode.MISMATCH)


def check_match(local: Hello, remote: Hello) -> None:
    """Raise a ProtocolError (code MISMATCH) unless ``remote`` fits ``local``."""
    if remote.role == local.role:
        raise ProtocolError(f"HELLO mismatch: both sides are {local.role}s", ErrorCode.MISMATCH)
    me = f"{local.role} layer {local.layer!r}"
    them = f"{remote.role} layer {remote.layer!r}"
    sink, source = (remote, local) if local.role == "source" else (local, remote)
    _compare("blob", local.blobs, remote.blobs, me, them)
    _compare("returned blob", local.returns, remote.returns, me, them)
    if "any" not in (source.wire, sink.wire) and WIRE_NAMES[source.wire] != WIRE_NAMES[sink.wire]:
        raise ProtocolError(
            f"HELLO mismatch: sink layer {sink.layer!r} sends wire dtype {sink.wire}, "
            f"source layer {source.layer!r} expects {source.wire}",
            ErrorCode.MISMATCH,
        )
    # A frame the receiver would refuse anyway is better refused now.
    for sender, receiver, blobs in ((sink, source, sink.blobs), (source, sink, source.returns)):
        if not blobs:
            continue
        need = payload_size(blobs, sender.encoding)
        if need > receiver.max_frame:
            raise ProtocolError(
                f"HELLO mismatch: {sender.role} layer {sender.layer!r} sends frames of about {need} bytes, "
                f"above the max_frame of {receiver.max_frame} of {receiver.role} layer {receiver.layer!r}",
                ErrorCode.TOO_LARGE,
            )
