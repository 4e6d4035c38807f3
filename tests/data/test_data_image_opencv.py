"""Dev-only: our Pillow/NumPy image path against OpenCV itself (pip install "opencv-python-headless<5").

On x86-64 with OpenCV 4.14 both decoding (JPEG/PNG/BMP; colour, gray,
unchanged) and INTER_LINEAR resizing agree exactly; OpenCV builds with other
SIMD paths (e.g. NEON on ARM) may round the last bit of a resize differently.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tinycaffe.data.image import decode_image, resize_linear

cv2 = pytest.importorskip("cv2")
pytestmark = pytest.mark.crosscheck


def _photo(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([(xx * 5) % 256, (yy * 7) % 256, ((xx + yy) * 3) % 256], -1)
    noise = np.random.default_rng(0).integers(-20, 20, smooth.shape)
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
@pytest.mark.parametrize("mode, flag", [("color", 1), ("gray", 0), ("unchanged", -1)])
def test_decoding_matches_opencv(fmt, mode, flag):
    out = io.BytesIO()
    Image.fromarray(_photo(37, 53)).save(out, format=fmt)
    ref = cv2.imdecode(np.frombuffer(out.getvalue(), np.uint8), flag)
    ref = ref[..., None] if ref.ndim == 2 else ref
    np.testing.assert_array_equal(decode_image(out.getvalue(), mode), ref)


def test_resize_matches_opencv_inter_linear():
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w, nh, nw = (int(v) for v in rng.integers(1, 80, 4))
        img = rng.integers(0, 256, (h, w, int(rng.choice([1, 3]))), dtype=np.uint8)
        ref = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR).reshape(nh, nw, -1)
        np.testing.assert_array_equal(resize_linear(img, nh, nw), ref, err_msg=f"{(h, w)} -> {(nh, nw)}")
    img = _photo(64, 48)
    np.testing.assert_array_equal(resize_linear(img, 32, 24), cv2.resize(img, (24, 32)))
    np.testing.assert_array_equal(resize_linear(img, 227, 227), cv2.resize(img, (227, 227)))


def test_jpeg_encoding_matches_opencv_byte_for_byte():
    from tinycaffe.data.image import encode_image

    img = cv2.GaussianBlur(_photo(33, 47), (5, 5), 2)
    ok, ref = cv2.imencode(".jpg", img)  # OpenCV's default quality, 95
    assert ok and encode_image(img, "jpg") == ref.tobytes()
    ok, ref = cv2.imencode(".png", img)
    np.testing.assert_array_equal(decode_image(encode_image(img, "png"), "unchanged"), cv2.imdecode(ref, -1))


def test_16_bit_gray_png_matches_opencv():
    g = np.random.default_rng(0).integers(0, 65536, (9, 7), dtype=np.uint16)
    ok, data = cv2.imencode(".png", g)
    for mode, flag in (("color", 1), ("gray", 0)):
        ref = cv2.imdecode(data, flag)
        ref = ref[..., None] if ref.ndim == 2 else ref
        np.testing.assert_array_equal(decode_image(data.tobytes(), mode), ref)
