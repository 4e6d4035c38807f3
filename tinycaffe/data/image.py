"""Image files as Caffe reads them through OpenCV: decode, resize, encode.

Caffe's image input (``ImageData``, encoded Datums, ``convert_imageset``) goes
through ``cv::imread``/``cv::imdecode`` and ``cv::resize``. We decode with
Pillow and resize in NumPy, keeping OpenCV's conventions:

* images are H x W x C uint8 in **BGR** order (1 channel for gray);
* "color" decoding gives 3 channels whatever the file holds, "gray" gives 1,
  "unchanged" keeps the file's channels (gray 1, colour 3, with alpha 4);
* gray from a colour JPEG is libjpeg's own luma (Pillow's JPEG draft mode, as
  OpenCV asks libjpeg for it), from a PNG libpng's, from other formats
  OpenCV's fixed-point ``0.299 R + 0.587 G + 0.114 B``;
* "color" and "gray" decoding apply a JPEG's EXIF orientation (OpenCV 3.1+ does);
  "unchanged" does not (neither does OpenCV);
* ``resize_linear`` is ``cv::resize(..., INTER_LINEAR)`` on uint8: OpenCV's
  pixel-centre mapping, 11-bit fixed-point weights and its rounding, and its
  switch to a 2x2 box average for an exact halving;
* 16-bit images: "color" and "gray" keep the high byte, as OpenCV does; "unchanged"
  refuses a 16-bit gray file (Caffe refuses 16-bit data). Known differences: a
  16-bit colour PNG decoded as gray can be 1 level off (libpng mixes before
  dropping to 8 bits), and "unchanged" gives it 8-bit channels.

``tests/data/test_data_image_opencv.py`` (marked crosscheck) compares all this
with OpenCV itself: identical on x86-64 with OpenCV 4.14.

Pillow is imported on first use, so a net without image input never needs it.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType

import numpy as np

from tinycaffe.errors import DataError

_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
_COEF_SCALE = 1 << _COEF_BITS


def _pil() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a dependency
        raise DataError("reading images needs Pillow: pip install Pillow") from e
    return Image


def _gray_from_rgb(rgb: np.ndarray, png: bool) -> np.ndarray:
    """RGB -> gray for uint8 as OpenCV's decoders do it.

    PNG: OpenCV has libpng convert (``png_set_rgb_to_gray`` with 0.299/0.587:
    15-bit weights 9797/19234/3737, truncated, gray pixels kept as they are).
    Others: OpenCV's ``cvtColor`` (14-bit weights 4899/9617/1868, rounded).
    """
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    if png:
        mixed = (r * 9797 + g * 19234 + b * 3737) >> 15
        return np.where((r == g) & (g == b), r, mixed).astype(np.uint8)
    return ((r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14).astype(np.uint8)


def _to_array(img, mode: str, png: bool, where: str) -> np.ndarray:
    """A decoded PIL image -> H x W x C uint8 in OpenCV's channel order."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit gray: OpenCV keeps it 16-bit only in "unchanged" mode, which
        # Caffe then refuses (its datums are 8-bit); colour/gray take the top byte.
        if mode == "unchanged":
            raise DataError(f"{where}: 16-bit images are not supported (Caffe needs 8-bit images)")
        gray = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
        return gray[..., None] if mode == "gray" else np.repeat(gray[..., None], 3, axis=2)
    if mode == "gray":
        if img.mode == "L":
            return np.asarray(img)[..., None]
        return _gray_from_rgb(np.asarray(img.convert("RGB")), png)[..., None]
    if mode == "color":
        return np.ascontiguousarray(np.asarray(img.convert("RGB"))[..., ::-1])
    # "unchanged"
    if img.mode in ("L", "1"):
        return np.asarray(img.convert("L"))[..., None]
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
    return np.ascontiguousarray(np.asarray(img.convert("RGB"))[..., ::-1])


def decode_image(data: bytes, mode: str = "color", where: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP...) to H x W x C uint8 (BGR).

    ``mode`` is "color" (3 channels; ``cv::IMREAD_COLOR``), "gray" (1;
    ``IMREAD_GRAYSCALE``) or "unchanged" (the file's own channels;
    ``IMREAD_UNCHANGED``). ``where`` goes into error messages.
    """
    if mode not in ("color", "gray", "unchanged"):
        raise DataError(f"{where}: unknown decode mode {mode!r}")
    Image = _pil()
    try:
        img = Image.open(io.BytesIO(data))
        if mode == "gray" and img.format == "JPEG":
            img.draft("L", img.size)  # libjpeg converts, as it does for OpenCV
        img.load()
        fmt = img.format
        if mode != "unchanged":
            from PIL import ImageOps

            img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{where}: cannot decode image: {e}") from None
    return _to_array(img, mode, fmt == "PNG", where)


def read_image(path: str | Path, height: int = 0, width: int = 0, is_color: bool = True) -> np.ndarray:
    """Caffe's ``ReadImageToCVMat``: read a file, optionally resize to height x width.

    Returns H x W x 3 (BGR) uint8, or H x W x 1 when ``is_color`` is false.
    Resizing happens only when both ``height`` and ``width`` are positive.
    Raises DataError naming the file when it is missing or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read image: {e.strerror or e}") from None
    img = decode_image(data, "color" if is_color else "gray", str(path))
    if height > 0 and width > 0:
        img = resize_linear(img, height, width)
    return img


def _linear_taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, ...]:
    """Per output index: the two source indices and their 11-bit weights, as OpenCV computes them.

    OpenCV moves a tap that falls off the edge onto the edge pixel with weight
    1 for columns (``clamp_weights``), but for rows keeps the weights and
    clips each of the two row indices, which rounds differently.
    """
    scale = 1.0 / (dst / src)  # OpenCV keeps the inverse scale and inverts it
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)  # OpenCV holds fx in a float
    s = np.floor(f).astype(np.int64)
    f = f - s.astype(np.float32)
    if clamp_weights:
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= src - 1
        f[high], s[high] = 0, src - 1
    # saturate_cast<short>(cbuf[k] * 2048): each weight rounded (half to even) on its own
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    return np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1), w0, w1


def resize_linear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv::resize(img, Size(width, height), INTER_LINEAR)`` for H x W x C uint8 images.

    Horizontal then vertical pass in integers, weights scaled by 2048 and the
    result rounded the way OpenCV's SIMD row kernel rounds (shift by 4, 16-bit
    multiply-high, then +2 >> 2); an exact halving in both directions is a
    rounded 2x2 mean, as OpenCV switches INTER_LINEAR to INTER_AREA there.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise DataError(f"resize_linear needs an H x W x C uint8 image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise DataError(f"resize_linear: target size {height}x{width} must be positive")
    if (height, width) == (h, w):
        return img.copy()
    if h == 2 * height and w == 2 * width:
        x = img.astype(np.uint16)
        s = x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]
        return ((s + 2) >> 2).astype(np.uint8)
    xs0, xs1, a0, a1 = _linear_taps(w, width, clamp_weights=True)
    ys0, ys1, b0, b1 = _linear_taps(h, height, clamp_weights=False)
    x = img.astype(np.int32)
    rows = x[:, xs0] * a0[None, :, None] + x[:, xs1] * a1[None, :, None]  # (h, width, C), < 2^20
    r0 = (rows[ys0] >> 4) * b0[:, None, None] >> 16
    r1 = (rows[ys1] >> 4) * b1[:, None, None] >> 16
    return np.clip((r0 + r1 + 2) >> 2, 0, 255).astype(np.uint8)


def encode_image(img: np.ndarray, fmt: str, where: str = "image") -> bytes:
    """Encode H x W x C uint8 (BGR, or 1-channel gray) as ``fmt`` ("png", "jpg", "bmp"...).

    Like ``cv::imencode``; JPEG quality is OpenCV's default, 95.
    """
    Image = _pil()
    fmt = fmt.lower().lstrip(".")
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "png": "PNG", "bmp": "BMP",
                  "tif": "TIFF", "tiff": "TIFF", "ppm": "PPM", "pgm": "PPM", "webp": "WEBP"}.get(fmt)
    if pil_format is None:
        raise DataError(f"{where}: cannot encode as {fmt!r}; use png, jpg, bmp, tiff, ppm or webp")
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or img.dtype != np.uint8:
        raise DataError(f"{where}: cannot encode a {img.dtype} {img.shape} image")
    if img.shape[2] == 1:
        pil = Image.fromarray(np.ascontiguousarray(img[..., 0]), "L")
    elif img.shape[2] == 3:
        pil = Image.fromarray(np.ascontiguousarray(img[..., ::-1]), "RGB")
    else:
        if pil_format == "JPEG":
            raise DataError(f"{where}: JPEG cannot hold an alpha channel")
        pil = Image.fromarray(np.ascontiguousarray(img[..., [2, 1, 0, 3]]), "RGBA")
    out = io.BytesIO()
    options = {"quality": 95} if pil_format in ("JPEG", "WEBP") else {}
    pil.save(out, format=pil_format, **options)
    return out.getvalue()


def hwc_to_chw(img: np.ndarray) -> np.ndarray:
    """H x W x C -> C x H x W (Caffe's Datum layout), contiguous."""
    return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))
