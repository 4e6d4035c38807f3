"""Conversion between Caffe ``Datum`` records and NumPy arrays.

A Datum holds one image as C x H x W, either as raw bytes in ``data`` (uint8)
or as a repeated ``float_data`` field; ``label`` is its class. Encoded datums
(a JPEG/PNG file in ``data`` with ``encoded=true``) need an image decoder,
which tinycaffe deliberately does not depend on.
"""

from __future__ import annotations

import numpy as np

from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


def datum_to_array(d: caffe_pb2.Datum, where: str = "datum") -> tuple[np.ndarray, int]:
    """Return ``(image, label)`` for a Datum.

    ``image`` is uint8 (C, H, W) when the datum holds ``data`` bytes and
    float32 (C, H, W) when it holds ``float_data``; like Caffe, ``data`` wins
    when both are present. ``where`` (a path or key) is put in error messages.
    Raises DataError for encoded datums, empty datums and size mismatches.
    """
    if d.encoded:
        raise DataError(
            f"{where}: encoded (JPEG/PNG) datums are not supported without an image "
            "decoder; convert the images to raw datums first")
    shape = (d.channels, d.height, d.width)
    count = shape[0] * shape[1] * shape[2]
    if min(shape) <= 0:
        raise DataError(f"{where}: datum has invalid shape {shape}")
    if len(d.data) > 0:
        if len(d.data) != count:
            raise DataError(
                f"{where}: datum data holds {len(d.data)} bytes, shape {shape} needs {count}")
        # frombuffer avoids a copy; the result is read-only, which callers copying
        # into a batch buffer do not mind.
        image = np.frombuffer(d.data, dtype=np.uint8).reshape(shape)
    elif len(d.float_data) > 0:
        if len(d.float_data) != count:
            raise DataError(
                f"{where}: datum float_data holds {len(d.float_data)} values, "
                f"shape {shape} needs {count}")
        image = np.asarray(d.float_data, dtype=np.float32).reshape(shape)
    else:
        raise DataError(f"{where}: datum has neither data nor float_data")
    return image, int(d.label)


def array_to_datum(arr: np.ndarray, label: int) -> caffe_pb2.Datum:
    """Build a raw (unencoded) Datum from a uint8 (C, H, W) array and a label.

    The serialized result is byte-identical to what Caffe's converters write
    (channels, height, width, data, label; nothing else set).
    """
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise DataError(
            f"array_to_datum needs a uint8 (C, H, W) array, got {arr.dtype} {arr.shape}")
    if not -2**31 <= int(label) < 2**31:  # Datum.label is an int32
        raise DataError(f"array_to_datum: label {label} does not fit in int32")
    d = caffe_pb2.Datum()
    d.channels, d.height, d.width = (int(s) for s in arr.shape)
    d.data = np.ascontiguousarray(arr).tobytes()
    d.label = int(label)
    return d
