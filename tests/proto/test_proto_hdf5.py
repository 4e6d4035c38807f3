"""Caffe's HDF5 weights files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tinycaffe.errors import FormatError
from tinycaffe.proto.caffemodel import load_weights
from tinycaffe.proto.hdf5 import read_hdf5_weights

h5py = pytest.importorskip("h5py")

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "data" / "caffe-reference"


@pytest.fixture
def proto_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: {SHARED}")
    return SHARED


def test_layer_order_is_caffes(proto_shared: Path) -> None:
    from tinycaffe.proto.hdf5 import _heap_order

    path = REFERENCE / "BXuan694_Caffe__cifar10_full_iter_60000" / "cifar10_full_iter_60000.caffemodel.h5"
    with h5py.File(path, "r") as f:
        order = _heap_order(str(path), f["data"], h5py)
    # The train net's layer order, which h5py's alphabetical listing loses.
    assert order == [
        "cifar", "conv1", "pool1", "relu1", "norm1", "conv2", "relu2", "pool2",
        "norm2", "conv3", "relu3", "pool3", "ip1", "loss",
    ]


def test_matches_binary_model_layout(proto_shared: Path) -> None:
    h5 = load_weights(REFERENCE / "BXuan694_Caffe__cifar10_quick_iter_5000" / "cifar10_quick_iter_5000.caffemodel.h5")
    binary = load_weights(REFERENCE / "BXuan694_Caffe__cifar10_quick_iter_4000" / "cifar10_quick_iter_4000.caffemodel")
    assert list(h5) == list(binary)
    assert [[b.data.shape for b in v] for v in h5.values()] == [[b.data.shape for b in v] for v in binary.values()]


def _write(path: Path, layers: dict[str, list[np.ndarray]], **kwargs) -> None:
    with h5py.File(path, "w", **kwargs) as f:
        data = f.create_group("data")
        for name, blobs in layers.items():
            group = data.create_group(name)
            for i, blob in enumerate(blobs):
                group.create_dataset(str(i), data=blob)


def test_insertion_order_and_numeric_blob_order(tmp_path: Path) -> None:
    blobs = [np.full((i + 1,), i, np.float32) for i in range(12)]
    layers = {"zeta": blobs, "relu": [], "alpha": [np.float64(2.5) * np.ones((2, 3))], "mid": [np.array(1.5)]}
    for kwargs in ({}, {"track_order": True}, {"libver": "latest"}):
        path = tmp_path / "w.caffemodel.h5"
        _write(path, layers, **kwargs)
        got = read_hdf5_weights(path)
        if kwargs.get("libver") != "latest":  # new-style groups: no heap, h5py's order
            assert list(got) == ["zeta", "alpha", "mid"]
        assert sorted(got) == ["alpha", "mid", "zeta"]
        assert [b.data[0] for b in got["zeta"]] == list(range(12))  # "10" after "9"
        assert got["alpha"][0].data.dtype == np.float32 and got["alpha"][0].data.shape == (2, 3)
        assert got["mid"][0].data.shape == () and not got["mid"][0].legacy


def test_bad_hdf5_files(tmp_path: Path) -> None:
    no_data = tmp_path / "nodata.h5"
    with h5py.File(no_data, "w") as f:
        f.create_group("other")
    with pytest.raises(FormatError, match="nodata.h5: no /data group"):
        read_hdf5_weights(no_data)
    gap = tmp_path / "gap.h5"
    _write(gap, {"a": []})
    with h5py.File(gap, "a") as f:
        f["data/a"].create_dataset("1", data=np.ones(2))
    with pytest.raises(FormatError, match="gap.h5: layer 'a'"):
        read_hdf5_weights(gap)
    text = tmp_path / "text.h5"
    text.write_bytes(b"not hdf5 at all")
    with pytest.raises(FormatError, match="text.h5"):
        read_hdf5_weights(text)
    with pytest.raises(FormatError, match="missing.h5"):
        read_hdf5_weights(tmp_path / "missing.h5")
    truncated = tmp_path / "cut.h5"
    _write(truncated, {"a": [np.ones(1000, np.float32)]})
    truncated.write_bytes(truncated.read_bytes()[:1500])
    with pytest.raises(FormatError, match="cut.h5"):
        load_weights(truncated)


def test_dispatch_by_signature_not_name(tmp_path: Path) -> None:
    path = tmp_path / "looks_binary.caffemodel"
    _write(path, {"a": [np.ones(3, np.float32)]})
    assert load_weights(path)["a"][0].data.tolist() == [1, 1, 1]


def test_without_h5py_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.h5"
    _write(path, {"a": [np.ones(3, np.float32)]})
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(FormatError, match=r"w.h5: .*pip install 'tinycaffe\[hdf5\]'"):
        load_weights(path)
