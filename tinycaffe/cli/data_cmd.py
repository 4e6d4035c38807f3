"""``tinycaffe data cifar10 SRC DST``: the official CIFAR-10 batches to Caffe's LMDBs and mean."""
from __future__ import annotations

import argparse
import time


def run_data(args: argparse.Namespace) -> int:
    from ..data.cifar10 import convert_cifar10

    t0 = time.perf_counter()
    info = convert_cifar10(args.src, args.dst)
    print(f"wrote {args.dst} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k}: {v}" for k, v in info.items()))
    return 0
