"""``tinycaffe test``: run a net for N batches and report each output's mean, like `caffe test`."""
from __future__ import annotations

import argparse

from ..errors import TinyCaffeError
from .common import Progress, device, model_path, set_threads
from .scores import Scores


def run_test(args: argparse.Namespace) -> int:
    from ..net import Net

    if args.iterations <= 0:
        raise TinyCaffeError(f"--iterations must be positive, got {args.iterations}")
    set_threads(args.threads)
    net = Net(model_path(args), weights=args.weights, phase=args.phase, device=device(args),
              level=args.level, stages=args.stage)
    from ..backend import kernel_summary

    print(kernel_summary(device(args)))  # which kernels ran: numba, or numpy where numba is missing
    if args.weights is None:
        print("note: no --weights given: layers keep their filler values, so scores are those "
              "of an untrained net (a timing run, not a measurement of accuracy)")
    if net.inputs:
        print(f"note: nothing fills the net's inputs ({', '.join(net.inputs)}), so they stay zero; "
              "score a net whose data comes from a Data layer (a train_test prototxt)")
    scores = Scores(args.quiet)
    progress = Progress(args.iterations, "test")
    ok = False
    try:
        for it in range(args.iterations):
            scores.add(net.forward(), net.loss)
            progress.update(it + 1)
        ok = True
    finally:
        progress.close()
        net.close(abort=not ok)
    if net.outputs:
        scores.report(net.output_loss_weights())
    else:
        print(f"{scores.batches} batches run; the net has no outputs (a client net sends its blobs on)")
    return 0
