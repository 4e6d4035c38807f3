"""The bundled sample on a 32-bit process, which cannot open a 64-bit-written LMDB."""
from __future__ import annotations

import lmdb
import pytest

from tinycaffe.data import lmdb_reader, portable_sample
from tinycaffe.data.lmdb_reader import LMDBReader
from tinycaffe.data.portable_sample import SAMPLE_LMDB, SAMPLE_RECORDS, local_sample_lmdb, read_records
from tinycaffe.errors import DataError


def lmdb_records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    finally:
        env.close()


def test_the_portable_file_holds_the_sample_lmdbs_records():
    assert list(read_records(SAMPLE_RECORDS)) == lmdb_records(SAMPLE_LMDB)


def test_a_truncated_portable_file_says_where(tmp_path):
    bad = tmp_path / "r.bin"
    bad.write_bytes(SAMPLE_RECORDS.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"r\.bin: truncated at byte \d+"):
        list(read_records(bad))


def refuse_the_bundled_lmdb(monkeypatch):
    """Make opening the bundled LMDB fail as it does in a 32-bit process (MDB_INVALID)."""
    real = lmdb_reader._open_shared

    def open_shared(path):
        if path.resolve() == SAMPLE_LMDB.resolve():
            raise lmdb.InvalidError(str(path), -30793)
        return real(path)

    monkeypatch.setattr(lmdb_reader, "_open_shared", open_shared)


def test_reader_falls_back_to_a_local_copy_of_the_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    refuse_the_bundled_lmdb(monkeypatch)
    with LMDBReader(SAMPLE_LMDB) as r:
        assert len(r) == 1000
        images, labels = r.read_batch(3)
    with LMDBReader(SAMPLE_LMDB) as r:  # the second open reuses the copy
        again, _ = r.read_batch(3)
    assert (images == again).all()
    copy = local_sample_lmdb(SAMPLE_LMDB)
    assert copy is not None and copy.is_relative_to(tmp_path)
    assert lmdb_records(copy) == lmdb_records(SAMPLE_LMDB)


def test_a_byte_identical_copy_of_the_sample_counts_as_the_sample(tmp_path, monkeypatch):
    # A checkout's tinycaffe/sample/ read from the repository root, with tinycaffe installed from it.
    import shutil

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shutil.copytree(SAMPLE_LMDB, tmp_path / "checkout_lmdb")
    copy = local_sample_lmdb(tmp_path / "checkout_lmdb")
    assert copy is not None and lmdb_records(copy) == lmdb_records(SAMPLE_LMDB)


def test_another_unreadable_lmdb_says_why_on_a_32bit_process(tmp_path, monkeypatch):
    db = tmp_path / "db"
    db.mkdir()
    (db / "data.mdb").write_bytes(b"\0" * 8192)  # not an LMDB
    monkeypatch.setattr(lmdb_reader, "is_32bit_process", lambda: True)
    with pytest.raises(DataError, match=r"db: cannot open as LMDB: .*word size"):
        LMDBReader(db)
    assert portable_sample.local_sample_lmdb(db) is None
