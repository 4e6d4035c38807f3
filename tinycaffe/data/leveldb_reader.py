"""Reading (and writing) LevelDBs of Caffe Datum records, through ``plyvel``.

Old Caffe examples (MNIST, CIFAR-10 before 2014) made LevelDBs. LevelDB
needs a compiled binding, so ``plyvel`` is an optional extra
(``pip install 'tinycaffe[leveldb]'``); without it, opening a LevelDB says so.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from tinycaffe.data.datum_reader import DatumReader
from tinycaffe.errors import DataError


def plyvel_module(path: str | Path) -> ModuleType:
    """The ``plyvel`` module, or a DataError naming ``path`` and the fix."""
    try:
        import plyvel  # type: ignore[import-not-found]
    except ImportError:
        raise DataError(
            f"{path}: reading or writing a LevelDB needs the plyvel package: "
            "pip install 'tinycaffe[leveldb]' (or pip install plyvel; Debian: apt install "
            "python3-plyvel), or convert the data to LMDB") from None
    return plyvel


class LevelDBReader(DatumReader):
    """Cycle through the Datum records of a LevelDB directory in key order.

    Opened read-only in spirit (nothing is written) but LevelDB still takes
    its LOCK file, so the directory must be writable and not open elsewhere.
    """

    backend = "LevelDB"

    def __init__(self, path: str | Path, decode: str = "unchanged") -> None:
        super().__init__(path, decode)
        if not self.path.exists():
            raise DataError(f"{self.path}: LevelDB not found")
        if not (self.path / "CURRENT").is_file():
            hint = ("; it holds data.mdb, so it is an LMDB: set data_param { backend: LMDB } "
                    "(Caffe's default backend is LEVELDB)" if (self.path / "data.mdb").is_file() else "")
            raise DataError(f"{self.path}: not a LevelDB directory (no CURRENT file){hint}")
        plyvel = plyvel_module(self.path)
        self._db = None
        try:
            self._db = plyvel.DB(str(self.path), create_if_missing=False)
            # LevelDB keeps no record count: count the keys once.
            n = sum(1 for _ in self._db.iterator(include_value=False))
            self._it = self._db.iterator()
            self._item = next(self._it, None)
        except plyvel.Error as e:
            self._open = True
            self.close()
            raise DataError(f"{self.path}: cannot open as LevelDB: {e}") from e
        self._start(n)

    def _current(self) -> tuple[bytes, bytes]:
        assert self._item is not None
        return self._item

    def _advance(self) -> None:
        self._item = next(self._it, None)
        if self._item is None:  # Caffe restarts from the first record
            self._it.close()
            self._it = self._db.iterator()
            self._item = next(self._it, None)

    def _close(self) -> None:
        it, self._it = getattr(self, "_it", None), None
        if it is not None:
            it.close()
        db, self._db = self._db, None
        if db is not None:
            db.close()
