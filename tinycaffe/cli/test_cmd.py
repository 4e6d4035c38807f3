"""``tinycaffe test``: run a net for N batches and report each output's mean, like `caffe test`."""
from __future__ import annotations

import argparse

import numpy as np

from ..backend import asnumpy
from .common import Progress, device, model_path, set_threads


def run_test(args: argparse.Namespace) -> int:
    from ..net import Net

    if args.iterations <= 0:
        from ..errors import TinyCaffeError

        raise TinyCaffeError(f"--iterations must be positive, got {args.iterations}")
    set_threads(args.threads)
    net = Net(model_path(args), weights=args.weights, phase=args.phase, device=device(args),
              level=args.level, stages=args.stage)
    if args.weights is None:
        print("note: no --weights given: layers keep their filler values, so scores are those "
              "of an untrained net (a timing run, not a measurement of accuracy)")
    sums: dict[str, np.ndarray] = {}
    progress = Progress(args.iterations, "test")
    loss_total = 0.0
    try:
        for it in range(args.iterations):
            outputs = net.forward()
            loss_total += net.loss
            for name, value in outputs.items():
                flat = asnumpy(value).astype(np.float64).reshape(-1)
                sums[name] = sums[name] + flat if name in sums else flat.copy()
                if not args.quiet:
                    for v in flat:
                        print(f"Batch {it}, {name} = {v:g}")
            progress.update(it + 1)
    finally:
        progress.close()
        net.close()
    print(f"Loss: {loss_total / args.iterations:g}")
    weights = net.output_loss_weights()
    for name, total in sums.items():
        for v in total / args.iterations:
            line = f"{name} = {v:.6g}"
            w = weights.get(name, 0.0)
            if w:
                line += f" (* {w:g} = {w * v:.6g} loss)"
            print(line)
    return 0
