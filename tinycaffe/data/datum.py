"""Conversion between Caffe ``Datum`` records and NumPy arrays.

A Datum holds one image as C x H x W, either as raw bytes in ``data`` (uint8)
or as a repeated ``float_data`` field; ``label`` is its class. An encoded
datum (``encoded: true``) holds a whole image file (JPEG, PNG...) in ``data``;
it is decoded as Caffe decodes it (``tinycaffe.data.image``): BGR channels,
and the file's own channel count unless the transform forces colour or gray.
"""

from __future__ import annotations

import numpy as np

from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


def datum_to_array(d: caffe_pb2.Datum, where: str = "datum",
                   decode: str = "unchanged") -> tuple[np.ndarray, int]:
    """Return ``(image, label)`` for a Datum.

    ``image`` is uint8 (C, H, W) when the datum holds ``data`` bytes and
    float32 (C, H, W) when it holds ``float_data``; like Caffe, ``data`` wins
    when both are present. An encoded datum is decoded with ``decode``:
    "unchanged" (Caffe's default), "color" (``force_color``) or "gray"
    (``force_gray``); its channels/height/width fields are ignored, as Caffe
    ignores them. ``where`` (a path or key) is put in error messages.
    Raises DataError for undecodable or empty datums and size mismatches.
    """
    if d.encoded:
        from tinycaffe.data.image import decode_image, hwc_to_chw

        return hwc_to_chw(decode_image(d.data, decode, f"{where} (encoded datum)")), int(d.label)
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


def encoded_datum(data: bytes, label: int) -> caffe_pb2.Datum:
    """An encoded Datum holding image file bytes, as Caffe's ``convert_imageset -encoded`` writes it.

    Only ``data``, ``label`` and ``encoded`` are set (Caffe leaves the shape
    fields unset for encoded datums).
    """
    if not -2**31 <= int(label) < 2**31:
        raise DataError(f"encoded_datum: label {label} does not fit in int32")
    return caffe_pb2.Datum(data=bytes(data), label=int(label), encoded=True)


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
