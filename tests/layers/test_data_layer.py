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


def _png(arr):
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("backend", ["LMDB", "LEVELDB"])
def test_encoded_datums_are_decoded_like_caffe(tmp_path, backend):
    from tinycaffe.data.datum import encoded_datum
    from tinycaffe.data.db import DatumWriter

    if backend == "LEVELDB":
        pytest.importorskip("plyvel")
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    with DatumWriter(tmp_path / "db", backend.lower()) as w:
        for i, arr in enumerate(rgb):
            w.put(f"{i:08d}".encode(), encoded_datum(_png(arr), i).SerializeToString())
    text = f"""
    layer {{ name: "d" type: "Data" top: "data" top: "label"
             transform_param {{ force_gray: {'true' if backend == 'LEVELDB' else 'false'} }}
             data_param {{ source: "{tmp_path / 'db'}" batch_size: 3 backend: {backend} }} }}"""
    net = tinycaffe.Net(text)
    net.forward()
    if backend == "LMDB":  # decoded as BGR, C x H x W
        np.testing.assert_array_equal(net.blobs["data"].data, rgb[..., ::-1].transpose(0, 3, 1, 2))
    else:  # force_gray: one channel, libpng's luma
        r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
        np.testing.assert_array_equal(net.blobs["data"].data[:, 0], (r * 9797 + g * 19234 + b * 3737) >> 15)
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 1, 2])
    net.close()
