"""Image decoding, resizing and encoding as Caffe does them through OpenCV (tinycaffe.data.image)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tinycaffe.data.image import decode_image, encode_image, hwc_to_chw, read_image, resize_linear
from tinycaffe.errors import DataError


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr, mode).save(out, format="PNG")
    return out.getvalue()


def bilinear_reference(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Plain float64 bilinear with pixel-centre alignment and edge clamping (no fixed point)."""
    h, w, c = img.shape
    out = np.empty((height, width, c))
    for y in range(height):
        fy = min(max((y + 0.5) * h / height - 0.5, 0.0), h - 1.0)
        y0 = int(np.floor(fy))
        y1 = min(y0 + 1, h - 1)
        for x in range(width):
            fx = min(max((x + 0.5) * w / width - 0.5, 0.0), w - 1.0)
            x0 = int(np.floor(fx))
            x1 = min(x0 + 1, w - 1)
            ay, ax = fy - y0, fx - x0
            top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
            bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
            out[y, x] = top * (1 - ay) + bottom * ay
    return out


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), nh=st.integers(1, 12), nw=st.integers(1, 12),
       c=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_resize_is_bilinear_within_fixed_point_rounding(h, w, nh, nw, c, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    got = resize_linear(img, nh, nw)
    assert got.shape == (nh, nw, c) and got.dtype == np.uint8
    if (h, w) == (2 * nh, 2 * nw):  # OpenCV switches to a 2x2 mean here
        ref = img.reshape(nh, 2, nw, 2, c).astype(np.float64).mean(axis=(1, 3))
    else:
        ref = bilinear_reference(img.astype(np.float64), nh, nw)
    # 11-bit weights plus OpenCV's truncating row kernel: at most 1.5 levels off the exact value.
    assert np.abs(got - ref).max() <= 1.5


def test_resize_keeps_constant_images_and_same_size_copies():
    img = np.full((7, 5, 3), 200, np.uint8)
    np.testing.assert_array_equal(resize_linear(img, 11, 3), np.full((11, 3, 3), 200, np.uint8))
    noisy = np.random.default_rng(0).integers(0, 256, (4, 6, 1), dtype=np.uint8)
    same = resize_linear(noisy, 4, 6)
    np.testing.assert_array_equal(same, noisy)
    assert same is not noisy


def test_resize_halving_is_the_rounded_2x2_mean():
    img = np.array([[[1], [2]], [[3], [4]]], np.uint8)  # mean 2.5 -> rounds up, as (s + 2) >> 2
    assert resize_linear(img, 1, 1)[0, 0, 0] == 3


def test_decode_gives_bgr_gray_and_unchanged_channels():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 10   # R
    rgb[..., 2] = 200  # B
    data = png_bytes(rgb)
    bgr = decode_image(data, "color")
    assert bgr.shape == (2, 3, 3) and (bgr[..., 0] == 200).all() and (bgr[..., 2] == 10).all()
    gray = decode_image(data, "gray")
    # libpng's weights (9797 R + 3737 B) >> 15, truncated: 2989 + 22833 -> 25
    assert gray.shape == (2, 3, 1) and (gray == (10 * 9797 + 200 * 3737) >> 15).all()
    assert decode_image(png_bytes(rgb[..., 0]), "unchanged").shape == (2, 3, 1)
    rgba = np.dstack([rgb, np.full((2, 3), 7, np.uint8)])
    bgra = decode_image(png_bytes(rgba, "RGBA"), "unchanged")
    assert bgra.shape == (2, 3, 4) and (bgra[..., 0] == 200).all() and (bgra[..., 3] == 7).all()
    assert decode_image(png_bytes(rgba, "RGBA"), "color").shape == (2, 3, 3)


def test_decode_applies_exif_orientation_except_unchanged():
    img = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    out, exif = io.BytesIO(), Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(img).save(out, format="JPEG", exif=exif)
    assert decode_image(out.getvalue(), "color").shape == (6, 4, 3)
    assert decode_image(out.getvalue(), "gray").shape == (6, 4, 1)
    assert decode_image(out.getvalue(), "unchanged").shape == (4, 6, 3)


def test_encode_then_decode_round_trips_losslessly_in_png():
    img = np.random.default_rng(2).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(encode_image(img, "png"), "color"), img)
    gray = img[..., :1]
    np.testing.assert_array_equal(decode_image(encode_image(gray, ".PNG"), "unchanged"), gray)
    jpg = decode_image(encode_image(img, "jpg"), "color")
    assert jpg.shape == img.shape
    with pytest.raises(DataError, match="cannot encode as 'gif2'"):
        encode_image(img, "gif2")


def test_read_image_resizes_and_names_bad_files(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img[..., ::-1])
    assert read_image(tmp_path / "a.png", 4, 5).shape == (4, 5, 3)
    assert read_image(tmp_path / "a.png", 4, 0).shape == (9, 7, 3)  # both or neither, as Caffe
    assert read_image(tmp_path / "a.png", is_color=False).shape == (9, 7, 1)
    assert hwc_to_chw(read_image(tmp_path / "a.png")).shape == (3, 9, 7)
    with pytest.raises(DataError, match=r"missing\.png: cannot read image"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"junk\.jpg: cannot decode image"):
        read_image(tmp_path / "junk.jpg")


def test_16_bit_gray_keeps_the_high_byte_and_unchanged_refuses_it():
    g = np.array([[0x1234, 0xFF01]], np.uint16)
    out = io.BytesIO()
    Image.fromarray(g).save(out, format="PNG")
    np.testing.assert_array_equal(decode_image(out.getvalue(), "gray")[..., 0], [[0x12, 0xFF]])
    assert decode_image(out.getvalue(), "color").shape == (1, 2, 3)
    with pytest.raises(DataError, match="16-bit images are not supported"):
        decode_image(out.getvalue(), "unchanged")
