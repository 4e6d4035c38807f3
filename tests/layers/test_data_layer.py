"""The Data layer: batches from an LMDB, transformed; clear errors for bad sources."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe
from tinycaffe.data.datum import array_to_datum
from tinycaffe.data.lmdb_reader import write_lmdb
from tinycaffe.errors import DataError


def make_lmdb(path, n):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    write_lmdb(path, ((f"{i:05d}".encode(), array_to_datum(images[i], i % 10).SerializeToString())
                      for i in range(n)), map_size=1 << 24)
    return images


def net_text(source, batch, phase_rules=""):
    return f"""
    layer {{ name: "d" type: "Data" top: "data" top: "label" {phase_rules}
             transform_param {{ scale: 0.5 mean_value: 10 }}
             data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} }}
    """


def test_batches_in_key_order_transformed(tmp_path):
    images = make_lmdb(tmp_path / "db", 6)
    net = tinycaffe.Net(net_text(tmp_path / "db", 3))
    net.forward()
    np.testing.assert_allclose(net.blobs["data"].data, (images[:3].astype(np.float32) - 10) * 0.5)
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 1, 2])
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, [3, 4, 5])
    net.forward()  # 3 divides 6: a new pass starts cleanly
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 1, 2])
    net.close()


def test_test_phase_refuses_a_batch_that_wraps(tmp_path):
    make_lmdb(tmp_path / "db", 5)
    net = tinycaffe.Net(net_text(tmp_path / "db", 2))
    net.forward()
    net.forward()
    with pytest.raises(DataError, match=r"batch 2 would run past the end of the 5 records"):
        net.forward()
    net.close()


def test_train_phase_wraps_like_caffe(tmp_path):
    make_lmdb(tmp_path / "db", 5)
    net = tinycaffe.Net(net_text(tmp_path / "db", 2), phase="train")
    labels = []
    for _ in range(3):
        net.forward()
        labels += list(net.blobs["label"].data)
    assert labels == [0, 1, 2, 3, 4, 0]
    net.close()


def test_train_and_test_nets_may_read_the_same_lmdb(tmp_path):
    make_lmdb(tmp_path / "db", 4)
    a = tinycaffe.Net(net_text(tmp_path / "db", 2), phase="train")
    b = tinycaffe.Net(net_text(tmp_path / "db", 2), phase="test")
    a.forward()
    b.forward()
    a.close()
    b.close()


def test_missing_lmdb_names_layer_and_path(tmp_path):
    with pytest.raises(DataError, match=rf"layer 'd': .*{tmp_path.name}.*nope.*not found"):
        tinycaffe.Net(net_text(tmp_path / "nope", 2))
