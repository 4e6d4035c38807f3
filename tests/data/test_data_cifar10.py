"""CIFAR-10 binary reading and conversion on tiny synthetic files."""

import lmdb
import numpy as np
import pytest

from tinycaffe.data.cifar10 import RECORD_BYTES, convert_cifar10, read_cifar10_bin
from tinycaffe.data.lmdb_reader import LMDBReader
from tinycaffe.errors import DataError
from tinycaffe.proto.binaryproto import read_blob


def write_bin(path, images, labels):
    rec = np.concatenate([labels.reshape(-1, 1).astype(np.uint8),
                          images.reshape(len(images), -1)], axis=1)
    path.write_bytes(rec.tobytes())


@pytest.fixture
def src(tmp_path):
    """data_batch_1..5 with 4 images each (20 train) and a 20-image test_batch."""
    rng = np.random.default_rng(7)
    d = tmp_path / "src"
    d.mkdir()
    train_x = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    train_y = rng.integers(0, 10, 20, dtype=np.uint8)
    for i in range(5):
        write_bin(d / f"data_batch_{i + 1}.bin", train_x[4 * i:4 * i + 4],
                  train_y[4 * i:4 * i + 4])
    test_x = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    test_y = rng.integers(0, 10, 20, dtype=np.uint8)
    write_bin(d / "test_batch.bin", test_x, test_y)
    return d, train_x, train_y, test_x, test_y


def test_read_bin(src):
    d, _, _, test_x, test_y = src
    x, y = read_cifar10_bin(d / "test_batch.bin")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.uint8
    np.testing.assert_array_equal(x, test_x)
    np.testing.assert_array_equal(y, test_y)


def test_truncated_bin(src, tmp_path):
    raw = (src[0] / "test_batch.bin").read_bytes()
    bad = tmp_path / "short.bin"
    bad.write_bytes(raw[:-1])
    with pytest.raises(DataError, match="short.bin"):
        read_cifar10_bin(bad)
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="short.bin"):
        read_cifar10_bin(bad)
    with pytest.raises(DataError, match="absent.bin"):
        read_cifar10_bin(tmp_path / "absent.bin")


def test_bad_label(tmp_path):
    (tmp_path / "b.bin").write_bytes(bytes([10]) + bytes(RECORD_BYTES - 1))
    with pytest.raises(DataError, match="label 10"):
        read_cifar10_bin(tmp_path / "b.bin")


def test_convert(src, tmp_path):
    d, train_x, train_y, test_x, test_y = src
    info = convert_cifar10(d, tmp_path / "out")
    assert info["train_records"] == 20 and info["test_records"] == 20
    for db, x, y in ((info["train_lmdb"], train_x, train_y), (info["test_lmdb"], test_x, test_y)):
        with LMDBReader(db) as r:
            assert len(r) == 20 and r.shape == (3, 32, 32)
            got_x, got_y = r.read_batch(20)
            np.testing.assert_array_equal(got_x, x)
            np.testing.assert_array_equal(got_y, y)
    env = lmdb.open(info["train_lmdb"], readonly=True, lock=False)
    with env.begin() as txn:
        assert [k for k, _ in txn.cursor()] == [f"{i:05d}".encode() for i in range(20)]
    env.close()
    mean = read_blob(info["mean_file"])
    assert mean.shape == (1, 3, 32, 32) and mean.dtype == np.float32
    np.testing.assert_allclose(mean[0], train_x.mean(0), rtol=1e-6)


def test_convert_missing_and_truncated(src, tmp_path):
    d = src[0]
    (d / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match="data_batch_3.bin"):
        convert_cifar10(d, tmp_path / "out")
    (d / "data_batch_3.bin").write_bytes(bytes(RECORD_BYTES + 5))
    with pytest.raises(DataError, match="data_batch_3.bin"):
        convert_cifar10(d, tmp_path / "out")
    assert not (tmp_path / "out" / "cifar10_train_lmdb").exists()


def test_convert_refuses_existing_output(src, tmp_path):
    (tmp_path / "out" / "cifar10_test_lmdb").mkdir(parents=True)
    with pytest.raises(DataError, match="already exists"):
        convert_cifar10(src[0], tmp_path / "out")
