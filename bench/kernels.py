"""Time the CPU kernels on the cifar10_full layer shapes (batch 100).

Compares tinycaffe's Numba path, its vectorised NumPy path and, if importable,
PyTorch CPU, all with the same thread count, and prints the machine, BLAS,
repeats, medians and ratios.  Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/kernels.py [--repeats 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from machine import print_machine_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinycaffe.kernels import numba_kernels, numpy_kernels, threads  # noqa: E402

BATCH = 100
ALPHA, BETA = 5e-5, 0.75  # cifar10_full's norm1/norm2


def cases(rng: np.random.Generator) -> list[tuple[str, dict]]:
    """(name, spec) for each cifar10_full kernel call at batch 100."""
    def x(c, h):
        return rng.standard_normal((BATCH, c, h, h)).astype(np.float32)

    def conv(c, m, h):
        return dict(kind="conv", x=x(c, h), w=(rng.standard_normal((m, c, 5, 5)) * 0.05).astype(np.float32),
                    b=rng.standard_normal(m).astype(np.float32))

    return [
        ("conv1 3->32 5x5 p2 32x32", conv(3, 32, 32)),
        ("conv2 32->32 5x5 p2 16x16", conv(32, 32, 16)),
        ("conv3 32->64 5x5 p2 8x8", conv(32, 64, 8)),
        ("pool1 max 3/2 32x32x32", dict(kind="pool", method="max", x=x(32, 32))),
        ("pool2 ave 3/2 32x16x16", dict(kind="pool", method="ave", x=x(32, 16))),
        ("pool3 ave 3/2 64x8x8", dict(kind="pool", method="ave", x=x(64, 8))),
        ("norm1 LRN within 3 32x16x16", dict(kind="lrn", x=x(32, 16))),
        ("norm2 LRN within 3 32x8x8", dict(kind="lrn", x=x(32, 8))),
    ]


def ours(mod, spec) -> Callable[[], object]:
    xa = spec["x"]
    if spec["kind"] == "conv":
        out = np.empty((BATCH, spec["w"].shape[0]) + xa.shape[2:], np.float32)
        return lambda: mod.conv_forward(xa, spec["w"], spec["b"], 1, 2, 1, 1, out=out)
    if spec["kind"] == "pool":
        return lambda: mod.pool_forward(xa, spec["method"], 3, 2, 0)
    return lambda: mod.lrn_forward(xa, 3, ALPHA, BETA, 1.0, "within")


def torch_fn(torch, spec) -> Callable[[], object]:
    F = torch.nn.functional
    xa = torch.from_numpy(spec["x"])
    if spec["kind"] == "conv":
        w, b = torch.from_numpy(spec["w"]), torch.from_numpy(spec["b"])
        return lambda: F.conv2d(xa, w, b, padding=2)
    if spec["kind"] == "pool" and spec["method"] == "max":
        return lambda: F.max_pool2d(xa, 3, 2, 0, ceil_mode=True)
    if spec["kind"] == "pool":
        return lambda: F.avg_pool2d(xa, 3, 2, 0, ceil_mode=True, count_include_pad=True)
    # No within-channel LRN in PyTorch: the same composition Caffe uses.
    return lambda: xa * (1 + ALPHA * F.avg_pool2d(xa * xa, 3, 1, 1, count_include_pad=True)) ** -BETA


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    fn()  # warm-up: JIT/cache load, allocator, BLAS threads
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def cpu_ms_one_thread(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of ``fn`` on one thread: the work itself, little affected by
    other processes competing for the cores (wall-clock medians are)."""
    before = threads.get_num_threads()
    threads.set_num_threads(1)
    try:
        fn()
        times = []
        for _ in range(repeats):
            t = time.thread_time()
            fn()
            times.append(time.thread_time() - t)
    finally:
        threads.set_num_threads(before)
    return float(np.median(times)) * 1e3


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    threads.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        try:
            import torch  # type: ignore[no-redef]

            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    print_machine_info()
    print(f"tinycaffe kernel threads: {args.threads} (BLAS held to 1 thread per worker)")
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"batch {BATCH}, {args.repeats} timed repeats after 2 warm-ups, median ms\n")
    print("wall-clock medians with the thread count above; 'numba cpu1': CPU time of")
    print("the numba path on 1 thread (robust to other load on the machine)\n")
    header = (f"{'kernel':30s} {'numba':>8s} {'numpy':>8s} {'torch':>8s} {'numpy/numba':>12s} "
              f"{'torch/numba':>12s} {'numba cpu1':>11s}")
    print(header)
    print("-" * len(header))
    totals = np.zeros(4)
    for name, spec in cases(np.random.default_rng(0)):
        t_nb = median_ms(ours(numba_kernels, spec), args.repeats)
        t_np = median_ms(ours(numpy_kernels, spec), args.repeats)
        t_th = median_ms(torch_fn(torch, spec), args.repeats) if torch is not None else float("nan")
        t_cpu = cpu_ms_one_thread(ours(numba_kernels, spec), args.repeats)
        totals += (t_nb, t_np, t_th, t_cpu)
        print(f"{name:30s} {t_nb:8.2f} {t_np:8.2f} {t_th:8.2f} {t_np / t_nb:12.2f} "
              f"{t_th / t_nb:12.2f} {t_cpu:11.2f}")
    print("-" * len(header))
    print(f"{'sum':30s} {totals[0]:8.2f} {totals[1]:8.2f} {totals[2]:8.2f} "
          f"{totals[1] / totals[0]:12.2f} {totals[2] / totals[0]:12.2f} {totals[3]:11.2f}")
    if hasattr(os, "getloadavg"):
        print("\nload average after: %.2f %.2f %.2f  (other processes on the machine skew timings)"
              % os.getloadavg())


if __name__ == "__main__":
    main()
