"""Open a Datum database by Caffe's backend name ("lmdb" or "leveldb") to read or to write.

The writer is what ``convert_imageset`` needs: a NEW database (an existing
path is refused, as Caffe's ``db::NEW`` refuses it), records put in order and
committed every 1,000 as Caffe does, and nothing left behind on failure.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import TracebackType

from tinycaffe.data.datum_reader import DatumReader, key_text
from tinycaffe.errors import DataError

BACKENDS = ("lmdb", "leveldb")
# LMDB reserves its whole map as address space up front. Caffe asks for 1 TB on
# 64-bit systems, but a 64-bit Raspberry Pi kernel gives a process only 512 GB
# (39-bit addresses) and QEMU's user mode refuses 1 TB too (seen by
# tools/arm_check.sh), so the writer tries smaller maps until one is granted.
# A 32-bit process has ~3 GB in all: 1 GB at most there.
_LMDB_MAP_SIZES = ((1 << 40, 1 << 38, 1 << 36, 1 << 34, 1 << 32, 1 << 30)
                   if sys.maxsize > 2**32 else (1 << 30, 1 << 28))


def _open_new_lmdb(path: Path):
    """An LMDB environment at ``path`` with the largest map this process can reserve."""
    import lmdb

    for size in _LMDB_MAP_SIZES[:-1]:
        try:
            return lmdb.open(str(path), map_size=size, subdir=True, max_dbs=0)
        except lmdb.MemoryError:
            continue  # address space refused: ask for less
    return lmdb.open(str(path), map_size=_LMDB_MAP_SIZES[-1], subdir=True, max_dbs=0)


def _check_backend(backend: str) -> str:
    b = str(backend).lower()
    if b not in BACKENDS:
        raise DataError(f"unknown database backend {backend!r}: use lmdb or leveldb")
    return b


def open_reader(path: str | Path, backend: str = "lmdb", decode: str = "unchanged") -> DatumReader:
    """A ``DatumReader`` for the LMDB or LevelDB at ``path``."""
    if _check_backend(backend) == "lmdb":
        from tinycaffe.data.lmdb_reader import LMDBReader

        return LMDBReader(path, decode)
    from tinycaffe.data.leveldb_reader import LevelDBReader

    return LevelDBReader(path, decode)


class DatumWriter:
    """Write ``(key, serialized Datum)`` records into a NEW LMDB or LevelDB.

    Use as a context manager: a clean exit commits the last records; an
    exception removes the database directory it created.
    """

    COMMIT_EVERY = 1000  # Caffe's convert_imageset commits every 1,000 images

    def __init__(self, path: str | Path, backend: str = "lmdb") -> None:
        self.path = Path(path)
        self.backend = _check_backend(backend)
        self.count = 0
        if self.path.exists():
            raise DataError(f"{self.path}: already exists; remove it before writing a new database")
        if self.backend == "lmdb":
            import lmdb

            self._error: type[Exception] = lmdb.Error
            try:
                self.path.mkdir(parents=True)
                self._env = _open_new_lmdb(self.path)
            except (OSError, lmdb.Error) as e:
                self._remove()
                raise DataError(f"{self.path}: cannot create LMDB: {e}") from e
            self._txn = self._env.begin(write=True)
        else:
            from tinycaffe.data.leveldb_reader import plyvel_module

            plyvel = plyvel_module(self.path)
            self._error = plyvel.Error
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = plyvel.DB(str(self.path), create_if_missing=True, error_if_exists=True)
            except (OSError, plyvel.Error) as e:
                self._remove()
                raise DataError(f"{self.path}: cannot create LevelDB: {e}") from e
            self._batch = self._db.write_batch()

    def put(self, key: bytes, value: bytes) -> None:
        """Add one record; every ``COMMIT_EVERY`` records are committed."""
        try:
            if self.backend == "lmdb":
                self._txn.put(key, value)
            else:
                self._batch.put(key, value)
            self.count += 1
            if self.count % self.COMMIT_EVERY == 0:
                self._commit(reopen=True)
        except self._error as e:
            raise DataError(f"{self.path}: write of key {key_text(key)!r} failed: {e}") from e

    def _commit(self, reopen: bool) -> None:
        if self.backend == "lmdb":
            self._txn.commit()
            if reopen:
                self._txn = self._env.begin(write=True)
        else:
            self._batch.write()
            if reopen:
                self._batch = self._db.write_batch()

    def _close(self) -> None:
        if self.backend == "lmdb":
            self._env.close()
        else:
            self._db.close()

    def _remove(self) -> None:
        if self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> DatumWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self._commit(reopen=False)
            except self._error as e:
                self._close()
                self._remove()
                raise DataError(f"{self.path}: final commit failed: {e}") from e
            self._close()
            return
        if self.backend == "lmdb":
            self._txn.abort()
        self._close()
        self._remove()  # we created it: leave no half-written database behind
