"""Start-up: time from ``tinycaffe test`` start to its first batch, cold and warm, and where it goes.

The command timed is the README's main job, one batch:

    tinycaffe test prototxt/cifar10_full_sample.prototxt \\
        --weights weights/study/full_iter_5000.caffemodel --iterations 1

"first batch" is the moment its ``Batch 0, ...`` line reaches us (stdout unbuffered),
measured from just before the process is started. **Cold**: NUMBA_CACHE_DIR is a fresh
empty folder, so every kernel the net calls is compiled. **Warm**: NUMBA_CACHE_DIR is a
folder a first (untimed) run filled. Python's own bytecode caches and the OS file cache
are warm in both. Cold and warm runs alternate, ``--repeats`` of each; medians are
reported. Then, in warm runs, one process times the phases in order: importing the
command (numpy, protobuf, the CLI), importing the layers (which imports the kernels
and Numba), building the Net (prototxt parse, weights, LMDB open), the first forward
(Numba loads each kernel from its cache on first call) and a second forward.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/startup.py [--repeats 5] [--write]

``--write`` puts the figures in bench/results/startup.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL = "prototxt/cifar10_full_sample.prototxt"
WEIGHTS = "weights/study/full_iter_5000.caffemodel"
ARGS = ["test", MODEL, "--weights", WEIGHTS, "--iterations", "1"]

PHASES = r"""
import json, sys, time
t = [time.perf_counter()]
import tinycaffe.cli.main
t.append(time.perf_counter())
import tinycaffe.layers
t.append(time.perf_counter())
from tinycaffe import Net
net = Net(sys.argv[1], weights=sys.argv[2], phase="test")
t.append(time.perf_counter())
net.forward()
t.append(time.perf_counter())
net.forward()
t.append(time.perf_counter())
net.close()
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""
PHASE_NAMES = ["import the command (numpy, protobuf, CLI)", "import the layers (kernels, Numba)",
               "build the Net (prototxt, weights, LMDB)", "first forward (kernels from the Numba cache)",
               "second forward"]


def command() -> list[str]:
    exe = Path(sys.executable).parent / "tinycaffe"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "tinycaffe.cli"]


def time_to_first_batch(cache_dir: str) -> tuple[float, float]:
    """(seconds to the first 'Batch 0' line, seconds to exit) of one ``tinycaffe test`` run."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(command() + ARGS, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and line.startswith("Batch 0"):
            first = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else ""
    rc = proc.wait()
    total = time.perf_counter() - t0
    if rc != 0 or first is None:
        raise SystemExit(f"tinycaffe test failed (exit {rc}):\n{err[-2000:]}")
    return first, total


def phases(cache_dir: str) -> list[float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", PHASES, MODEL, WEIGHTS], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="write bench/results/startup.md")
    args = ap.parse_args(argv)
    import contextlib
    import io

    from machine import print_machine_info

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_machine_info()
    info = buf.getvalue().splitlines()
    print("\n".join(info))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cold, warm, cold_total, warm_total = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="tinycaffe_numba_warm_") as warm_dir:
        time_to_first_batch(warm_dir)  # fills the warm cache (untimed)
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="tinycaffe_numba_cold_") as cold_dir:
                f, t = time_to_first_batch(cold_dir)
            cold.append(f)
            cold_total.append(t)
            f, t = time_to_first_batch(warm_dir)
            warm.append(f)
            warm_total.append(t)
            print(f"round {r}: cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s to the first batch", flush=True)
        split = np.median(np.array([phases(warm_dir) for _ in range(args.repeats)]), axis=0)
    lines = [
        "| start | to the first batch (median) | runs (s) | to exit (median) |",
        "|---|---|---|---|",
        f"| cold (empty Numba cache) | {np.median(cold):.2f} s | {', '.join(f'{v:.2f}' for v in cold)} | "
        f"{np.median(cold_total):.2f} s |",
        f"| warm (Numba cache filled) | {np.median(warm):.2f} s | {', '.join(f'{v:.2f}' for v in warm)} | "
        f"{np.median(warm_total):.2f} s |",
        "",
        f"Where a warm start goes (one process timing each phase in turn; median of {args.repeats}):",
        "",
        "| phase | seconds |",
        "|---|---|",
        *(f"| {name} | {v:.3f} |" for name, v in zip(PHASE_NAMES, split)),
        f"| total | {float(np.sum(split)):.3f} |",
    ]
    print("\n" + "\n".join(lines))
    if hasattr(os, "getloadavg"):
        load = "load average after: %.2f %.2f %.2f (other processes on the machine skew timings)" % os.getloadavg()
        print(load)
        info.append(load)
    if args.write:
        out = REPO / "bench/results/startup.md"
        cmd = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/startup.py "
               + " ".join(argv if argv is not None else sys.argv[1:])).strip()
        out.write_text(
            "# Start-up of `tinycaffe test`\n\n"
            f"`{cmd}` ({started}). Timed: `tinycaffe {' '.join(ARGS)}`, from process start to its "
            "`Batch 0` line; cold = fresh empty NUMBA_CACHE_DIR, warm = one filled by an untimed run.\n\n"
            + "\n".join(lines) + "\n\n```\n" + "\n".join(info) + "\n```\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
