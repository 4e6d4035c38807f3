"""``tinycaffe convert-imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME``: images to a Datum database, like Caffe's tool.

Flags as Caffe spells them (one or two dashes, ``--resize_width=256`` or
``-resize_width 256``, gflags' ``-gray=true`` and ``-nogray``): ``-gray``, ``-shuffle``, ``-backend lmdb|leveldb``,
``-resize_width``, ``-resize_height``, ``-check_size``, ``-encoded``,
``-encode_type png|jpg|...``; plus ``--seed`` (ours) to make ``-shuffle``
repeatable. Keys are Caffe's ``%08d_<path>``. As Caffe does, an image that
cannot be read is skipped with a warning (here naming the list file and
line) and the run goes on; the summary says how many were skipped.
"""
from __future__ import annotations

import argparse
import sys
import time


def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    """A gflags boolean: ``-name``/``--name``, and gflags' ``-name=true|false|1|0`` and ``-noname``."""
    p.add_argument(f"-{name}", f"--{name}", action="store_true", help=help)
    on = [f"{d}{name}={v}" for d in ("-", "--") for v in ("true", "1")]
    off = [f"{d}{name}={v}" for d in ("-", "--") for v in ("false", "0")] + [f"-no{name}", f"--no{name}"]
    p.add_argument(*on, dest=name, action="store_true", help=argparse.SUPPRESS)
    p.add_argument(*off, dest=name, action="store_false", help=argparse.SUPPRESS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The verb's arguments, Caffe's names first."""
    p.add_argument("root_folder", metavar="ROOTFOLDER/", help="prepended to every path in LISTFILE (as a string)")
    p.add_argument("list_file", metavar="LISTFILE", help="'path label' lines")
    p.add_argument("db_name", metavar="DB_NAME", help="the new database to write")
    _bool_flag(p, "gray", "read images as 1-channel gray")
    _bool_flag(p, "shuffle", "shuffle the order of the images")
    p.add_argument("-backend", "--backend", default="lmdb", choices=["lmdb", "leveldb"],
                   help="database to write (default lmdb)")
    p.add_argument("-resize_width", "--resize_width", type=int, default=0, metavar="W")
    p.add_argument("-resize_height", "--resize_height", type=int, default=0, metavar="H")
    _bool_flag(p, "check_size", "check that every image has the first one's size")
    _bool_flag(p, "encoded", "store the encoded image file (JPEG/PNG) in each Datum")
    p.add_argument("-encode_type", "--encode_type", default="", metavar="TYPE",
                   help="re-encode as TYPE (png, jpg, ...); implies -encoded")
    p.add_argument("--seed", type=int, default=None, help="seed for -shuffle (default: a fresh one)")


def _same_format(filename: str, enc: str) -> bool:
    """Caffe's matchExt: does the file's extension name the encoding (jpg and jpeg alike)?"""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return ext == enc or (enc in ("jpg", "jpeg") and ext in ("jpg", "jpeg"))


def run_convert_imageset(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from ..data.datum import array_to_datum, encoded_datum
    from ..data.db import DatumWriter
    from ..data.image import encode_image, hwc_to_chw, read_image
    from ..data.image_list import read_image_list
    from ..errors import DataError, TinyCaffeError

    t0 = time.perf_counter()
    is_color = not args.gray
    encode_type = args.encode_type.lower().lstrip(".")
    encoded = args.encoded or bool(encode_type)
    if encode_type and not args.encoded:
        print("encode_type specified, assuming encoded=true.")
    if args.resize_width < 0 or args.resize_height < 0:
        raise TinyCaffeError("-resize_width and -resize_height must not be negative")
    if (args.resize_width > 0) != (args.resize_height > 0):
        raise TinyCaffeError("give -resize_width and -resize_height together (Caffe resizes only when both are set)")
    if encoded and args.check_size:
        raise TinyCaffeError("-check_size cannot check encoded images (their sizes are those of the files)")
    lines = read_image_list(args.list_file)
    if args.shuffle:
        order = np.random.default_rng(args.seed).permutation(len(lines))
        lines = [lines[i] for i in order]
    print(f"A total of {len(lines)} images.")
    size = (args.resize_height, args.resize_width)
    skipped = 0
    data_size = None
    with DatumWriter(args.db_name, args.backend) as db:
        for line_id, entry in enumerate(lines):
            path = args.root_folder + entry.name
            where = f"{args.list_file} line {entry.line}"
            try:
                img = read_image(path, size[0], size[1], is_color)
            except DataError as exc:
                print(f"warning: {where}: skipped: {exc}", file=sys.stderr)
                skipped += 1
                continue
            if encoded:
                enc = encode_type
                if not enc:  # guess from the file name, as Caffe does
                    if "." not in entry.name:
                        raise TinyCaffeError(f"{where}: cannot guess the encoding of {entry.name!r} "
                                             "(no extension): give -encode_type")
                    enc = entry.name.rsplit(".", 1)[1].lower()
                if (img.shape[2] == 3) == is_color and size == (0, 0) and _same_format(entry.name, enc):
                    data = Path(path).read_bytes()  # the file as it is, as Caffe stores it
                else:
                    data = encode_image(img, enc, where)
                datum = encoded_datum(data, entry.label)
            else:
                datum = array_to_datum(hwc_to_chw(img), entry.label)
                if args.check_size:
                    if data_size is None:
                        data_size = len(datum.data)
                    elif len(datum.data) != data_size:
                        raise TinyCaffeError(
                            f"{where}: {path} is {img.shape[0]}x{img.shape[1]}x{img.shape[2]} "
                            f"({len(datum.data)} values), the first image has {data_size} (-check_size)")
            key = f"{line_id:08d}_{entry.name}".encode("utf-8", "surrogateescape")
            db.put(key, datum.SerializeToString())
            if db.count % 1000 == 0:
                print(f"Processed {db.count} files.")
        count = db.count
    if count % 1000:
        print(f"Processed {count} files.")
    note = f"; {skipped} unreadable image(s) skipped (see the warnings)" if skipped else ""
    print(f"wrote {args.db_name} ({args.backend}, {count} records) in {time.perf_counter() - t0:.1f} s{note}")
    return 0
