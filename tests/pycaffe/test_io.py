"""caffe.io: Transformer, load_image, resize_image, oversample, proto <-> array helpers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycaffe as caffe
from tinycaffe.errors import DataError, ShapeError


def test_preprocess_order_and_deprocess_round_trip():
    rng = np.random.default_rng(0)
    image = rng.random((5, 6, 3)).astype(np.float32)  # H x W x C in [0, 1]
    mean = rng.random(3).astype(np.float32) * 100
    t = caffe.io.Transformer({"data": (1, 3, 5, 6)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    out = t.preprocess("data", image)
    # transpose, swap, raw scale, subtract the mean, then input scale: pycaffe's order.
    expected = (image.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 5, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out[None]), image, atol=1e-5)


def test_preprocess_resizes_to_the_input_and_checks_its_settings():
    t = caffe.io.Transformer({"data": (1, 3, 8, 8)})
    t.set_transpose("data", (2, 0, 1))
    assert t.preprocess("data", np.ones((4, 4, 3), np.float32)).shape == (3, 8, 8)
    with pytest.raises(DataError, match="'label' is not one of the inputs"):
        t.set_raw_scale("label", 255)
    with pytest.raises(ShapeError, match="channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ShapeError, match="transpose order"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ShapeError, match="mean has 4 channels"):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ShapeError, match="does not fit input"):
        t.set_mean("data", np.zeros((3, 7, 7)))
    t.set_mean("data", np.zeros((3, 8, 8)))  # a whole mean image fits


def test_load_image_gives_rgb_floats_in_0_1(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    im = caffe.io.load_image(str(tmp_path / "rgb.png"))
    assert im.dtype == np.float32 and im.shape == (7, 9, 3)
    np.testing.assert_allclose(im, rgb / 255.0, atol=1e-7)

    gray = rgb[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    assert caffe.io.load_image(str(tmp_path / "gray.png")).shape == (7, 9, 3)  # repeated to colour
    g = caffe.io.load_image(str(tmp_path / "gray.png"), color=False)
    assert g.shape == (7, 9, 1)
    np.testing.assert_allclose(g[:, :, 0], gray / 255.0, atol=1e-7)

    rgba = np.dstack([rgb, np.full((7, 9), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "rgba.png")), rgb / 255.0, atol=1e-7)

    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg: cannot read image"):
        caffe.io.load_image(str(tmp_path / "bad.jpg"))
    with pytest.raises(DataError, match="missing.png: cannot read image"):
        caffe.io.load_image(str(tmp_path / "missing.png"))


def _bilinear_reference(im, h, w):
    """Loop-by-loop bilinear resize, pixel centres aligned, edges clamped."""
    H, W, C = im.shape
    out = np.zeros((h, w, C), np.float64)
    for i in range(h):
        y = min(max((i + 0.5) * H / h - 0.5, 0), H - 1)
        y0 = int(np.floor(y)); y1 = min(y0 + 1, H - 1); fy = y - y0
        for j in range(w):
            x = min(max((j + 0.5) * W / w - 0.5, 0), W - 1)
            x0 = int(np.floor(x)); x1 = min(x0 + 1, W - 1); fx = x - x0
            out[i, j] = ((1 - fy) * ((1 - fx) * im[y0, x0] + fx * im[y0, x1])
                         + fy * ((1 - fx) * im[y1, x0] + fx * im[y1, x1]))
    return out


@settings(max_examples=25, deadline=None)
@given(H=st.integers(1, 9), W=st.integers(1, 9), h=st.integers(1, 12), w=st.integers(1, 12),
       C=st.sampled_from([1, 3, 4]), seed=st.integers(0, 2**16))
def test_resize_image_matches_the_loop_reference(H, W, h, w, C, seed):
    im = np.random.default_rng(seed).standard_normal((H, W, C)).astype(np.float32)
    out = caffe.io.resize_image(im, (h, w))
    assert out.shape == (h, w, C) and out.dtype == np.float32
    np.testing.assert_allclose(out, _bilinear_reference(im.astype(np.float64), h, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("H, W, h, w", [(4, 5, 9, 11), (3, 3, 8, 6), (7, 2, 10, 10)])
def test_resize_image_upscaling_agrees_with_pillow(H, W, h, w):
    from PIL import Image

    im = np.random.default_rng(H * W).standard_normal((H, W)).astype(np.float32)
    pil = np.asarray(Image.fromarray(im, mode="F").resize((w, h), Image.BILINEAR))
    np.testing.assert_allclose(caffe.io.resize_image(im[:, :, None], (h, w))[:, :, 0], pil, atol=1e-5)


def test_resize_image_nearest_and_identity():
    im = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    np.testing.assert_array_equal(caffe.io.resize_image(im, (2, 2)), im)
    up = caffe.io.resize_image(im, (4, 4), interp_order=0)
    np.testing.assert_array_equal(up[:2, :2], np.broadcast_to(im[0, 0], (2, 2, 3)))
    np.testing.assert_array_equal(up[2:, 2:], np.broadcast_to(im[1, 1], (2, 2, 3)))


def test_oversample_corners_centre_and_mirrors():
    im = np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2)
    crops = caffe.io.oversample([im, im + 1000], (4, 4))
    assert crops.shape == (20, 4, 4, 2)
    starts = [(0, 0), (0, 4), (2, 0), (2, 4), (1, 2)]
    for k, (y, x) in enumerate(starts):
        np.testing.assert_array_equal(crops[k], im[y:y + 4, x:x + 4])
        np.testing.assert_array_equal(crops[5 + k], im[y:y + 4, x:x + 4][:, ::-1])
    np.testing.assert_array_equal(crops[10:], crops[:10] + 1000)
    with pytest.raises(ShapeError, match="larger than the images"):
        caffe.io.oversample([im], (7, 4))


def test_blobproto_and_datum_round_trips():
    arr = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(arr, diff=arr * 2)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), arr)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), arr * 2)
    vec = caffe.io.arraylist_to_blobprotovector_str([arr, arr + 1])
    back = caffe.io.blobprotovector_str_to_arraylist(vec)
    np.testing.assert_array_equal(back[1], arr + 1)

    img = np.random.default_rng(3).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    datum = caffe.io.array_to_datum(img, label=7)
    assert datum.label == 7 and len(datum.data) == img.size
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), img)
    floats = caffe.io.array_to_datum(img.astype(np.float32) / 3)
    np.testing.assert_allclose(caffe.io.datum_to_array(floats), img / 3, rtol=1e-6)
    with pytest.raises(ShapeError, match="C x H x W"):
        caffe.io.array_to_datum(np.zeros((2, 2)))
