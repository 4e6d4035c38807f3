"""The bundled sample LMDB on machines that cannot read it (32-bit processes).

An LMDB file's layout depends on the word size of the machine that wrote it:
a 32-bit process (Raspberry Pi OS 32-bit) reports MDB_INVALID for the
64-bit-written ``tinycaffe/sample/cifar10_test_lmdb``. So the sample's records
also ship in a word-size-free file, ``cifar10_test_records.bin``: for each
record, a little-endian uint32 key length, the key, a uint32 value length and
the value (the same bytes as the LMDB's records). On such a machine the reader
builds a local LMDB from it once, in the user's cache folder, and reads that.
Any other LMDB that the process cannot read gets an error that says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tinycaffe.errors import DataError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
SAMPLE_LMDB = SAMPLE_DIR / "cifar10_test_lmdb"
SAMPLE_RECORDS = SAMPLE_DIR / "cifar10_test_records.bin"
_LEN = struct.Struct("<I")


def write_records(path: str | Path, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Write ``(key, value)`` records in the portable format; returns the count."""
    count = 0
    with open(path, "wb") as f:
        for key, value in records:
            f.write(_LEN.pack(len(key)) + key + _LEN.pack(len(value)) + value)
            count += 1
    return count


def read_records(path: str | Path) -> Iterator[tuple[bytes, bytes]]:
    """The ``(key, value)`` records of a portable file, in file order."""
    data = Path(path).read_bytes()
    pos = 0
    while pos < len(data):
        fields = []
        for what in ("key", "value"):
            if pos + 4 > len(data):
                raise DataError(f"{path}: truncated at byte {pos} (a {what} length)")
            (n,) = _LEN.unpack_from(data, pos)
            pos += 4
            if pos + n > len(data):
                raise DataError(f"{path}: truncated at byte {pos} (a {what} of {n} bytes)")
            fields.append(data[pos:pos + n])
            pos += n
        yield fields[0], fields[1]


def is_32bit_process() -> bool:
    return sys.maxsize <= 2**32


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinycaffe"


def _is_the_sample(path: Path) -> bool:
    """True for the package's sample LMDB, or a byte-identical copy (a checkout's, when
    tinycaffe is installed from it)."""
    try:
        if not SAMPLE_RECORDS.is_file():
            return False
        if os.path.realpath(path) == os.path.realpath(SAMPLE_LMDB):
            return True
        mine, theirs = Path(path) / "data.mdb", SAMPLE_LMDB / "data.mdb"
        if mine.stat().st_size != theirs.stat().st_size:
            return False
        return hashlib.sha256(mine.read_bytes()).digest() == hashlib.sha256(theirs.read_bytes()).digest()
    except OSError:
        return False


def local_sample_lmdb(path: Path) -> Path | None:
    """For the bundled sample LMDB: a copy this process can read (built once). Else None."""
    if not _is_the_sample(path):
        return None
    from tinycaffe.data.lmdb_reader import write_lmdb

    bits = 32 if is_32bit_process() else 64
    target = _cache_root() / f"sample-{bits}bit" / "cifar10_test_lmdb"
    if (target / "data.mdb").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: two processes starting at once never see half a copy.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "lmdb"
        records = sorted(read_records(SAMPLE_RECORDS))
        write_lmdb(staging, records, map_size=len(records) * 8192 + (1 << 20))
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "data.mdb").is_file():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    return target
