"""``tinycaffe time``: each layer's mean forward time and the total, like `caffe time`."""
from __future__ import annotations

import argparse
import statistics

from .common import Progress, device, model_path, set_threads


def run_time(args: argparse.Namespace) -> int:
    from ..errors import TinyCaffeError
    from ..net import Net

    if args.iterations <= 0:
        raise TinyCaffeError(f"--iterations must be positive, got {args.iterations}")
    set_threads(args.threads)
    net = Net(model_path(args), weights=args.weights, phase=args.phase, device=device(args),
              level=args.level, stages=args.stage)
    net.let_data_wrap()  # timing may run past the end of the data
    net.forward()  # warm-up: JIT compilation and first allocations are not timed
    net.layer_times.clear()
    progress = Progress(args.iterations, "time")
    totals = []
    try:
        for it in range(args.iterations):
            totals.append(net.forward_timed())
            progress.update(it + 1)
    finally:
        progress.close()
        net.close()
    print(f"Timing {net.name or model_path(args)}: {args.iterations} forward passes after one warm-up, "
          f"device {device(args)}")
    width = max(len(n) for n in net.layer_names)
    for name in net.layer_names:
        times = net.layer_times.get(name, [])
        mean_ms = 1000 * statistics.fmean(times) if times else 0.0
        print(f"{name:>{width}}\tforward: {mean_ms:.4f} ms.")
    print(f"Average Forward pass: {1000 * statistics.fmean(totals):.4f} ms.")
    print(f"Median Forward pass: {1000 * statistics.median(totals):.4f} ms.")
    return 0
