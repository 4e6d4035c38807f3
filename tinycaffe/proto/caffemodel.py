"""Reading and writing trained weights (.caffemodel, binary NetParameter).

``read_weights`` walks the protobuf bytes itself (see wire_format.py) and only
looks at what loading weights needs: each layer's name and its blobs.  The
file is memory-mapped and each packed float array is copied once, straight
into its numpy array, so a 250 MB AlexNet loads at memory speed (several
times faster than a protobuf parse plus np.asarray per blob; see
bench/caffemodel_load.py).

``read_caffemodel`` is the full protobuf parse, for callers that want every
field.  ``write_caffemodel`` writes a current-format (V2) file that Caffe and
``read_weights`` both read.
"""

from __future__ import annotations

import math
import mmap
import os
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence, Union

import numpy as np
from google.protobuf.message import DecodeError

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.atomic import write_atomic
from tinycaffe.proto.upgrade import net_needs_upgrade, upgrade_net
from tinycaffe.proto.wire_format import (
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    WireFormatError,
    as_signed64,
    iter_fields,
    len_header,
    read_varint,
    encode_varint,
)

PathLike = Union[str, "os.PathLike[str]"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Field numbers (caffe.proto).
_NET_LAYER, _NET_V1_LAYERS = 100, 2
_LAYER_NAME, _LAYER_BLOBS = 1, 7
_V1_NAME, _V1_BLOBS = 4, 6
_BLOB_NUM, _BLOB_CHANNELS, _BLOB_HEIGHT, _BLOB_WIDTH = 1, 2, 3, 4
_BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = 5, 7, 8
_SHAPE_DIM = 1

# One unpacked float / double: a one-byte key followed by the value.
_FLOAT_KEY = _BLOB_DATA << 3 | FIXED32
_DOUBLE_KEY = _BLOB_DOUBLE_DATA << 3 | FIXED64


class StoredBlob(NamedTuple):
    """One parameter blob as stored in a weights file.

    ``legacy`` is True when the file gave the shape as num/channels/height/
    width (pre-1.0 Caffe); ``data`` is then 4-d (num, channels, height, width)
    even for blobs that are really 1-d or 2-d, and the net loader reshapes.
    """

    data: np.ndarray
    legacy: bool


def _read_file(path: PathLike) -> bytes:
    try:
        buf = Path(path).read_bytes()
    except OSError as exc:
        raise FormatError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    if not buf:
        raise FormatError(f"{os.fspath(path)}: empty file, not a caffemodel")
    return buf


def read_weights(path: PathLike) -> dict[str, list[StoredBlob]]:
    """Read every layer's parameter blobs from a binary .caffemodel.

    Returns {layer name: [StoredBlob, ...]} in file order, for both current
    ``layer`` entries and V1 ``layers`` entries; layers without blobs are left
    out.  If a name repeats, the later layer wins (as when Caffe copies
    weights layer by layer).  Raises FormatError naming the file and the byte
    offset for malformed bytes, or the layer and blob index when a blob's
    value count does not match its shape.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise FormatError(f"{name}: empty file, not a caffemodel")
            # Mapping the file saves a copy: arrays are copied straight out of
            # the page cache.
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise FormatError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # mmap refuses some special files
        raise FormatError(f"{name}: cannot map: {exc}") from None
    try:
        return parse_weights(mapped, name)
    finally:
        try:
            mapped.close()
        except BufferError:
            # A traceback still holds numpy views of the map; it is unmapped
            # when those are collected.
            pass


def parse_weights(data: bytes | mmap.mmap, source: str = "<bytes>") -> dict[str, list[StoredBlob]]:
    """``read_weights`` for caffemodel bytes already in memory.

    ``data`` is ``bytes`` or an ``mmap``; the arrays returned never refer to
    it.  ``source`` names the bytes in error messages.
    """
    if not data:
        raise FormatError(f"{source}: empty, not a caffemodel")
    try:
        return _walk_net(data, source)
    except WireFormatError as exc:
        raise FormatError(f"{source}: malformed caffemodel at {exc}") from None


def _walk_net(buf: bytes, source: str) -> dict[str, list[StoredBlob]]:
    weights: dict[str, list[StoredBlob]] = {}
    saw_layer = False
    for number, wire_type, start, end in iter_fields(buf, 0, len(buf)):
        if wire_type != LEN:
            continue
        if number == _NET_LAYER:
            name_field, blobs_field = _LAYER_NAME, _LAYER_BLOBS
        elif number == _NET_V1_LAYERS:
            name_field, blobs_field = _V1_NAME, _V1_BLOBS
        else:
            continue
        saw_layer = True
        layer_name, blobs = _walk_layer(buf, start, end, name_field, blobs_field, source)
        if blobs:
            weights[layer_name] = blobs
    if not saw_layer:
        raise FormatError(f"{source}: no layers found, not a caffemodel")
    return weights


def _walk_layer(
    buf: bytes, start: int, end: int, name_field: int, blobs_field: int, source: str
) -> tuple[str, list[StoredBlob]]:
    layer_name = ""
    spans: list[tuple[int, int]] = []
    for number, wire_type, vstart, vend in iter_fields(buf, start, end):
        if wire_type != LEN:
            continue
        if number == name_field:
            try:
                layer_name = bytes(buf[vstart:vend]).decode("utf-8")
            except UnicodeDecodeError:
                raise WireFormatError(vstart, "layer name is not UTF-8") from None
        elif number == blobs_field:
            spans.append((vstart, vend))
    # Parse blobs after the name is known (it may come after them).
    blobs = [_walk_blob(buf, s, e, layer_name, i, source) for i, (s, e) in enumerate(spans)]
    return layer_name, blobs


def _walk_blob(buf: bytes, pos: int, end: int, layer: str, index: int, source: str) -> StoredBlob:
    legacy = [0, 0, 0, 0]
    has_legacy = False
    dims: list[int] = []
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    while pos < end:
        header_at = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == _BLOB_DATA and wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            _check_span(header_at, pos, length, end, 4, "float data")
            floats.append(np.frombuffer(buf, "<f4", length // 4, pos))
            pos += length
        elif number == _BLOB_DATA and wire_type == FIXED32:
            values, pos = _unpacked_run(buf, pos, end, _FLOAT_KEY, 4, "<f4")
            floats.append(values)
        elif number == _BLOB_DOUBLE_DATA and wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            _check_span(header_at, pos, length, end, 8, "double data")
            doubles.append(np.frombuffer(buf, "<f8", length // 8, pos))
            pos += length
        elif number == _BLOB_DOUBLE_DATA and wire_type == FIXED64:
            values, pos = _unpacked_run(buf, pos, end, _DOUBLE_KEY, 8, "<f8")
            doubles.append(values)
        elif number == _BLOB_SHAPE and wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireFormatError(header_at, "blob shape runs past the end of its blob")
            # A repeated message field merges: later dims append.
            dims.extend(_walk_shape(buf, pos, pos + length))
            pos += length
        elif _BLOB_NUM <= number <= _BLOB_WIDTH and wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            legacy[number - 1] = as_signed64(value)
            has_legacy = True
        else:
            pos = _skip(buf, header_at, pos, end, number, wire_type)

    # Caffe prefers the legacy 4-d fields whenever any of them is present.
    shape = tuple(legacy) if has_legacy else tuple(dims)
    where = f"{source}: layer {layer!r} blob {index}"
    if any(d < 0 for d in shape):
        raise FormatError(f"{where}: negative dimension in shape {shape}")
    parts = doubles if doubles else floats  # double_data wins, as in Caffe
    count = sum(p.size for p in parts)
    expected = math.prod(shape)
    if count != expected:
        raise FormatError(f"{where}: {count} values for shape {shape} ({expected} expected)")
    # The one copy out of the file buffer (doubles too large for float32
    # become inf, as the C++ cast in Caffe makes them).
    with np.errstate(over="ignore"):
        if len(parts) == 1:
            data = parts[0].astype(np.float32)
        elif parts:
            data = np.concatenate(parts).astype(np.float32, copy=False)
        else:
            data = np.empty(0, dtype=np.float32)
    return StoredBlob(data.reshape(shape), has_legacy)


def _check_span(header_at: int, pos: int, length: int, end: int, item: int, what: str) -> None:
    if pos + length > end:
        raise WireFormatError(header_at, f"{what} runs past the end of its blob")
    if length % item:
        raise WireFormatError(header_at, f"{what} length {length} is not a multiple of {item}")


def _unpacked_run(buf: bytes, pos: int, end: int, key: int, size: int, dtype: str) -> tuple[np.ndarray, int]:
    """Read an unpacked value at ``pos`` (its key already consumed) and the run
    of same-field values that directly follows it.

    Old writers emit one key per value; scanning the run with numpy keeps that
    path vectorised too.
    """
    if pos + size > end:
        raise WireFormatError(pos, "truncated fixed-size value")
    stride = size + 1
    start = pos + size
    n = (end - start) // stride
    rows = np.frombuffer(buf, np.uint8, n * stride, start).reshape(n, stride)
    not_key = np.flatnonzero(rows[:, 0] != key)
    run = int(not_key[0]) if not_key.size else n
    values = np.frombuffer(buf, np.uint8, (run + 1) * stride - 1, pos)
    # Drop the key bytes: value 0 sits at [0:size], value i at [i*stride : i*stride+size].
    padded = np.concatenate([np.zeros(1, np.uint8), values]).reshape(run + 1, stride)[:, 1:]
    return np.ascontiguousarray(padded).view(dtype).reshape(run + 1), start + run * stride


def _walk_shape(buf: bytes, pos: int, end: int) -> list[int]:
    dims: list[int] = []
    while pos < end:
        header_at = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == _SHAPE_DIM and wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise WireFormatError(header_at, "shape dims run past the end of the shape")
            while pos < stop:
                value, pos = read_varint(buf, pos, stop)
                dims.append(as_signed64(value))
        elif number == _SHAPE_DIM and wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            dims.append(as_signed64(value))
        else:
            pos = _skip(buf, header_at, pos, end, number, wire_type)
    return dims


def _skip(buf: bytes, header_at: int, pos: int, end: int, number: int, wire_type: int) -> int:
    """Return the position after the value of a field we do not use."""
    if number == 0:
        raise WireFormatError(header_at, "field number 0")
    if wire_type == VARINT:
        _, pos = read_varint(buf, pos, end)
        return pos
    if wire_type == LEN:
        length, pos = read_varint(buf, pos, end)
        pos += length
    elif wire_type == FIXED32:
        pos += 4
    elif wire_type == FIXED64:
        pos += 8
    else:
        raise WireFormatError(header_at, f"unsupported wire type {wire_type} (field {number})")
    if pos > end:
        raise WireFormatError(header_at, f"field {number} runs past the end of its message")
    return pos


def read_caffemodel(path: PathLike) -> caffe_pb2.NetParameter:
    """Parse a binary .caffemodel completely into a NetParameter (slow path).

    The result is not upgraded; pass it to ``upgrade_net`` for V1 files.
    """
    buf = _read_file(path)
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(buf)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise FormatError(f"{os.fspath(path)}: not a valid caffemodel: {exc}") from None
    return net


def load_weights(path: PathLike) -> dict[str, list[StoredBlob]]:
    """Read weights from a binary .caffemodel or an HDF5 .caffemodel.h5.

    The format is chosen by the file's first bytes, not its name.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise FormatError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    if head == HDF5_SIGNATURE:
        from tinycaffe.proto.hdf5 import read_hdf5_weights

        return read_hdf5_weights(path)
    return read_weights(path)


def encode_blob(array: np.ndarray) -> bytes:
    """Serialize ``array`` as a BlobProto (packed float32 data + BlobShape)."""
    return b"".join(_blob_pieces(np.asarray(array)))


def _blob_pieces(array: np.ndarray) -> list[bytes | memoryview]:
    flat = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    dims = b"".join(encode_varint(int(d)) for d in array.shape)
    shape = len_header(1, len(dims)) + dims if dims else b""
    pieces: list[bytes | memoryview] = []
    if flat.size:
        # Fields in number order (data 5, shape 7), as protobuf itself writes.
        pieces += [len_header(_BLOB_DATA, flat.nbytes), memoryview(flat).cast("B")]
    pieces.append(len_header(_BLOB_SHAPE, len(shape)) + shape)
    return pieces


def write_caffemodel(
    path: PathLike,
    net: caffe_pb2.NetParameter,
    weights: Mapping[str, Sequence[np.ndarray]],
) -> None:
    """Write ``net`` with ``weights`` as a current-format binary caffemodel.

    Every layer of ``net`` (upgraded first if it is V1 or declares inputs) is
    written with any blobs it already has replaced by ``weights[layer name]``
    (float32, shape kept); layers not in ``weights`` are written without
    blobs.  Raises ValueError if ``weights`` names a layer ``net`` lacks.
    The file is written next to ``path`` and renamed into place.
    """
    if net_needs_upgrade(net):
        net = upgrade_net(net, "<net given to write_caffemodel>")
    names = {layer.name for layer in net.layer}
    unknown = [n for n in weights if n not in names]
    if unknown:
        raise ValueError(f"weights for layers not in the net: {unknown}")

    head = caffe_pb2.NetParameter()
    head.CopyFrom(net)
    head.ClearField("layer")
    pieces: list[bytes | memoryview] = [head.SerializeToString()]
    for layer in net.layer:
        bare = caffe_pb2.LayerParameter()
        bare.CopyFrom(layer)
        bare.ClearField("blobs")
        body: list[bytes | memoryview] = [bare.SerializeToString()]
        for array in weights.get(layer.name, ()):
            blob = _blob_pieces(np.asarray(array))
            body += [len_header(_LAYER_BLOBS, sum(len(p) for p in blob)), *blob]
        pieces += [len_header(_NET_LAYER, sum(len(p) for p in body)), *body]

    try:
        write_atomic(path, pieces)
    except OSError as exc:
        raise FormatError(f"{os.fspath(path)}: cannot write: {exc.strerror or exc}") from None
