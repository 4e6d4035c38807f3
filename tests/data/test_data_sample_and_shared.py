"""The bundled sample, and checks against the real CIFAR-10 set and Caffe's mean.

The second group needs ../shared (next to the repository) and skips without it.
"""

from pathlib import Path

import numpy as np
import pytest

import tinycaffe
from tinycaffe.data.cifar10 import convert_cifar10, read_cifar10_bin
from tinycaffe.data.lmdb_reader import LMDBReader
from tinycaffe.proto.binaryproto import read_blob

SAMPLE = Path(tinycaffe.__file__).resolve().parent / "sample"


@pytest.fixture(scope="module")
def shared() -> Path:
    root = Path(__file__).resolve().parents[2].parent / "shared"
    if not root.is_dir():
        pytest.skip("../shared not found (real CIFAR-10 binaries and Caffe reference outputs)")
    return root


def test_sample_is_bundled():
    db = SAMPLE / "cifar10_test_lmdb"
    assert not (db / "lock.mdb").exists()
    assert (db / "data.mdb").stat().st_size < 5 << 20
    with LMDBReader(db) as r:
        assert len(r) == 1000 and r.shape == (3, 32, 32) and r.dtype == np.uint8
        _, labels = r.read_batch(1000)
        assert set(labels.tolist()) == set(range(10))
    mean = read_blob(SAMPLE / "mean.binaryproto")
    assert mean.shape == (1, 3, 32, 32) and 100 < mean.mean() < 130


def test_sample_mean_matches_caffe(shared):
    ours = read_blob(SAMPLE / "mean.binaryproto")
    caffe = read_blob(shared / "data" / "caffe-reference" / "mean.binaryproto")
    assert np.abs(ours.reshape(caffe.shape) - caffe).max() < 1e-5


def test_sample_records_match_test_batch(shared):
    images, labels = read_cifar10_bin(shared / "data" / "cifar10" / "test_batch.bin")
    with LMDBReader(SAMPLE / "cifar10_test_lmdb") as r:
        x, y = r.read_batch(1000)
    assert y[0] == labels[0] == 3  # the first CIFAR-10 test image is a cat
    np.testing.assert_array_equal(x[0], images[0])
    np.testing.assert_array_equal(x, images[:1000])
    np.testing.assert_array_equal(y, labels[:1000])


def test_full_conversion_matches_caffe_mean(shared, tmp_path):
    src = shared / "data" / "cifar10"
    info = convert_cifar10(src, tmp_path)
    assert (info["train_records"], info["test_records"]) == (50000, 10000)
    caffe = read_blob(shared / "data" / "caffe-reference" / "mean.binaryproto")
    assert np.abs(read_blob(info["mean_file"]).reshape(caffe.shape) - caffe).max() < 1e-5
    last_x, last_y = read_cifar10_bin(src / "data_batch_5.bin")
    with LMDBReader(info["train_lmdb"]) as r:
        r.read_batch(49999)
        x, y = r.read_batch(2)  # record 49999, then the wrap to record 0
    first_x, first_y = read_cifar10_bin(src / "data_batch_1.bin")
    np.testing.assert_array_equal(x, np.stack([last_x[-1], first_x[0]]))
    np.testing.assert_array_equal(y, [last_y[-1], first_y[0]])
