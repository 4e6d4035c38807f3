"""Argument parsing and dispatch for the ``tinycaffe`` command.

Caffe's own single-dash spelling (``-model``, ``-weights``, ``-iterations``,
``-gpu``) is accepted beside ours, so existing scripts keep working.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import TinyCaffeError


def _add_run_options(p: argparse.ArgumentParser, iterations: int) -> None:
    p.add_argument("model", nargs="?", help="net prototxt")
    p.add_argument("--model", "-model", dest="model_opt", metavar="MODEL", help="net prototxt (Caffe spelling)")
    p.add_argument("--weights", "-weights", help="caffemodel or .caffemodel.h5 to load")
    p.add_argument("--iterations", "-iterations", type=int, default=iterations,
                   help=f"batches to run (default {iterations})")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--gpu", "-gpu", metavar="ID", help="Caffe spelling: any value selects the GPU")
    p.add_argument("--threads", type=int, help="CPU threads for kernels and BLAS")
    p.add_argument("--phase", choices=["train", "test"], default="test")
    p.add_argument("--stage", action="append", default=[], help="net state stage (repeatable)")
    p.add_argument("--level", type=int, default=0, help="net state level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinycaffe", description="A small, fast, Caffe-compatible CNN engine.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"tinycaffe {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    p = sub.add_parser("test", help="score a net on its data, like `caffe test`")
    _add_run_options(p, 50)
    p.add_argument("--quiet", action="store_true", help="print only the final means")

    p = sub.add_parser("time", help="time each layer's forward pass, like `caffe time`")
    _add_run_options(p, 50)
    p.add_argument("--backward", action="store_true",
                   help="time the backward pass too (as `caffe time` does; use --phase train)")

    p = sub.add_parser("train", help="train a net with a solver, like `caffe train`")
    p.add_argument("--solver", "-solver", required=True, help="solver prototxt")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", "-weights", help="initialise from these weights (fine-tuning)")
    group.add_argument("--snapshot", "-snapshot", help="resume from a .solverstate")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--gpu", "-gpu", metavar="ID", help="Caffe spelling: any value selects the GPU")
    p.add_argument("--threads", type=int, help="CPU threads for kernels and BLAS")
    p.add_argument("--sigint-effect", "-sigint_effect", choices=["snapshot", "stop", "none"],
                   default="snapshot", help="what Ctrl-C does (default: snapshot, then stop)")

    p = sub.add_parser("split", help="cut a net into a client part (Sink) and a cloud part (Source)")
    p.add_argument("model", help="net prototxt to cut")
    p.add_argument("--after", required=True, help="last layer of the client part")
    p.add_argument("--host", default="127.0.0.1", help="where the client's Sink connects")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--bind", default="127.0.0.1", help="address the cloud's Source listens on")
    p.add_argument("--return-top", action="append", default=[], metavar="BLOB",
                   help="blob the cloud sends back to the client (repeatable)")
    p.add_argument("--phase", choices=["train", "test"], default="test")
    p.add_argument("-o", "--output", nargs=2, required=True, metavar=("CLIENT", "CLOUD"),
                   help="where to write the two prototxts")

    # No abbreviations: "--token SECRET" must not pass for --token-file (secrets never go on argv).
    p = sub.add_parser("serve", help="run the cloud part of a split net for its clients", allow_abbrev=False)
    _add_run_options(p, 0)
    from .serve_cmd import add_serve_options

    add_serve_options(p)

    p = sub.add_parser("data", help="convert a data set to Caffe's LMDB layout")
    p.add_argument("dataset", choices=["cifar10"])
    p.add_argument("src", help="folder with the official binary batches")
    p.add_argument("dst", help="output folder (LMDBs and mean.binaryproto)")

    from . import compute_mean_cmd, convert_imageset_cmd

    p = sub.add_parser("convert-imageset", aliases=["convert_imageset"],
                       help="images named in a list file -> LMDB/LevelDB, like Caffe's convert_imageset")
    convert_imageset_cmd.add_arguments(p)
    p = sub.add_parser("compute-image-mean", aliases=["compute_image_mean"],
                       help="mean image of an LMDB/LevelDB -> .binaryproto, like Caffe's compute_image_mean")
    compute_mean_cmd.add_arguments(p)

    from . import plan_cmd, probe_cmd, profile_cmd

    p = sub.add_parser("profile", help="per-layer forward times and blob sizes on this machine, as JSON")
    profile_cmd.add_arguments(p)
    p = sub.add_parser("probe", help="a link's bandwidth and round-trip time, given or measured, as JSON")
    probe_cmd.add_arguments(p)
    p = sub.add_parser("plan", help="rank every cut of a net for a client, a cloud and a link")
    plan_cmd.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.verb == "test":
            from .test_cmd import run_test

            return run_test(args)
        if args.verb == "time":
            from .time_cmd import run_time

            return run_time(args)
        if args.verb == "train":
            from .train_cmd import run_train

            return run_train(args)
        if args.verb == "split":
            from .split_cmd import run_split

            return run_split(args)
        if args.verb == "serve":
            from .serve_cmd import run_serve

            return run_serve(args)
        if args.verb == "data":
            from .data_cmd import run_data

            return run_data(args)
        if args.verb in ("convert-imageset", "convert_imageset"):
            from .convert_imageset_cmd import run_convert_imageset

            return run_convert_imageset(args)
        if args.verb in ("compute-image-mean", "compute_image_mean"):
            from .compute_mean_cmd import run_compute_mean

            return run_compute_mean(args)
        if args.verb in ("profile", "probe", "plan"):
            from . import plan_cmd, probe_cmd, profile_cmd

            run = {"profile": profile_cmd.run_profile, "probe": probe_cmd.run_probe, "plan": plan_cmd.run_plan}
            return run[args.verb](args)
    except TinyCaffeError as exc:
        print(f"tinycaffe: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tinycaffe: interrupted", file=sys.stderr)
        return 130
    return 2
