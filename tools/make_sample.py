"""Build the bundled sample data in tinycaffe/sample/.

    python tools/make_sample.py [--src DIR_WITH_CIFAR10_BINARIES]

Converts the full CIFAR-10 set with tinycaffe's converter into a temporary
directory, then keeps the training-set mean and the first --count records of
the test LMDB (same keys and bytes as the full test LMDB), also written in the
portable format of tinycaffe/data/portable_sample.py for 32-bit machines.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import lmdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from tinycaffe.data.cifar10 import convert_cifar10  # noqa: E402
from tinycaffe.data.lmdb_reader import write_lmdb  # noqa: E402
from tinycaffe.data.portable_sample import SAMPLE_RECORDS as PORTABLE, write_records  # noqa: E402

SAMPLE = REPO / "tinycaffe" / "sample"


def first_records(db: Path, count: int) -> list[tuple[bytes, bytes]]:
    """The first ``count`` (key, value) pairs of an LMDB, in key order."""
    env = lmdb.open(str(db), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            out = []
            for key, value in txn.cursor():
                if len(out) == count:
                    break
                out.append((key, value))
            return out
    finally:
        env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=REPO.parent / "shared" / "data" / "cifar10",
                    help="folder with data_batch_1..5.bin and test_batch.bin")
    ap.add_argument("--count", type=int, default=1000, help="test images to keep")
    args = ap.parse_args()

    out_db = SAMPLE / "cifar10_test_lmdb"
    with tempfile.TemporaryDirectory() as tmp:
        info = convert_cifar10(args.src, tmp)
        records = first_records(Path(info["test_lmdb"]), args.count)
        shutil.rmtree(out_db, ignore_errors=True)
        # Modest map size: one 4 KiB overflow page per 3 KiB record, plus slack.
        write_lmdb(out_db, records, map_size=len(records) * 8192 + (1 << 20))
        shutil.copyfile(info["mean_file"], SAMPLE / "mean.binaryproto")
    (out_db / "lock.mdb").unlink(missing_ok=True)  # readers open with lock=False
    # The same records without LMDB's word-size-dependent layout, for 32-bit machines.
    write_records(PORTABLE, records)
    print(f"{PORTABLE}: the same records, portable format ({PORTABLE.stat().st_size} bytes)")
    size = (out_db / "data.mdb").stat().st_size
    print(f"{out_db}: {len(records)} records, data.mdb {size} bytes")
    print(f"{SAMPLE / 'mean.binaryproto'}: training-set mean over {info['train_records']} images")


if __name__ == "__main__":
    main()
