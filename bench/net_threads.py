"""cifar10_full forward and training step at batch 1 and 100 on 1 and 2 threads.

A training step here is forward + backward of the TRAIN net (the Data layer
replaced by an Input layer holding a fixed random batch; no solver update),
the part of an iteration that the kernels decide.  ``--baseline DIR`` also
times another tinycaffe checkout (a directory holding a ``tinycaffe``
package, e.g. ``git archive <commit> tinycaffe | tar -x -C DIR``).

Every (system, threads, batch, mode) runs in its own subprocess; threads are
set as the CLI's ``--threads`` does (tinycaffe.cli.common.set_threads).  Systems
alternate over ``--rounds`` rounds; the table gives the median of the round
medians of wall-clock time, and of process CPU time (all threads: with two
threads it shows overhead or spinning; with one it is robust to other load).
Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/net_threads.py \
        [--rounds 3] [--baseline DIR] [--batches 100 1] [--modes forward train] [--no-torch]

PyTorch CPU (bench/torch_cifar.py's model of the same net and weights, torch.set_num_threads,
one interop thread) runs as one more system unless ``--no-torch``; 'cur/torch' is
tinycaffe's time over PyTorch's.  Within a round every (mode, batch, threads, system)
runs once, so 1- and 2-thread figures come from the same moments; the lines after each
mode give the 1 -> 2 threads speed-up of every system at the first batch size.
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
PROTOTXT = REPO / "prototxt" / "cifar10_full_train_test.prototxt"


def torch_worker(job: dict) -> dict:
    """PyTorch CPU on the same net (bench/torch_cifar.py's model, weights from tinycaffe's
    fillers): 'forward' is model + loss under no_grad, 'train' adds backward (no update)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import torch
    from torch_cifar import solver_for, torch_model

    torch.set_num_threads(job["threads"])
    torch.set_num_interop_threads(1)
    b = job["batch"]
    solver = solver_for(PROTOTXT, batch=b)
    model, _ = torch_model(torch, "cifar10_full", solver)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((b, 3, 32, 32)).astype(np.float32) * 50)
    y = torch.from_numpy(rng.integers(0, 10, b))

    def step():
        if job["mode"] == "train":
            model.zero_grad(set_to_none=False)
            torch.nn.functional.cross_entropy(model(x), y).backward()
        else:
            with torch.no_grad():
                torch.nn.functional.cross_entropy(model(x), y)

    out = _time(step, job)
    solver.close()
    return out


def _time(step, job: dict) -> dict:
    for _ in range(3):
        step()
    reps = job["repeats"] if job["batch"] >= 50 else job["repeats"] * 10
    walls, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return dict(wall=statistics.median(walls) * 1e3, cpu=statistics.median(cpus) * 1e3,
                best=min(walls) * 1e3)


def worker(job: dict) -> dict:
    sys.path.insert(0, job["root"])
    if job.get("torch"):
        return torch_worker(job)
    import numpy as np

    from tinycaffe.cli.common import set_threads
    from tinycaffe.net import Net
    from tinycaffe.proto import read_net

    set_threads(job["threads"])
    b = job["batch"]
    param = read_net(str(PROTOTXT))
    layers = [lp for lp in param.layer if lp.type not in ("Data", "Accuracy")]
    del param.layer[:]
    inp = param.layer.add(name="input", type="Input", top=["data", "label"])
    inp.input_param.shape.add().dim.extend([b, 3, 32, 32])
    inp.input_param.shape.add().dim.extend([b])
    param.layer.extend(layers)
    net = Net(param, phase="train")
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal((b, 3, 32, 32)).astype(np.float32) * 50
    net.blobs["label"].data[...] = rng.integers(0, 10, b)

    def step():
        net.forward()
        if job["mode"] == "train":
            net.backward()

    return _time(step, job)


def launch(job: dict) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TINYCAFFE_NUM_THREADS"):
        env.pop(var, None)
    if job.get("torch"):  # torch reads OMP_NUM_THREADS at start-up as well as set_num_threads
        env["OMP_NUM_THREADS"] = str(job["threads"])
    r = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                       capture_output=True, text=True, cwd=job["root"])
    if r.returncode:
        raise SystemExit(f"worker {job} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10, help="timed steps at batch 100 (x10 at batch 1)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=[100, 1])
    ap.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    ap.add_argument("--baseline", help="directory holding an older tinycaffe package to compare with")
    ap.add_argument("--no-torch", action="store_true", help="leave out PyTorch CPU on the same net")
    ap.add_argument("--current", default=str(REPO),
                    help="directory whose tinycaffe package is measured as 'current' (default: this checkout)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import print_machine_info

    print_machine_info()
    systems = [("current", str(Path(args.current).resolve()))] + ([("baseline", str(Path(args.baseline).resolve()))]
                                          if args.baseline else [])
    if not args.no_torch:
        systems.append(("torch", systems[0][1]))  # its weights come from tinycaffe's fillers
    print(f"net {PROTOTXT.name}; systems: {', '.join(f'{s} ({r})' for s, r in systems)}; "
          f"{args.rounds} alternating rounds; {args.repeats} timed steps at batch 100, "
          f"{args.repeats * 10} at batch 1, after 3 warm-ups\n")
    runs: dict = {}
    for rnd in range(args.rounds):
        order = systems if rnd % 2 == 0 else systems[::-1]
        for mode in args.modes:
            for b in args.batches:
                for t in args.threads:
                    for sysname, root in order:
                        r = launch(dict(root=root, threads=t, batch=b, mode=mode, repeats=args.repeats,
                                        torch=sysname == "torch"))
                        runs.setdefault((sysname, mode, b, t), []).append(r)
    cols = f"{'mode':8s} {'batch':>5s} {'thr':>3s}"
    for sysname, _ in systems:
        cols += f" | {sysname + ' ms':>13s} {'cpu ms':>8s} {'best':>8s}"
    if args.baseline:
        cols += f" | {'base/cur':>8s}"
    if not args.no_torch:
        cols += f" | {'cur/torch':>9s}"
    print(cols)
    for mode in args.modes:
        for b in args.batches:
            for t in args.threads:
                line = f"{mode:8s} {b:5d} {t:3d}"
                walls = {}
                for sysname, _ in systems:
                    rs = runs[(sysname, mode, b, t)]
                    walls[sysname] = statistics.median(r["wall"] for r in rs)
                    line += (f" | {walls[sysname]:13.3f} {statistics.median(r['cpu'] for r in rs):8.3f} "
                             f"{min(r['best'] for r in rs):8.3f}")
                if args.baseline:
                    line += f" | {walls['baseline'] / walls['current']:8.2f}"
                if not args.no_torch:
                    line += f" | {walls['current'] / walls['torch']:9.2f}"
                print(line)
        for sysname, _ in systems:
            one = statistics.median(r["wall"] for r in runs[(sysname, mode, args.batches[0], args.threads[0])])
            for t in args.threads[1:]:
                more = statistics.median(r["wall"] for r in runs[(sysname, mode, args.batches[0], t)])
                print(f"  {sysname} {mode} batch {args.batches[0]}: {args.threads[0]} -> {t} threads "
                      f"speed-up {one / more:.2f}x")
    if hasattr(os, "getloadavg"):
        print("\nload average after: %.2f %.2f %.2f  (other processes on the machine skew timings)"
              % os.getloadavg())


if __name__ == "__main__":
    main()
