"""LMDBReader, write_lmdb and compute_image_mean on small LMDBs made in tmp_path."""

import numpy as np
import pytest

from tinycaffe.data.datum import array_to_datum
from tinycaffe.data.lmdb_reader import LMDBReader, compute_image_mean, write_lmdb
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


def make_db(path, images, labels):
    records = [(f"{i:05d}".encode(), array_to_datum(im, lb).SerializeToString())
               for i, (im, lb) in enumerate(zip(images, labels))]
    write_lmdb(path, records, map_size=1 << 22)
    return path


@pytest.fixture
def five(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 4, 6), dtype=np.uint8)
    labels = np.array([4, 0, 9, 2, 7])
    return make_db(tmp_path / "db", images, labels), images, labels


def test_batches_cycle_in_key_order(five):
    path, images, labels = five
    with LMDBReader(path) as r:
        assert len(r) == 5 and r.shape == (3, 4, 6) and r.dtype == np.uint8
        for expect in ([0, 1, 2], [3, 4, 0], [1, 2, 3]):
            x, y = r.read_batch(3)
            assert x.shape == (3, 3, 4, 6) and x.dtype == np.uint8
            np.testing.assert_array_equal(x, images[expect])
            np.testing.assert_array_equal(y, labels[expect])
        x, y = r.read_batch(12)  # more than the whole LMDB: wraps twice
        np.testing.assert_array_equal(y, labels[[4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]])


def test_buffers_reused_for_same_batch_size(five):
    with LMDBReader(five[0]) as r:
        a, _ = r.read_batch(2)
        b, _ = r.read_batch(2)
        assert a is b


def test_keys_sort_not_insertion_order(tmp_path):
    # Keys are ascending bytes: "00002" < "00010" (Caffe's %05d keeps file order).
    imgs = np.arange(3, dtype=np.uint8).reshape(3, 1, 1, 1)
    make_db(tmp_path / "db", imgs, [0, 1, 2])
    with LMDBReader(tmp_path / "db") as r:
        np.testing.assert_array_equal(r.read_batch(3)[0].ravel(), [0, 1, 2])


def test_float_datums(tmp_path):
    vals = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 1, 2, 2)
    recs = [(f"{i:05d}".encode(),
             caffe_pb2.Datum(channels=1, height=2, width=2, float_data=v.ravel().tolist(),
                             label=i).SerializeToString()) for i, v in enumerate(vals)]
    write_lmdb(tmp_path / "f", recs, map_size=1 << 20)
    with LMDBReader(tmp_path / "f") as r:
        x, y = r.read_batch(2)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, vals)


def test_inconsistent_shape_names_key(tmp_path):
    recs = [(b"00000", array_to_datum(np.zeros((3, 2, 2), np.uint8), 0).SerializeToString()),
            (b"00001", array_to_datum(np.zeros((3, 2, 3), np.uint8), 0).SerializeToString())]
    write_lmdb(tmp_path / "db", recs, map_size=1 << 20)
    with LMDBReader(tmp_path / "db") as r, pytest.raises(DataError, match="00001"):
        r.read_batch(2)


def test_garbage_record_names_key(tmp_path):
    recs = [(b"00000", array_to_datum(np.zeros((1, 1, 1), np.uint8), 0).SerializeToString()),
            (b"00001", b"\xff\xff\xff")]
    write_lmdb(tmp_path / "db", recs, map_size=1 << 20)
    with LMDBReader(tmp_path / "db") as r, pytest.raises(DataError, match="00001"):
        r.read_batch(2)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="nope"):
        LMDBReader(tmp_path / "nope")


def test_not_an_lmdb(tmp_path):
    with pytest.raises(DataError, match="not an LMDB"):
        LMDBReader(tmp_path)  # a directory without data.mdb
    (tmp_path / "data.mdb").write_bytes(b"this is not an lmdb" * 300)
    with pytest.raises(DataError, match=str(tmp_path)):
        LMDBReader(tmp_path)


def test_empty_lmdb(tmp_path):
    write_lmdb(tmp_path / "e", [], map_size=1 << 20)
    with pytest.raises(DataError, match="no records"):
        LMDBReader(tmp_path / "e")


def test_closed_reader(five):
    r = LMDBReader(five[0])
    r.close()
    r.close()
    with pytest.raises(DataError, match="closed"):
        r.read_batch(1)


def test_write_lmdb_refuses_existing_and_unsorted(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="already exists"):
        write_lmdb(tmp_path / "x", [], map_size=1 << 20)
    with pytest.raises(DataError, match="ascending"):
        write_lmdb(tmp_path / "u", [(b"b", b"1"), (b"a", b"2")], map_size=1 << 20)
    assert not (tmp_path / "u").exists()  # half-written LMDB removed


def test_write_lmdb_map_full(tmp_path):
    recs = [(f"{i:05d}".encode(), bytes(5000)) for i in range(100)]
    with pytest.raises(DataError, match="map_size"):
        write_lmdb(tmp_path / "small", recs, map_size=64 * 1024)
    assert not (tmp_path / "small").exists()


def test_compute_image_mean(five):
    path, images, _ = five
    mean = compute_image_mean(path, chunk=2)
    assert mean.shape == (1, 3, 4, 6) and mean.dtype == np.float32
    np.testing.assert_allclose(mean[0], images.mean(0), rtol=1e-6)


def _anonymous_kb() -> int:
    with open("/proc/self/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Anonymous:"))


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/smaps_rollup"),
                    reason="needs Linux's /proc/self/smaps_rollup to read the process's memory")
def test_memory_stays_flat_over_many_epochs(tmp_path):
    # A reused protobuf message once kept every record it parsed (upb arenas only
    # grow): 60,000 records of 12 KB here would have added about 700 MB.
    rng = np.random.default_rng(0)
    path = make_db(tmp_path / "db", rng.integers(0, 256, (50, 3, 64, 64), dtype=np.uint8), [1] * 50)
    with LMDBReader(path) as r:
        for _ in range(100):  # warm up: buffers, the LMDB pages, allocator pools
            r.read_batch(50)
        before = _anonymous_kb()
        for _ in range(1200):
            r.read_batch(50)
        grown_mb = (_anonymous_kb() - before) / 1024
    assert grown_mb < 50, f"anonymous memory grew by {grown_mb:.0f} MB over 1,200 epochs"
