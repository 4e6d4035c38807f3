"""Pooling and LRN kernels per layer of cifar10_full, forward and backward.

Compares kernel modules with the same API (``pool_forward``, ``pool_backward``,
``lrn_forward``, ``lrn_backward``):

* ``numba``    tinycaffe.kernels.numba_kernels (the current CPU path);
* ``numpy``    tinycaffe.kernels.numpy_kernels (the vectorised NumPy path);
* ``baseline`` a saved copy of an older numba_kernels.py (``--baseline FILE``;
  its relative imports are rewritten to ``tinycaffe.kernels.*``), e.g. the one
  before the pool/LRN rewrite:
  ``git show 6446be7:tinycaffe/kernels/numba_kernels.py > /tmp/old_numba_kernels.py``

Layers (cifar10_quick's pool1..pool3 have the same shapes as cifar10_full's):
pool1 MAX 3/2 on (N,32,32,32), norm1 LRN WITHIN 3 on (N,32,16,16), pool2 AVE
3/2 on (N,32,16,16), norm2 LRN WITHIN 3 on (N,32,8,8), pool3 AVE 3/2 on
(N,64,8,8).  Rows: ``fwd`` (inference), ``fwd+mask`` (MAX in training, which
also records Caffe's argmax mask), ``bwd`` (MAX: the winners searched again
from x, as a TEST-phase backward does), ``bwd(mask)`` (MAX: scatter through the
forward's mask, as the Pooling layer does in TRAIN).  Modules without the
mask keyword skip those rows.

Each system runs in its own process; systems alternate over ``--rounds``;
each cell is the median over rounds of the per-round median of ``--reps``
calls (after one warm-up call).  GB/s = the bytes the operation must move at
least (each input read once, each output written once) / time.

Run (BLAS is not used by these kernels, but the variables are unset and the
BLAS kernel printed as for every bench here):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/pool_lrn.py \\
        --baseline /tmp/old_numba_kernels.py --batch 100 1 --threads 1 --rounds 3
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

LAYERS = [
    # name, input shape (C, H, W), op, args
    ("pool1", (32, 32, 32), "max", (3, 2, 0)),
    ("norm1", (32, 16, 16), "lrn", (3, 5e-5, 0.75, 1.0, "within")),
    ("pool2", (32, 16, 16), "ave", (3, 2, 0)),
    ("norm2", (32, 8, 8), "lrn", (3, 5e-5, 0.75, 1.0, "within")),
    ("pool3", (64, 8, 8), "ave", (3, 2, 0)),
]


def _load(system: str, baseline: str | None):
    if system == "numba":
        return importlib.import_module("tinycaffe.kernels.numba_kernels")
    if system == "numpy":
        return importlib.import_module("tinycaffe.kernels.numpy_kernels")
    if not baseline:
        raise SystemExit("--baseline FILE is needed for the 'baseline' system")
    src = open(baseline).read()
    src = re.sub(r"^from \.(\w+) import", r"from tinycaffe.kernels.\1 import", src, flags=re.M)
    path = os.path.join(tempfile.mkdtemp(prefix="tc_baseline_"), "baseline_kernels.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("baseline_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _median_ms(fn, reps: int) -> float:
    fn()  # warm-up (and JIT load)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def child(system: str, baseline: str | None, batch: int, threads: int, reps: int) -> None:
    from tinycaffe.kernels import set_num_threads

    set_num_threads(threads)
    k = _load(system, baseline)
    has_mask = "mask" in k.pool_forward.__code__.co_varnames
    has_out_b = "out" in k.pool_backward.__code__.co_varnames
    rng = np.random.default_rng(0)
    rows = {}
    for name, chw, op, args in LAYERS:
        x = rng.standard_normal((batch, *chw)).astype(np.float32)
        if op == "lrn":
            y = np.asarray(k.lrn_forward(x, *args))
            dy = rng.standard_normal(y.shape).astype(np.float32)
            rows[f"{name} fwd"] = _median_ms(lambda: k.lrn_forward(x, *args, out=y), reps)
            if "out" in k.lrn_backward.__code__.co_varnames:
                dx = np.empty_like(x)
                rows[f"{name} bwd"] = _median_ms(lambda: k.lrn_backward(x, y, dy, *args, out=dx), reps)
            else:
                rows[f"{name} bwd"] = _median_ms(lambda: k.lrn_backward(x, y, dy, *args), reps)
            continue
        y = np.asarray(k.pool_forward(x, op, *args))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = np.empty_like(x)
        rows[f"{name} fwd"] = _median_ms(lambda: k.pool_forward(x, op, *args, out=y), reps)
        if has_out_b:
            rows[f"{name} bwd"] = _median_ms(lambda: k.pool_backward(x, y, dy, op, *args, out=dx), reps)
        else:
            rows[f"{name} bwd"] = _median_ms(lambda: k.pool_backward(x, y, dy, op, *args), reps)
        if op == "max" and has_mask:
            mask = np.empty(y.shape, np.int32)
            rows[f"{name} fwd+mask"] = _median_ms(lambda: k.pool_forward(x, op, *args, out=y, mask=mask), reps)
            rows[f"{name} bwd(mask)"] = _median_ms(
                lambda: k.pool_backward(x, y, dy, op, *args, out=dx, mask=mask), reps)
    print(json.dumps(rows))


def _bytes(name: str, batch: int) -> int:
    layer, what = name.split(" ")
    _, chw, op, args = next(item for item in LAYERS if item[0] == layer)
    n_in = batch * int(np.prod(chw))
    if op == "lrn":
        return 4 * (2 * n_in if what == "fwd" else 4 * n_in)  # fwd: x, y; bwd: x, y, dy, dx
    from tinycaffe.kernels.sizes import pool_out_size

    o = pool_out_size(chw[1], args[0], args[1], args[2])
    n_out = batch * chw[0] * o * o
    return 4 * {"fwd": n_in + n_out, "fwd+mask": n_in + 2 * n_out,
                "bwd": (2 * n_in + n_out) if op == "max" else (n_in + n_out),  # MAX reads x again
                "bwd(mask)": n_in + 2 * n_out}[what]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", nargs="+", default=["baseline", "numba"])
    ap.add_argument("--baseline", help="path of an older numba_kernels.py to compare against")
    ap.add_argument("--batch", type=int, nargs="+", default=[100, 1])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=0, help="calls per round (default 30 at batch>=10, else 300)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.systems[0], a.baseline, a.batch[0], a.threads[0], a.reps)
        return
    if "baseline" in a.systems and not a.baseline:
        a.systems = [s for s in a.systems if s != "baseline"]
        print("(no --baseline given: comparing", a.systems, ")")
    try:
        from threadpoolctl import threadpool_info

        blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
    except Exception as e:  # threadpoolctl missing
        blas = f"unknown ({e})"
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cores {os.cpu_count()}, BLAS {blas}")
    env = {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    print(f"systems {a.systems}, rounds {a.rounds}, each system in its own process, alternating")
    for threads in a.threads:
        for batch in a.batch:
            reps = a.reps or (30 if batch >= 10 else 300)
            per: dict[str, dict[str, list[float]]] = {s: {} for s in a.systems}
            for _ in range(a.rounds):
                for s in a.systems:
                    cmd = [sys.executable, __file__, "--child", "--systems", s, "--batch", str(batch),
                           "--threads", str(threads), "--reps", str(reps)]
                    if a.baseline:
                        cmd += ["--baseline", a.baseline]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    for row, ms in json.loads(out.strip().splitlines()[-1]).items():
                        per[s].setdefault(row, []).append(ms)
            names = [f"{l[0]} {w}" for l in LAYERS for w in ("fwd", "fwd+mask", "bwd", "bwd(mask)")
                     if any(f"{l[0]} {w}" in per[s] for s in a.systems)]
            print(f"\n### threads {threads}, batch {batch} ({reps} calls per round, median of {a.rounds} rounds)\n")
            head = " | ".join(f"{s} ms | {s} GB/s" for s in a.systems)
            ratio = f" | {a.systems[-1]}/{a.systems[0]}" if len(a.systems) > 1 else ""
            print(f"| layer | {head}{ratio} |")
            print("|---" * (1 + 2 * len(a.systems) + (1 if ratio else 0)) + "|")
            for name in names:
                cells, meds = [], []
                for s in a.systems:
                    if name in per[s]:
                        m = float(np.median(per[s][name]))
                        meds.append(m)
                        cells.append(f"{m:.3f} | {_bytes(name, batch) / m / 1e6:.1f}")
                    else:
                        meds.append(None)
                        cells.append("- | -")
                r = ""
                if ratio:
                    r = f" | {meds[-1] / meds[0]:.2f}" if meds[0] and meds[-1] else " | -"
                print(f"| {name} | {' | '.join(cells)}{r} |")


if __name__ == "__main__":
    main()
