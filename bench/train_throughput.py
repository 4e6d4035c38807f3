"""Training step time: tinycaffe's Solver against the same nets in PyTorch CPU, batch 100.

For cifar10_quick and cifar10_full (prototxt/*_train_test.prototxt, TRAIN
phase, batch 100) both engines start from the same weights (tinycaffe's
fillers, copied into torch) and train on the same fixed batch (the first 100
CIFAR-10 training images, mean-subtracted, when ../shared has them; else
synthetic) with the same SGD (base_lr 0.001, momentum 0.9, weight_decay
0.004, each parameter's lr_mult / decay_mult as torch param groups). The
torch nets are built by hand (bench/torch_cifar.py): Caffe's ceil-mode
pooling, its within-channel LRN as x * (1 + alpha * avgpool3x3(x^2)) ^ -beta.
The first three losses of both are printed as a check that the two really
compute the same thing.

One step = forward + backward + SGD update. Every measurement is a fresh
subprocess running one engine only (no thread pool of one spinning while the
other computes), with OMP/OPENBLAS/MKL/NUMBA/TINYCAFFE_NUM_THREADS set to the
thread count and each library's own setting (tinycaffe.set_num_threads or the
CLI's set_threads; torch.set_num_threads, set_num_interop_threads(1)). A
subprocess runs 3 warm-up steps, then ``--iters`` timed steps; its median is
that round's figure. Engines alternate over ``--rounds`` rounds (order
rotating); the table gives the median of the round medians. Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/train_throughput.py [--rounds 3] [--iters 8] [--write]

``--write`` saves the output to bench/results/train_throughput.txt.
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

NETS = {"cifar10_quick": "prototxt/cifar10_quick_train_test.prototxt",
        "cifar10_full": "prototxt/cifar10_full_train_test.prototxt"}
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "data_batch_1.bin"
ENGINES = ("tinycaffe", "torch")
from worker_process import run_worker  # noqa: E402  (bench/ is the script's own folder)


def batch(size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(images float32 NCHW, labels, description) for the one batch both engines train on."""
    if CIFAR.is_file():
        from tinycaffe.data.cifar10 import read_cifar10_bin

        images, labels = read_cifar10_bin(CIFAR)
        x = images[:size].astype(np.float32)
        x -= x.mean(axis=(0, 2, 3), keepdims=True)  # stands in for the mean file
        return x, labels[:size].astype(np.float32), f"first {size} images of {CIFAR.name}"
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((size, 3, 32, 32)) * 50).astype(np.float32)
    return x, rng.integers(0, 10, size).astype(np.float32), "synthetic N(0, 50^2) images"


def worker(job: dict) -> dict:
    """One engine, one net, one thread count: warm-up losses and timed step times."""
    from torch_cifar import BATCH, solver_for, torch_model

    import tinycaffe

    threads = job["threads"]
    how = "tinycaffe.set_num_threads"
    if hasattr(tinycaffe, "set_num_threads"):
        tinycaffe.set_num_threads(threads)
    else:
        from tinycaffe.cli.common import set_threads

        set_threads(threads)
        how = "tinycaffe.cli.common.set_threads (--threads)"
    x_np, y_np, _ = batch(BATCH)
    solver = solver_for(REPO / NETS[job["net"]])  # both engines start from its filler weights
    if job["engine"] == "tinycaffe":
        solver.net.blobs["data"].data[...] = x_np
        solver.net.blobs["label"].data[...] = y_np

        def step() -> float:
            solver.step(1)
            return solver.net.loss
    else:
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        how = f"torch {torch.__version__} set_num_threads({threads})"
        model, opt = torch_model(torch, job["net"], solver)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np).long()

        def step() -> float:
            opt.zero_grad(set_to_none=False)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
    losses = [step() for _ in range(3)]  # warm-up, and the check
    times = []
    for _ in range(job["iters"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    solver.close()
    return {"losses": losses, "median_ms": float(np.median(times)) * 1e3, "how": how}


def launch(job: dict) -> dict:
    return run_worker(str(Path(__file__).resolve()), job, f"{job['engine']} {job['net']}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (one subprocess per engine each)")
    ap.add_argument("--iters", type=int, default=8, help="timed steps per subprocess")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--write", action="store_true", help="save the output to bench/results/train_throughput.txt")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from machine import print_machine_info

    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_machine_info()
    for line in buf.getvalue().splitlines():
        say(line)
    _, _, what = batch(1)
    say(f"data: {what.replace('first 1 images', 'first 100 images')}; batch 100; "
        "SGD lr 0.001 momentum 0.9 wd 0.004")
    say(f"{args.rounds} rounds, each one subprocess per engine (order rotating): 3 warm-up steps, then "
        f"{args.iters} timed steps; median over rounds of the per-round median ms per step "
        "(forward + backward + update)")
    rows, hows = [], {}
    for name in args.nets:
        for n in args.threads:
            per = {e: [] for e in ENGINES}
            losses = {}
            for r in range(args.rounds):
                order = ENGINES[r % 2:] + ENGINES[: r % 2]
                for e in order:
                    res = launch({"engine": e, "net": name, "threads": n, "iters": args.iters})
                    per[e].append(res["median_ms"])
                    losses[e] = res["losses"]
                    hows[e] = res["how"]
            if n == args.threads[0]:
                say(f"{name}: first losses tinycaffe/torch: " + ", ".join(
                    f"{a:.5f}/{b:.5f}" for a, b in zip(losses["tinycaffe"], losses["torch"])))
            med = {e: float(np.median(v)) for e, v in per.items()}
            rows.append((name, n, med["tinycaffe"], med["torch"]))
            print(f"  {name} threads {n}: " + ", ".join(
                f"{e} {med[e]:.1f} ms (rounds {', '.join(f'{v:.1f}' for v in per[e])})" for e in ENGINES),
                flush=True)
    say("engines: " + "; ".join(f"{e}: {h}" for e, h in hows.items()))
    say()
    say(f"{'net':15s} {'threads':>7s} {'tinycaffe ms':>13s} {'torch ms':>9s} {'tinycaffe it/s':>15s} "
        f"{'torch it/s':>11s} {'tinycaffe/torch time':>21s}")
    for name, n, a, b in rows:
        say(f"{name:15s} {n:7d} {a:13.1f} {b:9.1f} {1e3 / a:15.2f} {1e3 / b:11.2f} {a / b:21.2f}")
    if hasattr(os, "getloadavg"):
        say("\nload average after: %.2f %.2f %.2f  (other processes on the machine skew timings)"
            % os.getloadavg())
    if args.write:
        cmd = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/train_throughput.py "
               + " ".join(argv if argv is not None else sys.argv[1:])).strip()
        path = REPO / "bench/results/train_throughput.txt"
        path.write_text(f"# {cmd}   ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n" + "\n".join(out) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
