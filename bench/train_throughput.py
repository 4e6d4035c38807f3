"""Training iterations per second: tinycaffe's Solver against the same nets in PyTorch CPU.

For cifar10_quick and cifar10_full (prototxt/*_train_test.prototxt, TRAIN
phase, batch 100) both engines start from the same weights (tinycaffe's
fillers, copied into torch) and train on the same fixed batch (the first 100
CIFAR-10 training images, mean-subtracted, when ../shared has them; else
synthetic) with the same SGD (base_lr 0.001, momentum 0.9, weight_decay
0.004, each parameter's lr_mult / decay_mult as torch param groups). The
torch nets are built by hand: Caffe's ceil-mode pooling, its within-channel
LRN as x * (1 + alpha * avgpool3x3(x^2)) ^ -beta. A few first losses of both
are printed as a check that the two really compute the same thing.

One iteration = forward + backward + update. Blocks of ``--iters``
iterations alternate between the engines (so load from other processes hits
both alike), ``--repeats`` blocks each (after 3 warm-up iterations), median per-iteration time reported,
with 1 and 2 threads. Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/train_throughput.py [--repeats 5] [--iters 4]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from machine import print_machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinycaffe.cli.common import set_threads  # noqa: E402
from tinycaffe.solver import Solver  # noqa: E402
from torch_cifar import BATCH, solver_for, torch_model  # noqa: E402

NETS = {"cifar10_quick": "prototxt/cifar10_quick_train_test.prototxt",
        "cifar10_full": "prototxt/cifar10_full_train_test.prototxt"}
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "data_batch_1.bin"


def batch() -> tuple[np.ndarray, np.ndarray, str]:
    """(images float32 NCHW, labels, description) for the one batch both engines train on."""
    if CIFAR.is_file():
        from tinycaffe.data.cifar10 import read_cifar10_bin

        images, labels = read_cifar10_bin(CIFAR)
        x = images[:BATCH].astype(np.float32)
        x -= x.mean(axis=(0, 2, 3), keepdims=True)  # stands in for the mean file
        return x, labels[:BATCH].astype(np.float32), f"first {BATCH} images of {CIFAR.name}"
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((BATCH, 3, 32, 32)) * 50).astype(np.float32)
    return x, rng.integers(0, 10, BATCH).astype(np.float32), "synthetic N(0, 50^2) images"


def torch_step(torch, model, opt, x, y) -> Callable[[], float]:
    def step() -> float:
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def tinycaffe_step(solver: Solver) -> Callable[[], float]:
    def step() -> float:
        solver.step(1)
        return solver.net.loss
    return step


def timed_block(step: Callable[[], float], iters: int) -> float:
    t = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - t) / iters


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per engine and setting")
    ap.add_argument("--iters", type=int, default=4, help="iterations per timed block")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    args = ap.parse_args(argv)
    import torch

    x_np, y_np, what = batch()
    print_machine_info()
    print(f"torch {torch.__version__}; data: {what}; batch {BATCH}; SGD lr 0.001 momentum 0.9 wd 0.004")
    print(f"{args.repeats} alternating blocks of {args.iters} iterations per engine after 3 warm-up "
          "iterations; median ms per iteration (forward + backward + update)\n")
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np).long()
    rows = []
    for name in args.nets:
        for n in args.threads:
            set_threads(n)
            torch.set_num_threads(n)
            solver = solver_for(REPO / NETS[name])
            solver.net.blobs["data"].data[...] = x_np
            solver.net.blobs["label"].data[...] = y_np
            model, opt = torch_model(torch, name, solver)
            ours, theirs = tinycaffe_step(solver), torch_step(torch, model, opt, x, y)
            first = [(ours(), theirs()) for _ in range(3)]  # warm-up, and the check
            if n == args.threads[0]:
                print(f"{name}: first losses tinycaffe vs torch: "
                      + ", ".join(f"{a:.5f}/{b:.5f}" for a, b in first))
            t_ours, t_theirs = [], []
            for _ in range(args.repeats):
                t_ours.append(timed_block(ours, args.iters))
                t_theirs.append(timed_block(theirs, args.iters))
            solver.close()
            rows.append((name, n, float(np.median(t_ours)) * 1e3, float(np.median(t_theirs)) * 1e3))
    print(f"\n{'net':15s} {'threads':>7s} {'tinycaffe ms':>13s} {'torch ms':>9s} {'tinycaffe it/s':>15s} "
          f"{'torch it/s':>11s} {'tinycaffe/torch time':>21s}")
    for name, n, a, b in rows:
        print(f"{name:15s} {n:7d} {a:13.1f} {b:9.1f} {1e3 / a:15.2f} {1e3 / b:11.2f} {a / b:21.2f}")
    if hasattr(os, "getloadavg"):
        print("\nload average after: %.2f %.2f %.2f  (other processes on the machine skew timings)"
              % os.getloadavg())


if __name__ == "__main__":
    main()
