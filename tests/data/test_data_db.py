"""Datum databases: encoded (JPEG/PNG) datums, LevelDB, and the writer convert-imageset uses."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tinycaffe.data.datum import array_to_datum, datum_to_array, encoded_datum
from tinycaffe.data.db import DatumWriter, open_reader
from tinycaffe.data.lmdb_reader import compute_image_mean
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


def png(arr, mode=None):
    out = io.BytesIO()
    Image.fromarray(arr, mode).save(out, format="PNG")
    return out.getvalue()


RNG = np.random.default_rng(0)
RGB = [RNG.integers(0, 256, (4, 3, 3), dtype=np.uint8) for _ in range(3)]


def test_encoded_datum_decodes_to_bgr_chw_with_its_own_channels():
    d = caffe_pb2.Datum.FromString(encoded_datum(png(RGB[0]), 7).SerializeToString())
    assert d.encoded and not d.HasField("channels")  # Caffe leaves the shape unset
    image, label = datum_to_array(d, "k")
    np.testing.assert_array_equal(image, RGB[0][..., ::-1].transpose(2, 0, 1))
    assert label == 7
    gray = encoded_datum(png(RGB[0][..., 0]), 1)
    assert datum_to_array(gray)[0].shape == (1, 4, 3)  # "unchanged": the file's one channel
    assert datum_to_array(gray, decode="color")[0].shape == (3, 4, 3)  # force_color
    assert datum_to_array(encoded_datum(png(RGB[0]), 1), decode="gray")[0].shape == (1, 4, 3)


def test_a_truncated_encoded_datum_names_its_key():
    d = caffe_pb2.Datum(data=png(RGB[0])[:20], encoded=True)
    with pytest.raises(DataError, match=r"some/key \(encoded datum\): cannot decode image"):
        datum_to_array(d, "some/key")


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_write_then_read_encoded_and_raw_records_in_key_order(tmp_path, backend):
    if backend == "leveldb":
        pytest.importorskip("plyvel")
    path = tmp_path / "db"
    with DatumWriter(path, backend) as w:
        w.COMMIT_EVERY = 2  # exercise the periodic commit
        for i, arr in enumerate(RGB):
            w.put(f"{i:08d}_x".encode(), encoded_datum(png(arr), i).SerializeToString())
    with open_reader(path, backend) as r:
        assert len(r) == 3 and r.shape == (3, 4, 3)
        images, labels = r.read_batch(4)  # wraps to the first record
        np.testing.assert_array_equal(labels, [0, 1, 2, 0])
        np.testing.assert_array_equal(images[1], RGB[1][..., ::-1].transpose(2, 0, 1))
        np.testing.assert_array_equal(images[3], images[0])
    mean = compute_image_mean(path, backend=backend)
    expected = np.mean([a[..., ::-1].transpose(2, 0, 1).astype(np.float32) for a in RGB], axis=0)
    np.testing.assert_allclose(mean[0], expected, rtol=1e-6)


def test_writer_refuses_an_existing_path_and_removes_a_failed_database(tmp_path):
    (tmp_path / "there").mkdir()
    with pytest.raises(DataError, match="already exists"):
        DatumWriter(tmp_path / "there")
    with pytest.raises(RuntimeError), DatumWriter(tmp_path / "db") as w:
        w.put(b"k", array_to_datum(RGB[0].transpose(2, 0, 1), 0).SerializeToString())
        raise RuntimeError("stop half way")
    assert not (tmp_path / "db").exists()


def test_leveldb_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="LevelDB not found"):
        open_reader(tmp_path / "nope", "leveldb")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a LevelDB directory"):
        open_reader(tmp_path / "empty", "leveldb")
    with pytest.raises(DataError, match="unknown database backend 'rocksdb'"):
        open_reader(tmp_path, "rocksdb")
    import sys

    monkeypatch.setitem(sys.modules, "plyvel", None)  # as where plyvel is not installed
    (tmp_path / "empty" / "CURRENT").write_text("MANIFEST-000001\n")
    with pytest.raises(DataError, match=r"needs the plyvel package: pip install 'tinycaffe\[leveldb\]'"):
        open_reader(tmp_path / "empty", "leveldb")


def test_the_wrong_backend_says_which_one_to_set(tmp_path):
    pytest.importorskip("plyvel")
    for backend in ("lmdb", "leveldb"):
        with DatumWriter(tmp_path / backend, backend) as w:
            w.put(b"0", array_to_datum(RGB[0].transpose(2, 0, 1), 0).SerializeToString())
    with pytest.raises(DataError, match=r"it is an LMDB: set data_param \{ backend: LMDB \}"):
        open_reader(tmp_path / "lmdb", "leveldb")
    with pytest.raises(DataError, match=r"set data_param \{ backend: LEVELDB \}"):
        open_reader(tmp_path / "leveldb", "lmdb")


def test_lmdb_writer_asks_for_a_smaller_map_when_address_space_is_refused(tmp_path, monkeypatch):
    # A 64-bit Pi kernel (39-bit addresses) and QEMU's user mode refuse Caffe's 1 TB map.
    import lmdb

    real_open, asked = lmdb.open, []

    def open_with_512gb_of_address_space(path, map_size, **kw):
        asked.append(map_size)
        if map_size > 1 << 39:
            raise lmdb.MemoryError(path, 12)
        return real_open(path, map_size=map_size, **kw)

    monkeypatch.setattr(lmdb, "open", open_with_512gb_of_address_space)
    with DatumWriter(tmp_path / "db", "lmdb") as w:
        w.put(b"00000000_x", encoded_datum(png(RGB[0]), 3).SerializeToString())
    assert asked[0] > 1 << 39 and asked[-1] <= 1 << 39
    monkeypatch.undo()
    with open_reader(tmp_path / "db", "lmdb") as r:
        assert len(r) == 1
