"""Reading (and writing) LMDBs of Caffe Datum records.

``LMDBReader`` is the LMDB backend of ``DatumReader`` (key order, wrapping
to the first record at the end, as Caffe's data layer does).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

import lmdb
import numpy as np

from tinycaffe.data.datum_reader import DatumReader, key_text as _key_text
from tinycaffe.data.portable_sample import is_32bit_process, local_sample_lmdb
from tinycaffe.errors import DataError


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


class LMDBReader(DatumReader):
    """Cycle through the Datum records of an LMDB directory in key order.

    The LMDB is opened read-only and without a lock file (``lock=False``), so
    it can be read from a read-only location; do not write to it meanwhile.
    ``decode``: how encoded datums are decoded (see ``DatumReader``).
    """

    backend = "LMDB"

    def __init__(self, path: str | Path, decode: str = "unchanged") -> None:
        super().__init__(path, decode)
        if not self.path.exists():
            raise DataError(f"{self.path}: LMDB not found")
        # Caffe opens LMDBs as directories holding data.mdb (no MDB_NOSUBDIR).
        if not (self.path / "data.mdb").is_file():
            hint = ("; it holds a LevelDB (CURRENT file): set data_param { backend: LEVELDB }"
                    if (self.path / "CURRENT").is_file() else "")
            raise DataError(f"{self.path}: not an LMDB directory (no data.mdb){hint}")
        self._env = None
        self._env_path = self.path  # the LMDB actually open (see portable_sample)
        try:
            try:
                entries, has_first = self._open_env(self.path)
            except lmdb.InvalidError as e:
                # MDB_INVALID: a 32-bit process reading a 64-bit-written file, or not an LMDB.
                local = local_sample_lmdb(self.path)
                if local is None:
                    hint = ("; LMDB files depend on the word size of the machine that wrote them "
                            "and this is a 32-bit process: write the LMDB on this machine "
                            "(tinycaffe convert-imageset, tinycaffe data cifar10)"
                            if is_32bit_process() else "")
                    raise DataError(f"{self.path}: cannot open as LMDB: {e}{hint}") from e
                entries, has_first = self._open_env(local)
        except lmdb.Error as e:
            self._open = True
            self.close()
            raise DataError(f"{self.path}: cannot open as LMDB: {e}") from e
        except DataError:
            self._open = True
            self.close()
            raise
        self._start(entries if has_first else 0)

    def _open_env(self, path: Path) -> tuple[int, bool]:
        self._env = _open_shared(path)
        self._env_path = path
        self._txn = self._env.begin(buffers=True)
        self._cursor = self._txn.cursor()
        return int(self._txn.stat()["entries"]), bool(self._cursor.first())

    def _current(self) -> tuple[bytes, bytes]:
        try:
            return bytes(self._cursor.key()), self._cursor.value()
        except lmdb.Error as e:
            raise DataError(f"{self.path}: LMDB read failed: {e}") from e

    def _advance(self) -> None:
        try:
            if not self._cursor.next():
                self._cursor.first()  # Caffe restarts from the first record
        except lmdb.Error as e:
            raise DataError(f"{self.path}: LMDB read failed: {e}") from e

    def _close(self) -> None:
        env, self._env = self._env, None
        txn, self._txn = getattr(self, "_txn", None), None
        if txn is not None:
            txn.abort()
        if env is not None:
            _release_shared(self._env_path)


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


def compute_image_mean(path: str | Path, chunk: int = 1000, backend: str = "lmdb") -> np.ndarray:
    """Mean image of an LMDB (or LevelDB) as Caffe's ``compute_image_mean`` computes it.

    Returns float32 (1, C, H, W). Caffe keeps the running sum in float32 and
    adds one record at a time in key order, then divides by the count in
    float32; we do the same so the result matches it bit for bit. Encoded
    datums are decoded with their own channels, as Caffe does.
    """
    from tinycaffe.data.db import open_reader

    with open_reader(path, backend) as reader:
        total = len(reader)
        acc = np.zeros(reader.shape, dtype=np.float32)
        done = 0
        while done < total:
            batch, _ = reader.read_batch(min(chunk, total - done))
            for image in batch:  # sequential float32 adds, not a pairwise sum
                acc += image
            done += len(batch)
    return (acc / np.float32(total))[None]
