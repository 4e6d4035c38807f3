"""Single-blob .binaryproto files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.binaryproto import read_blob, write_blob

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture
def proto_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: {SHARED}")
    return SHARED


def test_cifar10_mean(proto_shared: Path) -> None:
    mean = read_blob(SHARED / "data" / "caffe-reference" / "mean.binaryproto")
    assert mean.shape == (1, 3, 32, 32) and mean.dtype == np.float32
    assert 100 < mean.mean() < 140


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (1, 3, 4, 4), (2, 1, 1, 1, 3)])
def test_round_trip(tmp_path: Path, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    path = tmp_path / "b.binaryproto"
    write_blob(path, array)
    back = read_blob(path)
    assert back.shape == shape and back.tobytes() == array.tobytes()


def test_legacy_and_double(tmp_path: Path) -> None:
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=2, double_data=[1, 2, 3, 4])
    path = tmp_path / "legacy.binaryproto"
    path.write_bytes(blob.SerializeToString())
    assert read_blob(path).tolist() == [[[[1, 2]], [[3, 4]]]]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="missing.binaryproto"):
        read_blob(tmp_path / "missing.binaryproto")
    bad = tmp_path / "bad.binaryproto"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(FormatError, match="bad.binaryproto"):
        read_blob(bad)
    bad.write_bytes(b"")
    with pytest.raises(FormatError, match="bad.binaryproto: empty"):
        read_blob(bad)
    short = caffe_pb2.BlobProto(data=[1, 2, 3])
    short.shape.dim.extend([2, 2])
    bad.write_bytes(short.SerializeToString())
    with pytest.raises(FormatError, match=r"bad.binaryproto: 3 values for shape \(2, 2\)"):
        read_blob(bad)
    with pytest.raises(FormatError, match="cannot write"):
        write_blob(tmp_path / "no" / "x.binaryproto", np.zeros(2))
