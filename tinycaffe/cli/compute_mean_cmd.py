"""``tinycaffe compute-image-mean [-backend lmdb|leveldb] INPUT_DB [OUTPUT_FILE]``, like Caffe's tool.

Writes the float32 1 x C x H x W mean image as a ``.binaryproto`` (when
OUTPUT_FILE is given) and prints each channel's mean value, as Caffe does.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The verb's arguments, Caffe's names first."""
    p.add_argument("input_db", metavar="INPUT_DB", help="LMDB or LevelDB of Datum records")
    p.add_argument("output_file", metavar="OUTPUT_FILE", nargs="?", help="where to write the mean (.binaryproto)")
    p.add_argument("-backend", "--backend", default="lmdb", choices=["lmdb", "leveldb"],
                   help="database type (default lmdb)")


def run_compute_mean(args: argparse.Namespace) -> int:
    from ..data.lmdb_reader import compute_image_mean
    from ..proto.binaryproto import write_blob

    mean = compute_image_mean(args.input_db, backend=args.backend)
    if args.output_file:
        write_blob(args.output_file, mean)
        print(f"Write to {args.output_file}")
    channels = mean.shape[1]
    print(f"Number of channels: {channels}")
    for c in range(channels):
        print(f"mean_value channel [{c}]: {float(mean[0, c].mean(dtype='float64')):g}")
    return 0
