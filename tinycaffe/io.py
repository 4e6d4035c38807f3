"""pycaffe's ``caffe.io``: images in, Caffe-ready arrays out, and proto <-> array helpers.

``load_image`` reads a file with Pillow as a float32 H x W x K array in
[0, 1] (RGB, as pycaffe's skimage-based reader gives it). ``Transformer``
turns such arrays into a net's K x H x W input (resize, transpose, channel
swap, raw scale, mean, input scale, in pycaffe's order) and back.
``resize_image`` interpolates in NumPy (nearest or bilinear, pixel centres
aligned as in skimage's ``resize`` without anti-aliasing); ``oversample``
gives the ten crops of the BVLC classifier.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import DataError, ShapeError
from .proto import caffe_pb2

# -- protos <-> arrays -------------------------------------------------------------------


def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """A BlobProto's data (or diff) as an array of its shape (``shape`` or legacy 4-d fields)."""
    values = blob.diff if return_diff else blob.data
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") or blob.HasField("width"):
        shape: tuple[int, ...] = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    arr = np.asarray(values, dtype=np.float32)
    if arr.size != int(np.prod(shape)):
        raise ShapeError(f"blobproto_to_array: {arr.size} values do not fill shape {shape}")
    return arr.reshape(shape)


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """A 4-d array (and optionally its diff) as a BlobProto with the legacy 4-d shape fields."""
    arr = np.asarray(arr)
    if arr.ndim != 4:
        raise ShapeError(f"array_to_blobproto: needs a 4-d array, got shape {arr.shape}")
    blob = caffe_pb2.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = arr.shape
    blob.data.extend(arr.astype(np.float32).ravel().tolist())
    if diff is not None:
        diff = np.asarray(diff)
        if diff.shape != arr.shape:
            raise ShapeError(f"array_to_blobproto: diff shape {diff.shape} differs from data shape {arr.shape}")
        blob.diff.extend(diff.astype(np.float32).ravel().tolist())
    return blob


def arraylist_to_blobprotovector_str(arraylist: Sequence[np.ndarray]) -> bytes:
    """Serialized BlobProtoVector of 4-d arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(b) for b in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int = 0) -> caffe_pb2.Datum:
    """A C x H x W array as a Datum: uint8 arrays as bytes in ``data``, others as ``float_data``."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ShapeError(f"array_to_datum: needs a C x H x W array, got shape {arr.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    datum.label = int(label)
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """A Datum's image as C x H x W (uint8 for byte data, float otherwise); the label is ``datum.label``.

    Encoded datums (JPEG/PNG bytes) are decoded as Caffe decodes them (BGR).
    """
    from .data.datum import datum_to_array as decode

    image, _ = decode(datum)
    return image


# -- images ------------------------------------------------------------------------------


def load_image(filename: str | Path, color: bool = True) -> np.ndarray:
    """Read an image file as float32 H x W x 3 (RGB) in [0, 1], or H x W x 1 for gray with ``color=False``.

    Gray files are repeated to three channels when ``color`` is true; an
    alpha channel is dropped. Needs Pillow.
    """
    try:
        from PIL import Image
    except ImportError:
        raise DataError("caffe.io.load_image needs Pillow: pip install Pillow") from None
    try:
        with Image.open(filename) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / (65535.0 if mode.startswith("I;16") else 2.0**31 - 1)
                gray = True
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float32)
                gray = True
            elif mode in ("L", "1", "LA"):
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
                gray = True
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
                gray = False
    except (OSError, ValueError) as exc:
        raise DataError(f"{filename}: cannot read image: {exc}") from None
    if gray:
        arr = arr[:, :, np.newaxis]
        if color:
            arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _axis_weights(n_in: int, n_out: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lo, hi) and the weight of hi for each output pixel along one axis."""
    # Pixel centres aligned: output pixel i samples input position (i + 0.5) * n_in / n_out - 0.5.
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if order == 0:
        idx = np.clip(np.floor(pos + 0.5).astype(np.int64), 0, n_in - 1)
        return idx, idx, np.zeros(n_out)
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, pos - lo


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """Resize an H x W x K array to ``new_dims`` (height, width); float32 out.

    ``interp_order`` 0 is nearest neighbour, 1 (default) bilinear; edges
    are clamped. Any number of channels.
    """
    im = np.asarray(im)
    if im.ndim != 3:
        raise ShapeError(f"resize_image: needs an H x W x K array, got shape {im.shape}")
    if interp_order not in (0, 1):
        raise ValueError(f"resize_image: interp_order must be 0 (nearest) or 1 (bilinear), got {interp_order}")
    h, w = int(new_dims[0]), int(new_dims[1])
    if h <= 0 or w <= 0:
        raise ShapeError(f"resize_image: new size must be positive, got {tuple(new_dims)}")
    src = im.astype(np.float32, copy=False)
    if (h, w) == src.shape[:2]:
        return src.copy()
    ylo, yhi, wy = _axis_weights(src.shape[0], h, interp_order)
    xlo, xhi, wx = _axis_weights(src.shape[1], w, interp_order)
    wy = wy.astype(np.float32)[:, None, None]
    wx = wx.astype(np.float32)[None, :, None]
    rows = src[ylo] * (1 - wy) + src[yhi] * wy
    out = rows[:, xlo] * (1 - wx) + rows[:, xhi] * wx
    return np.ascontiguousarray(out, dtype=np.float32)


def oversample(images: Sequence[np.ndarray], crop_dims: Sequence[int]) -> np.ndarray:
    """The four corner crops and the centre crop of each image, then the same five mirrored.

    ``images``: H x W x K arrays of one size; returns (10 * N) x h x w x K,
    ten consecutive crops per image (five, then their left-right mirrors).
    """
    if len(images) == 0:
        raise ShapeError("oversample: no images given")
    shape = np.asarray(images[0]).shape
    ch, cw = int(crop_dims[0]), int(crop_dims[1])
    if ch > shape[0] or cw > shape[1]:
        raise ShapeError(f"oversample: crop {ch}x{cw} is larger than the images ({shape[0]}x{shape[1]})")
    # The centre crop starts at the image centre minus half the crop (pycaffe's arithmetic).
    cy, cx = int(shape[0] / 2.0 - ch / 2.0), int(shape[1] / 2.0 - cw / 2.0)
    starts = [(0, 0), (0, shape[1] - cw), (shape[0] - ch, 0), (shape[0] - ch, shape[1] - cw), (cy, cx)]
    crops = np.empty((10 * len(images), ch, cw, shape[2]), dtype=np.float32)
    for n, im in enumerate(images):
        im = np.asarray(im)
        if im.shape != shape:
            raise ShapeError(f"oversample: image {n} has shape {im.shape}, the first has {shape}")
        for k, (y, x) in enumerate(starts):
            crops[10 * n + k] = im[y:y + ch, x:x + cw]
        crops[10 * n + 5:10 * n + 10] = crops[10 * n:10 * n + 5, :, ::-1]
    return crops


# -- the Transformer -----------------------------------------------------------------------


class Transformer:
    """Prepare H x W x K images for a net's inputs, and undo it (pycaffe's ``caffe.io.Transformer``).

    ``Transformer({'data': net.blobs['data'].data.shape})``; then per input
    ``set_transpose``, ``set_channel_swap``, ``set_raw_scale``, ``set_mean``,
    ``set_input_scale``. ``preprocess`` applies, in this order: resize to
    the input's H x W, transpose, channel swap, raw scale, mean subtraction,
    input scale. ``deprocess`` undoes them (but not the resize).
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose: dict[str, tuple[int, ...]] = {}
        self.channel_swap: dict[str, tuple[int, ...]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> tuple[int, ...]:
        if in_ not in self.inputs:
            raise DataError(f"Transformer: {in_!r} is not one of the inputs {list(self.inputs)}")
        return self.inputs[in_]

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """An H' x W' x K image as the K x H x W float32 array input ``in_`` takes."""
        shape = self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=True)
        in_dims = shape[2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        transpose = self.transpose.get(in_)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        raw_scale = self.raw_scale.get(in_)
        if raw_scale is not None:
            caffe_in = caffe_in * np.float32(raw_scale)
        mean = self.mean.get(in_)
        if mean is not None:
            caffe_in = caffe_in - mean
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            caffe_in = caffe_in * np.float32(input_scale)
        return np.ascontiguousarray(caffe_in, dtype=np.float32)

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """Undo ``preprocess`` (all but the resize) for one K x H x W array (a leading 1 is dropped)."""
        self._check_input(in_)
        decaf_in = np.asarray(data, dtype=np.float32).copy().squeeze()
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= np.float32(input_scale)
        mean = self.mean.get(in_)
        if mean is not None:
            decaf_in += mean
        raw_scale = self.raw_scale.get(in_)
        if raw_scale is not None:
            decaf_in /= np.float32(raw_scale)
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        transpose = self.transpose.get(in_)
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order from the image's to the net's, e.g. (2, 0, 1) for H x W x K -> K x H x W."""
        shape = self._check_input(in_)
        if len(order) != len(shape) - 1:
            raise ShapeError(f"Transformer: transpose order {tuple(order)} needs {len(shape) - 1} axes "
                             f"for input {in_!r} of shape {shape}")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        shape = self._check_input(in_)
        if len(order) != shape[1]:
            raise ShapeError(f"Transformer: channel swap {tuple(order)} needs {shape[1]} channels "
                             f"for input {in_!r} of shape {shape}")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Multiply the raw image, e.g. 255 for nets trained on [0, 255] pixels (before the mean)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Subtract ``mean``: one value per channel (K,) or a whole K x H x W image."""
        shape = self._check_input(in_)
        mean = np.asarray(mean, dtype=np.float32)
        if mean.ndim == 1:
            if mean.shape[0] != shape[1]:
                raise ShapeError(f"Transformer: mean has {mean.shape[0]} channels, input {in_!r} has {shape[1]}")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            ms = (1,) + mean.shape if mean.ndim == 2 else mean.shape
            if len(ms) != 3:
                raise ShapeError(f"Transformer: mean of shape {mean.shape} is neither (K,) nor K x H x W")
            if ms != shape[1:]:
                raise ShapeError(f"Transformer: mean of shape {mean.shape} does not fit input {in_!r} "
                                 f"of shape {shape}")
            mean = mean.reshape(ms)
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Multiply the preprocessed input (after the mean), e.g. 0.017 for some nets."""
        self._check_input(in_)
        self.input_scale[in_] = scale
