"""``tinycaffe time``: each layer's mean forward time and the total, like `caffe time`."""
from __future__ import annotations

import argparse
import statistics
import time

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
    for layer in net.layers:  # a cloud half is timed on its declared inputs: no client, no socket
        if layer.type == "Source":
            layer.as_input()
            print(f"note: source layer '{layer.name}' is timed as an input (zeros); its client is not involved")
    net.forward()  # warm-up: JIT compilation and first allocations are not timed
    if args.backward:
        net.backward()
    net.layer_times.clear()
    net.backward_times.clear()
    progress = Progress(args.iterations, "time")
    forward, backward = [], []
    try:
        for it in range(args.iterations):
            forward.append(net.forward_timed())
            if args.backward:
                t0 = time.perf_counter()
                net.backward(timed=True)
                backward.append(time.perf_counter() - t0)
            progress.update(it + 1)
    finally:
        progress.close()
        net.close()
    passes = "forward-backward" if args.backward else "forward"
    print(f"Timing {net.name or model_path(args)}: {args.iterations} {passes} passes after one warm-up, "
          f"device {device(args)}")
    width = max(len(n) for n in net.layer_names)
    for name in net.layer_names:
        print(f"{name:>{width}}\tforward: {_mean_ms(net.layer_times.get(name)):.4f} ms.")
        if args.backward:
            print(f"{name:>{width}}\tbackward: {_mean_ms(net.backward_times.get(name)):.4f} ms.")
    print(f"Average Forward pass: {1000 * statistics.fmean(forward):.4f} ms.")
    print(f"Median Forward pass: {1000 * statistics.median(forward):.4f} ms.")
    if args.backward:
        print(f"Average Backward pass: {1000 * statistics.fmean(backward):.4f} ms.")
        both = [f + b for f, b in zip(forward, backward)]
        print(f"Average Forward-Backward: {1000 * statistics.fmean(both):.4f} ms.")
    return 0


def _mean_ms(times: list[float] | None) -> float:
    return 1000 * statistics.fmean(times) if times else 0.0
