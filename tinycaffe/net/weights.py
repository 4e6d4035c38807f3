"""Copy trained blobs into a Net by layer name, and save them back.

A Net built with weights reads a binary caffemodel in two passes when it
can (``scan_caffemodel`` then ``read_spans_into``): first only the layer
names, blob shapes and where each blob's floats lie in the file, so that the
layers the file covers skip their fillers; then each blob's bytes straight
from the file into the blob's own buffer. The weights are then in memory
once, never also as a parsed message, a mapped file or a temporary array.
``net.copy_from(path)`` on a CPU net reads the same way, into the existing
buffers. Files that need more (HDF5, double or unpacked values) and GPU nets
take the general reader of ``tinycaffe.proto.caffemodel``.
"""
from __future__ import annotations

import math
import mmap
import os
import sys
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

from ..backend import asnumpy
from ..errors import FormatError, ShapeError
from ..proto.wire_format import LEN, VARINT, WireFormatError, as_signed64, iter_fields, read_varint

# caffe.proto field numbers: NetParameter.layer / .layers (V1), the layer's name and blobs
# (V2, then V1), BlobProto's legacy dims, data, shape, double_data, and BlobShape.dim.
_LAYER_FIELDS = {100: (1, 7), 2: (4, 6)}
_NUM, _WIDTH, _DATA, _SHAPE, _DOUBLE, _DIM = 1, 4, 5, 7, 8, 1


class BlobSpan(NamedTuple):
    """Where one stored blob's packed float32 values lie in a caffemodel file."""

    shape: tuple[int, ...]
    legacy: bool  # shape given as num/channels/height/width
    offset: int
    nbytes: int


class _NeedsGeneralReader(Exception):
    """The file holds something the span reader leaves to the general reader."""


def scan_caffemodel(path: str | Path) -> dict[str, list[BlobSpan]] | None:
    """{layer: [BlobSpan]} of a binary caffemodel, reading only field headers; None when the
    file needs the general reader (HDF5, double or unpacked values, big-endian host).

    Raises FormatError for malformed files, naming the file and byte offset.
    """
    name = os.fspath(path)
    if sys.byteorder != "little":
        return None
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise FormatError(f"{name}: empty file, not a caffemodel")
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                return None
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise FormatError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except ValueError:  # mmap refuses some special files
        return None
    try:
        return _scan_net(mapped, name)
    except _NeedsGeneralReader:
        return None
    except WireFormatError as exc:
        raise FormatError(f"{name}: malformed caffemodel at {exc}") from None
    finally:
        mapped.close()


def _scan_net(buf, source: str) -> dict[str, list[BlobSpan]]:
    spans: dict[str, list[BlobSpan]] = {}
    saw_layer = False
    for number, wire_type, start, end in iter_fields(buf, 0, len(buf)):
        if wire_type != LEN or number not in _LAYER_FIELDS:
            continue
        saw_layer = True
        name_field, blobs_field = _LAYER_FIELDS[number]
        layer, blob_ranges = "", []
        for n, wt, s, e in iter_fields(buf, start, end):
            if wt == LEN and n == name_field:
                layer = bytes(buf[s:e]).decode("utf-8", errors="replace")
            elif wt == LEN and n == blobs_field:
                blob_ranges.append((s, e))
        blobs = [_scan_blob(buf, s, e, f"{source}: layer {layer!r} blob {i}") for i, (s, e) in enumerate(blob_ranges)]
        if blobs:
            spans[layer] = blobs  # a repeated name: the later layer wins, as in Caffe
    if not saw_layer:
        raise FormatError(f"{source}: no layers found, not a caffemodel")
    return spans


def _scan_blob(buf, start: int, end: int, where: str) -> BlobSpan:
    legacy = [0, 0, 0, 0]
    has_legacy = False
    dims: list[int] = []
    data: tuple[int, int] | None = None
    for n, wt, s, e in iter_fields(buf, start, end):
        if n == _DATA and wt == LEN:
            if data is not None:
                raise _NeedsGeneralReader  # data split over several fields
            data = (s, e - s)
        elif n in (_DATA, _DOUBLE):
            raise _NeedsGeneralReader  # unpacked floats, or doubles
        elif n == _SHAPE and wt == LEN:
            for dn, dwt, ds, de in iter_fields(buf, s, e):
                if dn == _DIM and dwt == LEN:
                    pos = ds
                    while pos < de:
                        value, pos = read_varint(buf, pos, de)
                        dims.append(as_signed64(value))
                elif dn == _DIM and dwt == VARINT:
                    dims.append(as_signed64(read_varint(buf, ds, de)[0]))
        elif _NUM <= n <= _WIDTH and wt == VARINT:
            legacy[n - _NUM] = as_signed64(read_varint(buf, s, e)[0])
            has_legacy = True
    # Caffe prefers the legacy 4-d fields whenever any of them is present.
    shape = tuple(legacy) if has_legacy else tuple(dims)
    if any(d < 0 for d in shape):
        raise FormatError(f"{where}: negative dimension in shape {shape}")
    offset, nbytes = data if data is not None else (start, 0)
    if nbytes % 4:
        raise FormatError(f"{where}: float data length {nbytes} is not a multiple of 4")
    if nbytes // 4 != math.prod(shape):
        raise FormatError(f"{where}: {nbytes // 4} values for shape {shape} ({math.prod(shape)} expected)")
    return BlobSpan(shape, has_legacy, offset, nbytes)


def read_spans_into(net, path: str | Path, spans: Mapping[str, list[BlobSpan]]) -> list[str]:
    """Read each stored blob's bytes from ``path`` straight into the net's blob of the same layer.

    Layers the net lacks are skipped (as Caffe does); returns the layers filled.
    """
    source = os.fspath(path)
    layers = dict(zip(net.layer_names, net.layers))
    filled = []
    with open(path, "rb") as f:
        for name, stored in spans.items():
            layer = layers.get(name)
            if layer is None:
                continue
            _check_count(source, name, len(stored), len(layer.blobs))
            for i, (span, dst) in enumerate(zip(stored, layer.blobs)):
                _check_shape(source, name, i, span.shape, span.legacy, dst.shape)
                target = dst.data
                if not (target.flags.c_contiguous and target.flags.writeable):
                    raise FormatError(f"{source}: layer '{name}' blob {i}: the net's blob cannot be read into")
                f.seek(span.offset)
                got = f.readinto(memoryview(target.reshape(-1)).cast("B"))
                if got != span.nbytes:
                    raise FormatError(f"{source}: layer '{name}' blob {i}: the file ended after {got} of "
                                      f"{span.nbytes} bytes")
            filled.append(name)
    return filled


def _check_count(source: str, name: str, stored: int, expected: int) -> None:
    if stored != expected:
        raise ShapeError(
            f"{source}: layer '{name}' has {stored} blob(s) in the file but the net's "
            f"layer expects {expected}"
        )


def _check_shape(source: str, name: str, i: int, shape: tuple[int, ...], legacy: bool,
                 target: tuple[int, ...]) -> None:
    if not _fits(shape, legacy, target):
        raise ShapeError(
            f"{source}: layer '{name}' blob {i}: the file has shape {shape}, "
            f"the net expects {target}"
        )


def _fits(stored_shape: tuple[int, ...], legacy: bool, target: tuple[int, ...]) -> bool:
    if stored_shape == target:
        return True
    # Caffe accepts a legacy (num, channels, height, width) blob for a target of
    # up to 4 axes when the target, padded with leading 1s, has the same dims.
    if legacy and len(target) <= 4:
        return stored_shape == (1,) * (4 - len(target)) + tuple(target)
    return False


def read_weight_source(weights: str | Path | Mapping[str, list]) -> Mapping[str, list]:
    """{layer name: blobs} from a caffemodel / .caffemodel.h5 path, or the map itself."""
    if isinstance(weights, (str, Path)):
        from ..proto.caffemodel import load_weights

        if not Path(weights).exists():
            raise FormatError(f"{weights}: no such weights file")
        return load_weights(weights)
    if isinstance(weights, Mapping):
        return weights
    raise FormatError(f"cannot read weights from a {type(weights).__name__}: give a path or a "
                      "{layer name: [arrays]} map")


def copy_weights(net, weights: str | Path | Mapping[str, list], source: str | None = None,
                 adopt: bool = False) -> list[str]:
    """Fill ``net``'s layers from a caffemodel / .h5 path or a name -> blobs map.

    ``adopt`` (the Net constructor's first load, from arrays read for it
    alone) lets CPU blobs take the read float32 arrays as their buffers
    instead of copying them, so the weights sit in memory once.
    """
    if source is None:
        source = str(weights) if isinstance(weights, (str, Path)) else "<weights>"
    if isinstance(weights, (str, Path)) and net.xp is np and Path(weights).exists():
        # Straight from the file into the existing buffers (blobs shared with other nets see it).
        spans = scan_caffemodel(weights)
        if spans is not None:
            return read_spans_into(net, weights, spans)
    stored = read_weight_source(weights)
    filled = []
    layers = dict(zip(net.layer_names, net.layers))
    for name, blobs in stored.items():
        layer = layers.get(name)
        if layer is None:
            continue  # Caffe ignores source layers the net does not have
        _check_count(source, name, len(blobs), len(layer.blobs))
        for i, (src, dst) in enumerate(zip(blobs, layer.blobs)):
            data, legacy = (src.data, src.legacy) if hasattr(src, "legacy") else (np.asarray(src), False)
            _check_shape(source, name, i, tuple(data.shape), legacy, dst.shape)
            if adopt and net.xp is np and data.dtype == np.float32 and data.flags.c_contiguous:
                dst.adopt(data.reshape(dst.shape))
            else:
                dst.data[...] = net.xp.asarray(data.reshape(dst.shape), dtype=np.float32)
        filled.append(name)
    return filled


def save_weights(net, path: str | Path) -> None:
    """Write ``net`` (definition + learned blobs) as a binary V2 caffemodel."""
    from ..proto.caffemodel import write_caffemodel

    weights = {
        name: [asnumpy(b.data) for b in blobs] for name, blobs in net.params.items()
    }
    write_caffemodel(path, net.param, weights)


class WeightsForNet:
    """The weights a Net is built with: which layers they cover (no fillers for those), then
    filling them in once the net is built.

    A binary caffemodel path on a CPU net goes through the span reader (the
    bytes land in the blobs' own buffers); anything else is read whole and
    the blobs adopt the arrays read for them (a caller's map is copied).
    """

    def __init__(self, weights: str | Path | Mapping[str, list], xp) -> None:
        self.weights = weights
        self.source = str(weights) if isinstance(weights, (str, Path)) else "<weights>"
        self._spans: dict[str, list[BlobSpan]] | None = None
        self._stored: Mapping[str, list] | None = None
        is_path = isinstance(weights, (str, Path))
        if is_path and not Path(weights).exists():
            raise FormatError(f"{weights}: no such weights file")
        if is_path and xp is np:
            self._spans = scan_caffemodel(weights)
        if self._spans is None:
            self._stored = read_weight_source(weights)

    def covers(self, layer_name: str) -> bool:
        """True when the weights hold blobs for ``layer_name``."""
        held = self._spans if self._spans is not None else self._stored
        return layer_name in held  # type: ignore[operator]

    def load_into(self, net) -> list[str]:
        """Fill ``net``'s layers; returns the names filled. Frees what was read."""
        try:
            if self._spans is not None:
                return read_spans_into(net, self.weights, self._spans)
            return copy_weights(net, self._stored, source=self.source,  # type: ignore[arg-type]
                                adopt=isinstance(self.weights, (str, Path)))
        finally:
            self._spans = self._stored = None
