"""CIFAR-10 binary batches to Caffe LMDBs plus the training-set mean.

Does what Caffe's CIFAR-10 example does with ``convert_cifar_data`` and
``compute_image_mean``: one Datum per image (channels=3, height=32, width=32,
raw R,G,B planes in ``data``, the class in ``label``), keyed by the running
image index printed as ``%05d`` so that LMDB key order is file order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tinycaffe.data.lmdb_reader import compute_image_mean, write_lmdb
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.binaryproto import write_blob

RECORD_BYTES = 1 + 3 * 32 * 32  # label byte + R, G, B planes
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
# An LMDB page per record (the 3 KB value goes to an overflow page) plus the
# leaf entry, with room to spare; the file itself only grows as data is written.
_MAP_BYTES_PER_RECORD = 2 * 4096


def read_cifar10_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: ``(images uint8 (n,3,32,32), labels uint8 (n,))``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read CIFAR-10 file: {e.strerror or e}") from e
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte "
            "CIFAR-10 records (truncated or not a CIFAR-10 binary batch?)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(f"{path}: record {bad[0]} has label {labels[bad[0]]}, expected 0-9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def _datum_records(files: list[Path]) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(key, serialized Datum)`` for every image of ``files`` in order."""
    datum = caffe_pb2.Datum(channels=3, height=32, width=32)
    index = 0
    for f in files:  # one file in memory at a time
        images, labels = read_cifar10_bin(f)
        for image, label in zip(images, labels):
            datum.data = image.tobytes()
            datum.label = int(label)
            yield f"{index:05d}".encode(), datum.SerializeToString()
            index += 1


def _count_records(files: list[Path]) -> int:
    return sum(f.stat().st_size // RECORD_BYTES for f in files)


def convert_cifar10(src_dir: str | Path, dst_dir: str | Path) -> dict:
    """Convert the CIFAR-10 binary batches in ``src_dir`` into ``dst_dir``.

    Writes ``cifar10_train_lmdb`` (data_batch_1..5), ``cifar10_test_lmdb``
    (test_batch) and ``mean.binaryproto`` (float32 1x3x32x32 mean of the
    training LMDB). Returns a dict with the three paths, the record counts and
    the elapsed seconds. Raises DataError naming missing or bad source files,
    or an output LMDB that already exists.
    """
    t0 = time.perf_counter()
    src, dst = Path(src_dir), Path(dst_dir)
    train = [src / name for name in TRAIN_FILES]
    test = [src / TEST_FILE]
    missing = [str(p) for p in train + test if not p.is_file()]
    if missing:
        raise DataError(f"missing CIFAR-10 source files: {', '.join(missing)}")
    for f in train + test:  # catch a truncated file before writing anything
        size = f.stat().st_size
        if size == 0 or size % RECORD_BYTES:
            raise DataError(f"{f}: {size} bytes is not a whole number of "
                            f"{RECORD_BYTES}-byte CIFAR-10 records (truncated?)")
    train_db, test_db = dst / "cifar10_train_lmdb", dst / "cifar10_test_lmdb"
    for db in (train_db, test_db):  # check both before writing either
        if db.exists():
            raise DataError(f"{db}: already exists; remove it before converting")
    mean_path = dst / "mean.binaryproto"
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{dst}: cannot create output directory: {e.strerror or e}") from e

    n_train = write_lmdb(train_db, _datum_records(train),
                         _count_records(train) * _MAP_BYTES_PER_RECORD + (16 << 20))
    n_test = write_lmdb(test_db, _datum_records(test),
                        _count_records(test) * _MAP_BYTES_PER_RECORD + (16 << 20))
    mean = compute_image_mean(train_db)
    write_blob(mean_path, mean)
    return {
        "train_lmdb": str(train_db),
        "test_lmdb": str(test_db),
        "mean_file": str(mean_path),
        "train_records": n_train,
        "test_records": n_test,
        "seconds": time.perf_counter() - t0,
    }
