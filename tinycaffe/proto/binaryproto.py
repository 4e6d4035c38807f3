"""Single-blob files (.binaryproto), e.g. the training-set mean image.

A .binaryproto is one serialized BlobProto.  It is small, so the full
protobuf parse is fine here; the fast blob walker of caffemodel.py is reused
only for writing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from google.protobuf.message import DecodeError

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.caffemodel import encode_blob

PathLike = Union[str, "os.PathLike[str]"]


def read_blob(path: PathLike) -> np.ndarray:
    """Read a BlobProto file into a float32 array.

    The shape comes from the legacy num/channels/height/width fields when any
    is present (always 4-d then, as Caffe does), else from ``shape``.
    ``double_data`` is used instead of ``data`` when present.
    """
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FormatError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if not raw:
        raise FormatError(f"{name}: empty file, not a binaryproto")
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise FormatError(f"{name}: not a valid binaryproto: {exc}") from None
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if any(d < 0 for d in shape):
        raise FormatError(f"{name}: negative dimension in shape {shape}")
    if len(blob.double_data):
        values = np.asarray(blob.double_data, dtype=np.float64)
    else:
        values = np.asarray(blob.data, dtype=np.float32)
    expected = int(np.prod(shape, dtype=np.int64))
    if values.size != expected:
        raise FormatError(f"{name}: {values.size} values for shape {shape} ({expected} expected)")
    return values.astype(np.float32).reshape(shape)


def write_blob(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` (as float32, shape kept) to a BlobProto file."""
    try:
        Path(path).write_bytes(encode_blob(np.asarray(array)))
    except OSError as exc:
        raise FormatError(f"{os.fspath(path)}: cannot write: {exc.strerror or exc}") from None
