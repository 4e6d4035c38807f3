"""Reading (and writing) LMDBs of Caffe Datum records.

Caffe's data layer walks an LMDB with a cursor in key order and, when it
falls off the end, seeks back to the first record, so an epoch boundary can
fall in the middle of a batch. ``LMDBReader`` does the same.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import lmdb
import numpy as np
from google.protobuf.message import DecodeError

from tinycaffe.data.datum import datum_to_array
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


def _key_text(key: bytes) -> str:
    return key.decode("ascii", errors="backslashreplace")


# LMDB allows one environment per file per process, but a train and a test
# Data layer (or two nets) may read the same LMDB, as Caffe allows: share it.
_envs: dict[str, list] = {}  # realpath -> [environment, reader count]
_envs_lock = threading.Lock()


def _open_shared(path: Path) -> lmdb.Environment:
    key = os.path.realpath(path)
    with _envs_lock:
        entry = _envs.get(key)
        if entry is None:
            entry = _envs[key] = [lmdb.open(key, readonly=True, lock=False, subdir=True, max_dbs=0), 0]
        entry[1] += 1
        return entry[0]


def _release_shared(path: Path) -> None:
    key = os.path.realpath(path)
    with _envs_lock:
        entry = _envs.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _envs[key]
            entry[0].close()


class LMDBReader:
    """Cycle through the Datum records of an LMDB directory in key order.

    The LMDB is opened read-only and without a lock file (``lock=False``), so
    it can be read from a read-only location; do not write to it meanwhile.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"{self.path}: LMDB not found")
        # Caffe opens LMDBs as directories holding data.mdb (no MDB_NOSUBDIR).
        if not (self.path / "data.mdb").is_file():
            raise DataError(f"{self.path}: not an LMDB directory (no data.mdb)")
        try:
            self._env = _open_shared(self.path)
            self._txn = self._env.begin(buffers=True)
            self._cursor = self._txn.cursor()
            self._len = int(self._txn.stat()["entries"])
            has_first = self._cursor.first()
        except lmdb.Error as e:
            raise DataError(f"{self.path}: cannot open as LMDB: {e}") from e
        if not has_first or self._len == 0:
            self.close()
            raise DataError(f"{self.path}: LMDB holds no records")
        first, _ = self._parse_current()
        self._shape: tuple[int, int, int] = tuple(first.shape)  # type: ignore[assignment]
        self._dtype = first.dtype
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        """Number of records in the LMDB."""
        return self._len

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the first datum; every record must match it."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """uint8 for ``data`` datums, float32 for ``float_data`` datums."""
        return self._dtype

    def _parse_current(self) -> tuple[np.ndarray, int]:
        key = bytes(self._cursor.key())
        where = f"{self.path} key {_key_text(key)!r}"
        # A new message per record: protobuf's upb backend keeps what a message
        # parses in that message's arena until the message dies, so one reused
        # Datum grew by every record read (0.3 MB per CIFAR batch, without end).
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(self._cursor.value())
        except DecodeError as e:
            raise DataError(f"{where}: not a Datum record: {e}") from e
        return datum_to_array(datum, where)

    def read_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Read the next ``n`` records, wrapping to the first record at the end.

        Returns ``(images (n, C, H, W), labels (n,) int64)``. The arrays are
        buffers owned by the reader and reused by the next call with the same
        ``n``: copy them if you need them after that.
        """
        if self._env is None:
            raise DataError(f"{self.path}: reader is closed")
        if n <= 0:
            raise DataError(f"{self.path}: batch size must be positive, got {n}")
        if self._images is None or len(self._images) != n:
            self._images = np.empty((n, *self._shape), dtype=self._dtype)
            self._labels = np.empty(n, dtype=np.int64)
        images, labels = self._images, self._labels
        assert labels is not None
        try:
            for i in range(n):
                image, labels[i] = self._parse_current()
                if image.shape != self._shape or image.dtype != self._dtype:
                    key = _key_text(bytes(self._cursor.key()))
                    raise DataError(
                        f"{self.path} key {key!r}: datum is {image.dtype} {image.shape}, "
                        f"but the first record is {self._dtype} {self._shape}")
                images[i] = image
                if not self._cursor.next():
                    self._cursor.first()  # Caffe restarts from the first record
        except lmdb.Error as e:
            raise DataError(f"{self.path}: LMDB read failed: {e}") from e
        return images, labels

    def close(self) -> None:
        """Release the transaction and the environment (idempotent)."""
        env, self._env = getattr(self, "_env", None), None
        txn, self._txn = getattr(self, "_txn", None), None
        if txn is not None:
            txn.abort()
        if env is not None:
            _release_shared(self.path)

    def __enter__(self) -> LMDBReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def write_lmdb(path: str | Path, records: Iterable[tuple[bytes, bytes]],
               map_size: int) -> int:
    """Write ``(key, value)`` records, keys ascending, into a NEW LMDB at ``path``.

    Everything goes in one write transaction (fast, and all-or-nothing).
    Like Caffe's ``db::NEW`` mode it refuses a path that already exists.
    ``map_size`` is the LMDB's maximum size in bytes. Returns the record count.
    """
    path = Path(path)
    if path.exists():
        raise DataError(f"{path}: already exists; remove it before writing a new LMDB")
    try:
        path.mkdir(parents=True)
    except OSError as e:
        raise DataError(f"{path}: cannot create LMDB directory: {e.strerror or e}") from e
    ok = False
    try:
        env = lmdb.open(str(path), map_size=int(map_size), subdir=True, max_dbs=0)
        try:
            count = 0
            with env.begin(write=True) as txn:
                cursor = txn.cursor()
                for key, value in records:
                    # append=True skips the B-tree search; it needs ascending keys.
                    if not cursor.put(key, value, append=True):
                        raise DataError(f"{path}: key {_key_text(key)!r} is not ascending")
                    count += 1
        finally:
            env.close()
        ok = True
    except lmdb.MapFullError as e:
        raise DataError(f"{path}: LMDB map_size {map_size} bytes is too small") from e
    except lmdb.Error as e:
        raise DataError(f"{path}: LMDB write failed: {e}") from e
    finally:
        if not ok:  # leave no half-written LMDB behind (we made the directory)
            for name in ("data.mdb", "lock.mdb"):
                (path / name).unlink(missing_ok=True)
            path.rmdir()
    return count


def compute_image_mean(path: str | Path, chunk: int = 1000) -> np.ndarray:
    """Mean image of an LMDB as Caffe's ``compute_image_mean`` computes it.

    Returns float32 (1, C, H, W). Caffe keeps the running sum in float32 and
    adds one record at a time in key order, then divides by the count in
    float32; we do the same so the result matches it bit for bit.
    """
    with LMDBReader(path) as reader:
        total = len(reader)
        acc = np.zeros(reader.shape, dtype=np.float32)
        done = 0
        while done < total:
            batch, _ = reader.read_batch(min(chunk, total - done))
            for image in batch:  # sequential float32 adds, not a pairwise sum
                acc += image
            done += len(batch)
    return (acc / np.float32(total))[None]
