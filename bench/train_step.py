"""Where a training step of cifar10_full goes, layer by layer, against a baseline copy of tinycaffe.

The net is prototxt/cifar10_full_train_test.prototxt (TRAIN phase, batch 100) as a Solver
fed by an Input layer (bench/torch_cifar.py's ``solver_for``: SGD lr 0.001, momentum 0.9,
weight decay 0.004), on one fixed batch (the first 100 CIFAR-10 training images when
../shared has them, else synthetic).  One step is timed in pieces: clear_param_diffs,
forward (``net.forward_timed``: per layer), backward (``net.backward(timed=True)``: per
layer), ``solver.apply_update``; plus whole ``solver.step(1)`` calls, and the process CPU
time of a step (robust on a shared machine: another process barely changes it).

``--baseline DIR`` also runs the tinycaffe package found in DIR (e.g. ``git archive HEAD
tinycaffe | tar -x -C DIR``).  Every (system, threads) pair runs in its own subprocess;
systems alternate over ``--rounds``; tables give medians of the per-round medians.
Thread counts are set through TINYCAFFE/OMP/OPENBLAS/NUMBA_NUM_THREADS and
``tinycaffe.set_num_threads``.  Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/train_step.py \\
        [--threads 1 2] [--rounds 3] [--steps 8] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
PROTOTXT = REPO / "prototxt/cifar10_full_train_test.prototxt"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "TINYCAFFE_NUM_THREADS")


def worker(job: dict) -> dict:
    """One system, one thread count: per-piece and per-layer medians (ms) over ``steps`` steps."""
    sys.path.insert(0, job["root"])  # the tinycaffe under test comes first
    sys.path.insert(1, str(BENCH))
    import tinycaffe
    from torch_cifar import solver_for
    from train_throughput import batch

    assert Path(tinycaffe.__file__).resolve().is_relative_to(Path(job["root"]).resolve()), tinycaffe.__file__
    tinycaffe.set_num_threads(job["threads"])
    x, y, _ = batch(100)
    solver = solver_for(PROTOTXT)
    net = solver.net
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    for _ in range(3):
        solver.step(1)
    pieces = {k: [] for k in ("clear", "forward", "backward", "update", "pieces", "cpu")}
    net.layer_times.clear()
    net.backward_times.clear()
    for _ in range(job["steps"]):
        c0 = time.process_time()
        t0 = time.perf_counter()
        net.clear_param_diffs()
        t1 = time.perf_counter()
        net.forward_timed()
        t2 = time.perf_counter()
        net.backward(timed=True)
        t3 = time.perf_counter()
        solver.apply_update()
        t4 = time.perf_counter()
        pieces["cpu"].append(time.process_time() - c0)
        for k, a, b in (("clear", t0, t1), ("forward", t1, t2), ("backward", t2, t3), ("update", t3, t4),
                        ("pieces", t0, t4)):
            pieces[k].append(b - a)
    steps = []
    for _ in range(job["steps"]):
        t0 = time.perf_counter()
        solver.step(1)
        steps.append(time.perf_counter() - t0)
    solver.close()
    ms = lambda v: float(np.median(v)) * 1e3  # noqa: E731
    return {"step": ms(steps), **{k: ms(v) for k, v in pieces.items()},
            "fwd": {k: ms(v) for k, v in net.layer_times.items()},
            "bwd": {k: ms(v) for k, v in net.backward_times.items()}}


def launch(job: dict) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(job["threads"])
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)],
                          env=env, capture_output=True, text=True, timeout=900, cwd=str(REPO))
    if proc.returncode != 0:
        raise SystemExit(f"{job['system']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(results: list[dict]) -> dict:
    """The per-key median over rounds (nested per-layer dicts too)."""
    out: dict = {}
    for k, v in results[0].items():
        if isinstance(v, dict):
            out[k] = {name: float(np.median([r[k].get(name, np.nan) for r in results])) for name in v}
        else:
            out[k] = float(np.median([r[k] for r in results]))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per subprocess (after 3 warm-up steps)")
    ap.add_argument("--baseline", help="a directory holding another tinycaffe package to compare with")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sys.path.insert(0, str(BENCH))
    from machine import print_machine_info

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_machine_info()
    print(buf.getvalue().rstrip())
    systems = {"tinycaffe": str(REPO)}
    if args.baseline:
        systems["baseline"] = str(Path(args.baseline).resolve())
    print(f"cifar10_full TRAIN, batch 100; {args.rounds} rounds x {args.steps} timed steps per subprocess; "
          f"systems: " + ", ".join(f"{k}={v}" for k, v in systems.items()))
    names = list(systems)
    for n in args.threads:
        per: dict[str, list[dict]] = {s: [] for s in names}
        for r in range(args.rounds):
            for s in names[r % len(names):] + names[: r % len(names)]:
                per[s].append(launch({"system": s, "root": systems[s], "threads": n, "steps": args.steps}))
        med = {s: median_of(v) for s, v in per.items()}
        print(f"\n## threads {n}\n")
        cols = " | ".join(names)
        print(f"| piece (ms, median) | {cols} |")
        print("|---|" + "---|" * len(names))
        for k in ("step", "pieces", "cpu", "forward", "backward", "update", "clear"):
            print(f"| {k} | " + " | ".join(f"{med[s][k]:.2f}" for s in names) + " |")
        for kind in ("fwd", "bwd"):
            print(f"\n| {kind} layer (ms) | {cols} |")
            print("|---|" + "---|" * len(names))
            for layer in med[names[0]][kind]:
                vals = [med[s][kind].get(layer, float("nan")) for s in names]
                if max(vals) < 0.005:
                    continue  # fused into the layer before, or nothing to do
                print(f"| {layer} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    if hasattr(os, "getloadavg"):
        print("\nload average after: %.2f %.2f %.2f (other processes skew wall times; cpu is robust)"
              % os.getloadavg())


if __name__ == "__main__":
    main()
