"""Per-layer convolution time and GFLOP/s on the CPU, forward and backward.

Layers: cifar10_full's three convolutions (batch 100 and 1) and layer shapes
of the BVLC deploy nets (AlexNet, GoogLeNet, VGG-16, ResNet-style 1x1/3x3) at
batch 1.  ``--baseline DIR`` also times another tinycaffe checkout (a
directory holding a ``tinycaffe`` package, e.g. made with
``git archive <commit> tinycaffe | tar -x -C DIR``) for a before/after table.

Every (system, thread count) runs in its own subprocess (no pool of one
spinning while the other computes); systems alternate over ``--rounds``
rounds and the table gives the median of the round medians.  Threads are set
as the CLI's ``--threads`` does (tinycaffe.cli.common.set_threads).  Forward is
conv_forward with an ``out=`` buffer and bias; backward is conv_backward with
dx (dx, dW and db: 2x the forward's FLOPs).  GFLOP counts 2 per
multiply-add.  Wall-clock and process CPU time are both reported.  Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/conv_layers.py \
        [--threads 1 2] [--rounds 3] [--repeats 15] [--only cifar|bvlc] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name, batch, C, M, H(=W), kernel, stride, pad, group
LAYERS = [
    ("cifar10_full conv1", 100, 3, 32, 32, 5, 1, 2, 1),
    ("cifar10_full conv2", 100, 32, 32, 16, 5, 1, 2, 1),
    ("cifar10_full conv3", 100, 32, 64, 8, 5, 1, 2, 1),
    ("cifar10_full conv1 b1", 1, 3, 32, 32, 5, 1, 2, 1),
    ("cifar10_full conv2 b1", 1, 32, 32, 16, 5, 1, 2, 1),
    ("cifar10_full conv3 b1", 1, 32, 64, 8, 5, 1, 2, 1),
    ("alexnet conv1 11x11/4", 1, 3, 96, 227, 11, 4, 0, 1),
    ("alexnet conv2 5x5 g2", 1, 96, 256, 27, 5, 1, 2, 2),
    ("alexnet conv3 3x3", 1, 256, 384, 13, 3, 1, 1, 1),
    ("googlenet 3a/1x1", 1, 192, 64, 28, 1, 1, 0, 1),
    ("googlenet 3a/3x3", 1, 96, 128, 28, 3, 1, 1, 1),
    ("googlenet 5b/1x1", 1, 832, 384, 7, 1, 1, 0, 1),
    ("vgg16 conv1_2", 1, 64, 64, 224, 3, 1, 1, 1),
    ("vgg16 conv4_2", 1, 512, 512, 28, 3, 1, 1, 1),
    ("resnet 1x1/2 256->512", 1, 256, 512, 56, 1, 2, 0, 1),
    ("resnet 3x3 64", 1, 64, 64, 56, 3, 1, 1, 1),
]


def gflop(layer) -> float:
    _, n, c, m, h, k, s, p, g = layer
    o = (h + 2 * p - k) // s + 1
    return 2.0 * n * m * (c // g) * k * k * o * o / 1e9


def worker(job: dict) -> dict:
    sys.path.insert(0, job["root"])
    import numpy as np

    from tinycaffe.cli.common import set_threads
    from tinycaffe.kernels import numba_kernels as nk

    set_threads(job["threads"])
    rng = np.random.default_rng(0)
    out = {}
    for layer in LAYERS:
        name, n, c, m, h, k, s, p, g = layer
        if job["only"] and (job["only"] == "cifar") != name.startswith("cifar"):
            continue
        o = (h + 2 * p - k) // s + 1
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((m, c // g, k, k)) * 0.05).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        y = np.empty((n, m, o, o), np.float32)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        reps = max(3, min(job["repeats"], int(job["repeats"] * 0.05 / max(gflop(layer), 1e-3))))
        res = {}
        for kind, fn in (("fwd", lambda: nk.conv_forward(x, w, b, s, p, 1, g, out=y)),
                         ("bwd", lambda: nk.conv_backward(x, w, dy, s, p, 1, g))):
            fn()
            fn()
            ts, cs = [], []
            for _ in range(reps):
                t, c0 = time.perf_counter(), time.process_time()
                fn()
                ts.append(time.perf_counter() - t)
                cs.append(time.process_time() - c0)
            res[kind] = statistics.median(ts) * 1e3
            res[kind + " cpu"] = statistics.median(cs) * 1e3
        out[name] = res
    return out


def launch(job: dict) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TINYCAFFE_NUM_THREADS"):
        env.pop(var, None)
    r = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--only", choices=["cifar", "bvlc"], default=None)
    ap.add_argument("--baseline", help="directory holding an older tinycaffe package to compare with")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import print_machine_info

    print_machine_info()
    systems = [("current", str(REPO))] + ([("baseline", str(Path(args.baseline).resolve()))]
                                          if args.baseline else [])
    print(f"systems: {', '.join(f'{s} ({r})' for s, r in systems)}; threads {args.threads}; "
          f"{args.rounds} alternating rounds, median of per-round medians of up to {args.repeats} calls\n")
    runs: dict = {}
    for rnd in range(args.rounds):
        order = systems if rnd % 2 == 0 else systems[::-1]
        for t in args.threads:
            for sysname, root in order:
                res = launch(dict(root=root, threads=t, repeats=args.repeats, only=args.only))
                for layer, r in res.items():
                    for kind, ms in r.items():
                        runs.setdefault((sysname, t, layer, kind), []).append(ms)
    for t in args.threads:
        print(f"--- {t} thread(s) ---")
        head = (f"{'layer':24s} {'GFLOP':>6s} {'fwd ms':>8s} {'GF/s':>6s} {'cpu ms':>8s} "
                f"{'bwd ms':>8s} {'GF/s':>6s} {'cpu ms':>8s}")
        if args.baseline:
            head += (f" | {'base fwd':>9s} {'cpu ms':>8s} {'base bwd':>9s} {'cpu ms':>8s} "
                     f"{'fwd x':>6s} {'bwd x':>6s}")
        print(head)

        def med(sysname, name, kind):
            return statistics.median(runs[(sysname, t, name, kind)])

        for layer in LAYERS:
            name = layer[0]
            if ("current", t, name, "fwd") not in runs:
                continue
            gf = gflop(layer)
            f, bw = med("current", name, "fwd"), med("current", name, "bwd")
            line = (f"{name:24s} {gf:6.3f} {f:8.3f} {gf / f * 1e3:6.0f} {med('current', name, 'fwd cpu'):8.3f} "
                    f"{bw:8.3f} {2 * gf / bw * 1e3:6.0f} {med('current', name, 'bwd cpu'):8.3f}")
            if args.baseline:
                bf, bb = med("baseline", name, "fwd"), med("baseline", name, "bwd")
                line += (f" | {bf:9.3f} {med('baseline', name, 'fwd cpu'):8.3f} {bb:9.3f} "
                         f"{med('baseline', name, 'bwd cpu'):8.3f} {bf / f:6.2f} {bb / bw:6.2f}")
            print(line)
    print("\nms: wall-clock medians; cpu ms: process CPU time per call (all threads; with one thread\n"
          "it is robust to other load, with two it shows any overhead or spinning); 'x': baseline/current")
    if hasattr(os, "getloadavg"):
        print("\nload average after: %.2f %.2f %.2f  (other processes on the machine skew timings)"
              % os.getloadavg())


if __name__ == "__main__":
    main()
