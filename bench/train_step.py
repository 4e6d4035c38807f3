"""Where a training step of cifar10_full goes, layer by layer, against a baseline copy of tinycaffe.

The net is prototxt/cifar10_full_train_test.prototxt (TRAIN phase, batch 100) as a Solver
fed by an Input layer (bench/torch_cifar.py's ``solver_for``: SGD lr 0.001, momentum 0.9,
weight decay 0.004), on one fixed batch (the first 100 CIFAR-10 training images when
../shared has them, else synthetic).  One step is timed in pieces: clear_param_diffs,
forward (``net.forward_timed``: per layer), backward (``net.backward(timed=True)``: per
layer), ``solver.apply_update``; plus whole ``solver.step(1)`` calls, and the process CPU
time of a step (robust on a shared machine: another process barely changes it).

``--baseline DIR`` also runs the tinycaffe package found in DIR (e.g. ``git archive HEAD
tinycaffe | tar -x -C DIR``); ``--current DIR`` measures another package than this checkout's
as "tinycaffe".  Every (system, threads) pair runs in its own subprocess;
systems alternate over ``--rounds``; tables give medians of the per-round medians.
Thread counts are set through TINYCAFFE/OMP/OPENBLAS/NUMBA_NUM_THREADS and
``tinycaffe.set_num_threads``.  Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/train_step.py \\
        [--threads 1 2] [--rounds 3] [--steps 8] [--baseline DIR] [--no-torch]

PyTorch CPU (bench/torch_cifar.py's model of the same net, the same weights, batch and
SGD; torch.set_num_threads, one interop thread) runs as a third system unless
``--no-torch``.  Rounds are outermost: every round runs each thread count and each
system once, so the summary's 1-vs-2-thread speed-ups and tinycaffe/torch ratios come
from the same moments.  The summary table at the end holds both.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
PROTOTXT = REPO / "prototxt/cifar10_full_train_test.prototxt"
from worker_process import run_worker  # noqa: E402  (bench/ is the script's own folder)


def worker(job: dict) -> dict:
    """One system, one thread count: per-piece and per-layer medians (ms) over ``steps`` steps."""
    sys.path.insert(0, job["root"])  # the tinycaffe under test comes first
    sys.path.insert(1, str(BENCH))
    import tinycaffe
    from torch_cifar import solver_for
    from train_throughput import batch

    assert Path(tinycaffe.__file__).resolve().is_relative_to(Path(job["root"]).resolve()), tinycaffe.__file__
    if job["system"] == "torch":
        return torch_worker(job)
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


def torch_worker(job: dict) -> dict:
    """PyTorch CPU on the same net, weights, batch and SGD (bench/torch_cifar.py, as
    bench/train_throughput.py builds it): whole steps (forward, backward, update)."""
    import torch
    from torch_cifar import solver_for, torch_model
    from train_throughput import batch

    torch.set_num_threads(job["threads"])
    torch.set_num_interop_threads(1)
    x_np, y_np, _ = batch(100)
    solver = solver_for(PROTOTXT)  # its filler weights, copied into torch
    model, opt = torch_model(torch, "cifar10_full", solver)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np).long()

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    steps, cpus = [], []
    for _ in range(job["steps"]):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        steps.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    solver.close()
    ms = lambda v: float(np.median(v)) * 1e3  # noqa: E731
    return {"step": ms(steps), "cpu": ms(cpus), "torch": torch.__version__}


def launch(job: dict) -> dict:
    return run_worker(str(Path(__file__).resolve()), job, job["system"], cwd=str(REPO))


def median_of(results: list[dict]) -> dict:
    """The per-key median over rounds (nested per-layer dicts too)."""
    out: dict = {}
    for k, v in results[0].items():
        if isinstance(v, dict):
            out[k] = {name: float(np.median([r[k].get(name, np.nan) for r in results])) for name in v}
        elif isinstance(v, str):
            out[k] = v
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
    ap.add_argument("--no-torch", action="store_true", help="leave out the PyTorch CPU runs")
    ap.add_argument("--current", default=str(REPO),
                    help="the directory whose tinycaffe package is measured as 'tinycaffe' (default: this checkout)")
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
    systems = {"tinycaffe": str(Path(args.current).resolve())}
    if args.baseline:
        systems["baseline"] = str(Path(args.baseline).resolve())
    print(f"cifar10_full TRAIN, batch 100; {args.rounds} rounds x {args.steps} timed steps per subprocess; "
          f"systems: " + ", ".join(f"{k}={v}" for k, v in systems.items()))
    names = list(systems)
    runners = names + ([] if args.no_torch else ["torch"])
    roots = dict(systems, torch=systems["tinycaffe"])  # torch's weights come from tinycaffe's fillers
    # Rounds outermost: each round runs every thread count and every system once (order
    # rotating), so 1- and 2-thread figures (and the PyTorch ones) come from the same moments.
    per: dict[tuple, list[dict]] = {(s, n): [] for s in runners for n in args.threads}
    for r in range(args.rounds):
        for n in args.threads:
            for s in runners[r % len(runners):] + runners[: r % len(runners)]:
                per[(s, n)].append(launch({"system": s, "root": roots[s], "threads": n, "steps": args.steps}))
    med = {key: median_of(v) for key, v in per.items()}
    cols = " | ".join(names)
    for n in args.threads:
        print(f"\n## threads {n}\n")
        print(f"| piece (ms, median) | {cols} |")
        print("|---|" + "---|" * len(names))
        for k in ("step", "pieces", "cpu", "forward", "backward", "update", "clear"):
            print(f"| {k} | " + " | ".join(f"{med[(s, n)][k]:.2f}" for s in names) + " |")
        for kind in ("fwd", "bwd"):
            print(f"\n| {kind} layer (ms) | {cols} |")
            print("|---|" + "---|" * len(names))
            for layer in med[(names[0], n)][kind]:
                vals = [med[(s, n)][kind].get(layer, float("nan")) for s in names]
                if max(vals) < 0.005:
                    continue  # fused into the layer before, or nothing to do
                print(f"| {layer} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    print("\n## Summary: whole solver.step(1), ms (median of round medians)\n")
    head = " | ".join(runners)
    ratio_cols = ("" if args.no_torch else " | tinycaffe / torch") + (" | baseline / tinycaffe" if args.baseline else "")
    print(f"| threads | {head}{ratio_cols} |")
    print("|---|" + "---|" * (len(runners) + ratio_cols.count("|")))
    for n in args.threads:
        line = f"| {n} | " + " | ".join(f"{med[(s, n)]['step']:.2f}" for s in runners)
        if not args.no_torch:
            line += f" | {med[('tinycaffe', n)]['step'] / med[('torch', n)]['step']:.3f}"
        if args.baseline:
            line += f" | {med[('baseline', n)]['step'] / med[('tinycaffe', n)]['step']:.3f}"
        print(line + " |")
    if len(args.threads) > 1:
        one = args.threads[0]
        for n in args.threads[1:]:
            print("\n" + "; ".join(f"{s} {one} -> {n} threads speed-up {med[(s, one)]['step'] / med[(s, n)]['step']:.2f}x"
                                   for s in runners))
    if not args.no_torch:
        print(f"(torch {med[('torch', args.threads[0])]['torch']}; each figure is a fresh subprocess)")
    if hasattr(os, "getloadavg"):
        print("\nload average after: %.2f %.2f %.2f (other processes skew wall times; cpu is robust)"
              % os.getloadavg())


if __name__ == "__main__":
    main()
