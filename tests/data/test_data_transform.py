"""DataTransformer against a literal per-pixel port of Caffe's loop."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe.data.transform import DataTransformer
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.binaryproto import write_blob


def caffe_loop(img, mean, scale, crop, h_off, w_off, flip):
    """One image, element by element, indexed the way Caffe's Transform is."""
    c_n, h_n, w_n = img.shape
    oh, ow = (crop, crop) if crop else (h_n, w_n)
    out = np.zeros((c_n, oh, ow), np.float32)
    for c in range(c_n):
        for h in range(oh):
            for w in range(ow):
                src = (c, h_off + h, w_off + w)
                dst = (c, h, ow - 1 - w if flip else w)
                v = np.float32(img[src])
                if mean is not None:
                    v = np.float32(v - mean[src])
                out[dst] = np.float32(v * scale)
    return out


def slice_ref(img, mean, scale, crop, h_off, w_off, flip):
    """The same, with slicing (fast enough to search all offsets)."""
    _, h_n, w_n = img.shape
    oh, ow = (crop, crop) if crop else (h_n, w_n)
    win = np.s_[:, h_off:h_off + oh, w_off:w_off + ow]
    x = img.astype(np.float32)[win]
    if mean is not None:
        x = x - mean[win]
    if flip:
        x = x[:, :, ::-1]
    return x * np.float32(scale)


@st.composite
def cases(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    crop = draw(st.integers(0, min(h, w)))
    dtype = draw(st.sampled_from([np.uint8, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        batch = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    else:
        batch = (rng.standard_normal((n, c, h, w)) * 50).astype(np.float32)
    kind = draw(st.sampled_from(["none", "one", "per_channel", "file"]))
    mean_value = mean_file = None
    if kind == "one":
        mean_value = [draw(st.floats(0, 255, width=32))]
    elif kind == "per_channel":
        mean_value = [draw(st.floats(0, 255, width=32)) for _ in range(c)]
    elif kind == "file":
        mean_file = (rng.random((1, c, h, w)) * 255).astype(np.float32)
    scale = draw(st.sampled_from([1.0, 0.00390625, 0.017, 2.5]))
    return batch, crop, scale, mean_value, mean_file, seed


def build(tmp, crop, scale, mean_value, mean_file, mirror, phase, seed):
    p = caffe_pb2.TransformationParameter(scale=scale, mirror=mirror, crop_size=crop)
    mean = None
    if mean_value is not None:
        p.mean_value.extend(mean_value)
    if mean_file is not None:
        write_blob(Path(tmp) / "mean.binaryproto", mean_file)
        p.mean_file = str(Path(tmp) / "mean.binaryproto")
        mean = mean_file[0]
    return DataTransformer(p, phase, seed=seed), mean


def full_mean(mean_value, mean, shape):
    if mean_value is not None:
        mv = np.float32(mean_value) if len(mean_value) > 1 else np.float32(mean_value * shape[0])
        return np.broadcast_to(mv.reshape(-1, 1, 1), shape)
    return mean


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_test_phase_centre_crop_matches_caffe_loop(case):
    batch, crop, scale, mean_value, mean_file, seed = case
    with tempfile.TemporaryDirectory() as tmp:
        t, mean = build(tmp, crop, scale, mean_value, mean_file, False, "TEST", seed)
        out = t(batch)
    _, _, h, w = batch.shape
    assert out.dtype == np.float32 and out.shape[1:] == t.output_shape(batch.shape[1:])
    m = full_mean(mean_value, mean, batch.shape[1:])
    h_off, w_off = ((h - crop) // 2, (w - crop) // 2) if crop else (0, 0)
    for i, img in enumerate(batch):
        np.testing.assert_array_equal(out[i], caffe_loop(img, m, scale, crop, h_off, w_off, False))


@settings(max_examples=60, deadline=None)
@given(case=cases(), mirror=st.booleans())
def test_train_phase_offsets_and_mirror_in_bounds(case, mirror):
    batch, crop, scale, mean_value, mean_file, seed = case
    with tempfile.TemporaryDirectory() as tmp:
        t, mean = build(tmp, crop, scale, mean_value, mean_file, mirror, "TRAIN", seed)
        out = t(batch)
        again = build(tmp, crop, scale, mean_value, mean_file, mirror, "TRAIN", seed)[0](batch)
    np.testing.assert_array_equal(out, again)  # same seed, same crops and flips
    _, _, h, w = batch.shape
    m = full_mean(mean_value, mean, batch.shape[1:])
    oh, ow = (crop, crop) if crop else (h, w)
    flips = (False, True) if mirror else (False,)
    for i, img in enumerate(batch):
        # Some in-bounds offset (and flip, if mirroring) must reproduce this image.
        hit = [(ho, wo, f) for ho in range(h - oh + 1) for wo in range(w - ow + 1) for f in flips
               if np.array_equal(out[i], slice_ref(img, m, scale, crop, ho, wo, f))]
        assert hit, f"image {i}: no in-bounds crop/mirror reproduces the output"
        ho, wo, f = hit[0]
        np.testing.assert_array_equal(out[i], caffe_loop(img, m, scale, crop, ho, wo, f))


def test_train_randomness_covers_all_offsets_and_flips():
    img = np.arange(25, dtype=np.uint8).reshape(1, 1, 5, 5)
    batch = np.repeat(img, 400, axis=0)
    t = DataTransformer(caffe_pb2.TransformationParameter(crop_size=3, mirror=True), "TRAIN", 1)
    out = t(batch)
    seen = set()
    for o in out:
        for ho in range(3):
            for wo in range(3):
                for f in (False, True):
                    if np.array_equal(o, slice_ref(img[0], None, 1.0, 3, ho, wo, f)):
                        seen.add((ho, wo, f))
    assert len(seen) == 18


def test_test_phase_never_mirrors():
    # The TEST phase takes the centre crop and no mirror, so scores repeat exactly.
    img = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    t = DataTransformer(caffe_pb2.TransformationParameter(mirror=True), "TEST", 0)
    out = t(np.repeat(img, 64, axis=0))
    assert all(np.array_equal(o[0], img[0, 0]) for o in out)


def test_train_phase_mirrors_at_random():
    img = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    t = DataTransformer(caffe_pb2.TransformationParameter(mirror=True), "TRAIN", 0)
    out = t(np.repeat(img, 64, axis=0))
    flipped = np.array([np.array_equal(o[0], img[0, 0, :, ::-1]) for o in out])
    plain = np.array([np.array_equal(o[0], img[0, 0]) for o in out])
    assert (flipped | plain).all() and flipped.any() and plain.any()


def test_output_shape():
    t = DataTransformer(caffe_pb2.TransformationParameter(crop_size=28), "TEST")
    assert t.output_shape((3, 32, 40)) == (3, 28, 28)
    assert DataTransformer(caffe_pb2.TransformationParameter(), "TEST").output_shape(
        (3, 32, 32)) == (3, 32, 32)
    with pytest.raises(DataError, match="crop_size"):
        t.output_shape((3, 20, 32))


def test_errors(tmp_path):
    with pytest.raises(DataError, match="same time"):
        DataTransformer(caffe_pb2.TransformationParameter(mean_file="m", mean_value=[1]), "TEST")
    with pytest.raises(DataError, match=str(tmp_path / "missing.binaryproto")):
        DataTransformer(caffe_pb2.TransformationParameter(
            mean_file=str(tmp_path / "missing.binaryproto")), "TEST")
    with pytest.raises(DataError, match="phase"):
        DataTransformer(caffe_pb2.TransformationParameter(), "VAL")
    t = DataTransformer(caffe_pb2.TransformationParameter(mean_value=[1, 2]), "TEST")
    with pytest.raises(DataError, match="mean_value"):
        t(np.zeros((1, 3, 4, 4), np.uint8))
    with pytest.raises(DataError, match="batch"):
        t(np.zeros((3, 4, 4), np.uint8))
    write_blob(tmp_path / "m.binaryproto", np.zeros((1, 3, 32, 32), np.float32))
    t = DataTransformer(caffe_pb2.TransformationParameter(
        mean_file=str(tmp_path / "m.binaryproto")), "TEST")
    with pytest.raises(DataError, match=r"\(1, 3, 32, 32\).*\(3, 28, 28\)"):
        t(np.zeros((2, 3, 28, 28), np.uint8))


def test_cifar_like_scale_and_mean_value():
    batch = np.full((2, 3, 32, 32), 200, np.uint8)
    p = caffe_pb2.TransformationParameter(scale=0.5, mean_value=[100, 50, 0])
    out = DataTransformer(p, "TEST")(batch)
    np.testing.assert_array_equal(out[:, :, 0, 0], [[50, 75, 100]] * 2)
