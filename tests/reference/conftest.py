"""Fixtures for checks against real Caffe's outputs in ../shared/data/caffe-reference."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

REFERENCE = SHARED / "data" / "caffe-reference"
MODELS = sorted(p.name for p in REFERENCE.iterdir() if p.is_dir()) if REFERENCE.is_dir() else []


def weights_file(folder: Path) -> Path:
    for pattern in ("*.caffemodel", "*.caffemodel.h5"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(f"no caffemodel in {folder}")


@pytest.fixture(scope="session")
def cifar10_test_lmdb(tmp_path_factory) -> Path:
    """The official CIFAR-10 test batch as the LMDB Caffe's converter writes."""
    from tinycaffe.data.cifar10 import read_cifar10_bin
    from tinycaffe.data.datum import array_to_datum
    from tinycaffe.data.lmdb_reader import write_lmdb

    src = SHARED / "data" / "cifar10" / "test_batch.bin"
    if not src.exists():
        pytest.skip(f"../shared not found ({src}): the accuracy checks need the CIFAR-10 test set")
    images, labels = read_cifar10_bin(src)
    db = tmp_path_factory.mktemp("cifar10") / "cifar10_test_lmdb"
    records = (
        (f"{i:05d}".encode(), array_to_datum(img, int(lab)).SerializeToString())
        for i, (img, lab) in enumerate(zip(images, labels))
    )
    write_lmdb(db, records, map_size=len(images) * 8192 + (16 << 20))
    return db
