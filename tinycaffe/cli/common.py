"""What the run verbs share: picking the model, the device and the thread count."""
from __future__ import annotations

import argparse
import sys

from ..errors import TinyCaffeError


def model_path(args: argparse.Namespace) -> str:
    model = args.model_opt or args.model
    if not model:
        raise TinyCaffeError("no model given: tinycaffe VERB MODEL.prototxt (or -model MODEL)")
    if args.model_opt and args.model and args.model_opt != args.model:
        raise TinyCaffeError("give the model once, either as MODEL or -model")
    return model


def device(args: argparse.Namespace) -> str:
    return "gpu" if args.gpu is not None else args.device


def set_threads(n: int | None) -> None:
    """Use ``n`` CPU threads (None: the environment's or one per usable core).

    The kernels' pool owns the cores: it runs ``n`` threads and holds BLAS to one
    thread inside them (tinycaffe/kernels/threads.py says why)."""
    if n is None:
        return
    if n <= 0:
        raise TinyCaffeError(f"--threads must be positive, got {n}")
    from ..kernels import set_num_threads

    set_num_threads(n)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, total: int, label: str):
        self.total, self.label = total, label
        self.enabled = sys.stderr.isatty()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * (len(self.label) + 50) + "\r")
            sys.stderr.flush()
