"""Benchmark: peak memory and time to load a deploy net with its caffemodel.

Compared, each in its own fresh process, rounds alternating between them:

* ``tinycaffe``       ``tinycaffe.Net(deploy, weights, caffe.TEST)``: layers the
                      caffemodel covers skip their fillers, blobs keep the read arrays;
* ``tinycaffe-before`` what ``Net(deploy, weights)`` did before it learned to skip
                      fillers: ``Net(deploy)`` (every weight filled), then the whole
                      file read into arrays (``load_weights``) and copied in;
* ``opencv``          ``cv2.dnn.readNetFromCaffe(deploy, weights)`` (OpenCV 4.x; 5
                      dropped the importer), if ``cv2`` imports.

Nets: BVLC AlexNet (``models/bvlc_alexnet/deploy.prototxt`` of the shared BVLC
corpus) and VGG-16 (the published topology, written by ``tests/zoo/zoo_nets.py``),
with random-weight caffemodels written once into a scratch folder (default
/tmp/tinycaffe_load_bench), never into the repository.

Peak memory is the process's peak resident set (VmHWM) over the load alone:
each child imports its library, resets the peak (``/proc/self/clear_refs``),
then loads. Reported: the peak minus the resident set before the load
(what loading costs), the absolute peak, and the wall and CPU time of the load
(CPU time, user + system of the process, suffers less when other jobs share the cores).
For tinycaffe the Python-heap peak seen by tracemalloc is printed too.

    python bench/load_memory.py [--rounds 3] [--nets alexnet vgg16] [--dir /tmp/...]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data" / "bvlc-prototxt"
SYSTEMS = ("tinycaffe", "tinycaffe-before", "opencv")


def _status(field: str) -> int:
    """A memory figure (bytes) from /proc/self/status, e.g. VmRSS or VmHWM."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    # Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def child(system: str, deploy: str, weights: str) -> dict:
    """Run in a fresh process: import, reset the peak, load once, report."""
    import tracemalloc

    if system.startswith("tinycaffe"):
        import tinycaffe as caffe
    else:
        import cv2
    _reset_peak()
    before = _status("VmRSS")
    traced = system.startswith("tinycaffe")
    if traced:
        tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    if system == "tinycaffe":
        net = caffe.Net(deploy, weights, caffe.TEST)
    elif system == "tinycaffe-before":
        from tinycaffe.net.weights import copy_weights
        from tinycaffe.proto.caffemodel import load_weights

        net = caffe.Net(deploy, caffe.TEST)
        copy_weights(net, load_weights(weights))
    else:
        net = cv2.dnn.readNetFromCaffe(deploy, weights)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    heap_peak = tracemalloc.get_traced_memory()[1] if traced else None
    peak = _status("VmHWM")
    result = {"system": system, "seconds": seconds, "cpu_seconds": cpu_seconds, "rss_before": before, "peak": peak,
              "load_peak": peak - before, "heap_peak": heap_peak}
    if system.startswith("tinycaffe"):
        result["params"] = sum(b.count for blobs in net.params.values() for b in blobs)
    else:
        import cv2 as _cv2

        result["opencv"] = _cv2.__version__
    return result


def make_models(folder: Path, nets: list[str]) -> dict[str, tuple[Path, Path]]:
    """Write each net's deploy prototxt and a random-weight caffemodel into ``folder`` (once)."""
    import numpy as np

    from tinycaffe.net.build import load_net_param
    from tinycaffe.net.filter import filter_layers
    from tinycaffe.proto.caffemodel import write_caffemodel

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in nets:
        deploy = folder / f"{name}_deploy.prototxt"
        weights = folder / f"{name}_random.caffemodel"
        if name == "alexnet":
            source = SHARED / "models" / "bvlc_alexnet" / "deploy.prototxt"
            if not source.exists():
                raise SystemExit(f"{source} not found: the shared BVLC prototxt corpus is needed")
            text = source.read_text()
        else:
            from tests.zoo.zoo_nets import vgg16

            text = vgg16(batch=10)
        if not deploy.exists():
            deploy.write_text(text)
        if not weights.exists():
            import tinycaffe

            # Shapes from a net built without weights; values random (their values do not matter).
            net = tinycaffe.Net(str(deploy), phase="test")
            rng = np.random.default_rng(0)
            arrays = {layer: [rng.standard_normal(b.shape, dtype=np.float32) * 0.01 for b in blobs]
                      for layer, blobs in net.params.items()}
            param = filter_layers(load_net_param(str(deploy)), 1, 0, ())
            write_caffemodel(weights, param, arrays)
        out[name] = (deploy, weights)
    return out


def _run_child(system: str, deploy: Path, weights: Path) -> dict | None:
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, __file__, "--child", system, str(deploy), str(weights)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        print(f"  {system}: failed: {tail[0]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info

        import numpy  # noqa: F401  (loads the BLAS threadpoolctl reports)

        info = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(info) or "none found"
    except ImportError:
        return "threadpoolctl not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nets", nargs="+", default=["alexnet", "vgg16"], choices=["alexnet", "vgg16"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tinycaffe_load_bench"))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--child", nargs=3, metavar=("SYSTEM", "DEPLOY", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    models = make_models(args.dir, args.nets)
    print("load a deploy net + caffemodel: peak resident memory of the load, and its wall time")
    print(f"systems: {', '.join(args.systems)}; each run in a fresh process; {args.rounds} rounds, "
          "alternating; medians reported")
    print(f"python {sys.version.split()[0]}, BLAS: {_blas()}; OPENBLAS_CORETYPE/L2_SIZE unset in the children")
    for name, (deploy, weights) in models.items():
        size = weights.stat().st_size
        print(f"\n{name}: {deploy} + {weights.name} ({size / 1e6:.1f} MB)")
        runs: dict[str, list[dict]] = {s: [] for s in args.systems}
        for _ in range(args.rounds):
            for system in args.systems:
                r = _run_child(system, deploy, weights)
                if r is not None:
                    runs[system].append(r)
        counts = {r["params"] for rs in runs.values() for r in rs if "params" in r}
        if counts:
            print(f"  parameters: {', '.join(f'{c:,}' for c in sorted(counts))}")
        print(f"  {'system':17} {'load peak MB':>12} {'abs peak MB':>12} {'load s':>8} {'cpu s':>7} "
              f"{'heap peak MB':>13}  wall runs (s)")
        for system, rs in runs.items():
            if not rs:
                print(f"  {system:17} (did not run)")
                continue
            med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
            heap = f"{med('heap_peak') / 1e6:13.1f}" if rs[0]["heap_peak"] is not None else f"{'-':>13}"
            extra = f"  OpenCV {rs[0]['opencv']}" if "opencv" in rs[0] else ""
            print(f"  {system:17} {med('load_peak') / 1e6:12.1f} {med('peak') / 1e6:12.1f} "
                  f"{med('seconds'):8.3f} {med('cpu_seconds'):7.3f} {heap}  {[round(r['seconds'], 3) for r in rs]}{extra}")


if __name__ == "__main__":
    main()
