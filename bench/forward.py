"""Forward speed: tinycaffe against ONNX Runtime and PyTorch CPU on the same graph, weights and input.

Nets: cifar10_full and cifar10_quick (deploy prototxts in prototxt/, our trained
weights weights/study/full_iter_5000.caffemodel and
weights/cifar10_quick_iter_5000.caffemodel) at batch 1 and 100, and BVLC GoogLeNet
(deploy.prototxt from ../shared/data/bvlc-prototxt) at batch 1 with *random*
weights from its fillers (tinycaffe seed 0): no GoogLeNet caffemodel is on disk,
and speed does not depend on the values. Each at 1 and 2 threads.

How it is fair: the parent process loads the net once in tinycaffe and writes the
weights (npz), an ONNX graph built from the Caffe net with the ``onnx`` helpers
(bench/spec_onnx.py) and the layer list torch walks (bench/spec_torch.py) to a
temporary folder, plus a fixed random input. Every measurement is a fresh
subprocess running one system only (no thread pool of one library spinning while
another computes), with OMP/OPENBLAS/MKL/NUMBA/TINYCAFFE_NUM_THREADS set to the
thread count and each library's own setting too (tinycaffe.set_num_threads or
``--threads``' set_threads, ORT intra_op_num_threads with inter_op 1, torch
set_num_threads / set_num_interop_threads(1)). A subprocess warms up, then times
``--repeats`` single forwards (input copied in, outputs out, as a caller would);
its median is that round's figure. Systems alternate inside each round, the order
rotating from round to round, over ``--rounds`` rounds; the table gives the median
of the round medians and tinycaffe / ORT. Before any timing, the outputs of ORT and
torch are compared with tinycaffe's on the same input (max |diff| of every output
blob must be < 1e-4, else the run stops). Peak memory is each subprocess's peak RSS
(VmHWM, libraries included) at batch 100.

Run it (dev-only peers: ``.venv/bin/pip install onnx onnxruntime torch==2.13.0``):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/forward.py [--rounds 3] [--write]

``--write`` puts the table in bench/results/forward.md. ``--nets``, ``--batches``,
``--threads`` and ``--systems`` narrow the run; ``--quick`` (fewer repeats) is for
development only. On a shared machine the absolute times are noisy: read the ratios,
measured in the same round.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

SHARED = REPO.parent / "shared" / "data"
NETS = {
    "cifar10_full": (REPO / "prototxt/cifar10_full.prototxt", REPO / "weights/study/full_iter_5000.caffemodel"),
    "cifar10_quick": (REPO / "prototxt/cifar10_quick.prototxt", REPO / "weights/cifar10_quick_iter_5000.caffemodel"),
    "googlenet": (SHARED / "bvlc-prototxt/models/bvlc_googlenet/deploy.prototxt", None),
}
SYSTEMS = ("tinycaffe", "ort", "torch")
from worker_process import run_worker  # noqa: E402  (bench/ is the script's own folder)
TOLERANCE = 1e-4  # max |diff|, relative to max(1, max |value|) of the blob
CIFAR_TEST = SHARED / "cifar10" / "test_batch.bin"


# -- the subprocess side: one system, one setting ---------------------------------------
def _threadpools() -> list[str]:
    import threadpoolctl

    return [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} threads={p.get('num_threads')}"
            for p in threadpoolctl.threadpool_info()]


def _runner(system: str, job: dict):
    """A no-argument callable doing one forward, returning {blob: ndarray}; a note on the
    settings; the tinycaffe Net (None for the peers)."""
    folder, threads = Path(job["folder"]), job["threads"]
    x = np.load(folder / f"input_{job['batch']}.npy")
    check = json.loads((folder / "check.json").read_text())
    if system == "tinycaffe":
        import tinycaffe

        how = "tinycaffe.set_num_threads"
        if hasattr(tinycaffe, "set_num_threads"):
            tinycaffe.set_num_threads(threads)
        else:
            from tinycaffe.cli.common import set_threads

            set_threads(threads)
            how = "tinycaffe.cli.common.set_threads (--threads)"
        net = tinycaffe.Net(job["prototxt"], phase="test")
        with np.load(folder / "weights.npz") as w:
            for name, blobs in net.params.items():
                for i, blob in enumerate(blobs):
                    blob.data[...] = w[f"{name}.{i}"]
        net.blobs["data"].reshape(x.shape)
        net.reshape()
        run = lambda: net.forward(data=x, blobs=check)  # noqa: E731
        return run, how, net
    if system == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
        # model.onnx outputs the net's outputs and the blobs in check.json
        names = [o.name for o in sess.get_outputs()]

        def run():
            return {n.split(":")[0]: v for n, v in zip(names, sess.run(names, {"data": x}))}
        return run, f"onnxruntime {ort.__version__}, intra_op_num_threads={threads}, default graph optimisations", None
    import torch
    from spec_torch import spec_to_torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    layers = json.loads((folder / "spec.json").read_text())
    with np.load(folder / "weights.npz") as w:
        model = spec_to_torch(torch, layers, {k: w[k] for k in w.files}, extra=check)
    xt = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            return {k: v.numpy() for k, v in model(data=xt).items()}
    return run, f"torch {torch.__version__}, set_num_threads({threads}), inference_mode", None


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over exec, so a child would report its (bigger) parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(job: dict) -> dict:
    run, how, net = _runner(job["system"], job)
    result = {"how": how}
    if job.get("save_outputs"):
        np.savez(job["save_outputs"], **run())
    for _ in range(job["warmup"]):
        run()
    times = []
    for _ in range(job["repeats"]):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    result.update(median_ms=float(np.median(times)) * 1e3, min_ms=float(np.min(times)) * 1e3,
                  peak_rss_mb=_peak_rss_mb(), threadpools=_threadpools())
    if net is not None and job.get("per_layer"):
        # Where a forward's time goes: each layer's median (net.forward_timed runs the same
        # plan as forward), and what is left of the forward's median for everything else.
        net.layer_times.clear()
        for _ in range(job["repeats"]):
            net.forward_timed()
        result["layers"] = {k: float(np.median(v)) * 1e3 for k, v in net.layer_times.items()}
    return result


# -- the parent side ----------------------------------------------------------------------
def prepare(net_name: str, batches: list[int], folder: Path) -> dict:
    """Write weights, ONNX graph, torch layer list and inputs for one net into ``folder``."""
    import onnx

    import tinycaffe
    from net_spec import net_spec
    from spec_onnx import spec_to_onnx

    prototxt, weights = NETS[net_name]
    net = tinycaffe.Net(str(prototxt), weights=str(weights) if weights else None, phase="test", seed=0)
    layers, w = net_spec(net)
    np.savez(folder / "weights.npz", **w)
    (folder / "spec.json").write_text(json.dumps(layers))
    onnx.save(spec_to_onnx(layers, w, extra=sorted(set(_scores(net, layers)))), str(folder / "model.onnx"))
    chw = net.blobs["data"].shape[1:]
    rng = np.random.default_rng(0)
    what = "uniform(-128, 128) noise, seed 0"
    for b in batches:
        if tuple(chw) == (3, 32, 32) and CIFAR_TEST.is_file():
            # Real images, as our CIFAR nets saw in training (mean-subtracted 0..255 pixels):
            # scores that are not saturated make the output check mean something.
            from tinycaffe.data.cifar10 import read_cifar10_bin

            images = read_cifar10_bin(CIFAR_TEST)[0][:b].astype(np.float32)
            x = images - images.mean(axis=(0, 2, 3), keepdims=True)
            what = f"the first N images of {CIFAR_TEST.name}, less their channel means"
        else:
            x = rng.uniform(-128, 128, (b, *chw)).astype(np.float32)
        np.save(folder / f"input_{b}.npy", x)
    # Besides the outputs, the input of each output Softmax (the scores) is compared.
    check = sorted(set(net.outputs) | set(_scores(net, layers)))
    (folder / "check.json").write_text(json.dumps(check))
    return {"prototxt": str(prototxt), "weights": str(weights) if weights else "random (fillers, seed 0)",
            "input": list(chw), "what": what, "check": check}


def _scores(net, layers: list[dict]) -> list[str]:
    """The input of each Softmax that makes a net output: the scores, compared beside the outputs."""
    return [ly["bottoms"][0] for ly in layers if ly["type"] == "Softmax" and ly["tops"][0] in net.outputs]


def launch(job: dict) -> dict:
    return run_worker(str(Path(__file__).resolve()), job, f"{job['system']} on {job['net']} batch {job['batch']}")


def check_outputs(folder: Path, job: dict, systems: list[str]) -> list[tuple]:
    """Run each system once on the same input; every checked blob must agree with tinycaffe's.

    Returns (net, batch, system, blob, max |value|, max |diff| / max(1, max |value|), share of
    rows whose argmax agrees) per peer and blob."""
    saved = {}
    for s in systems:
        path = folder / f"out_{s}_{job['batch']}.npz"
        launch({**job, "system": s, "save_outputs": str(path), "warmup": 0, "repeats": 1})
        with np.load(path) as f:
            saved[s] = {k: f[k] for k in f.files}
    rows = []
    ref = saved["tinycaffe"]
    for s in systems:
        if s == "tinycaffe":
            continue
        for blob, value in ref.items():
            other = saved[s].get(blob)
            if other is None or other.shape != value.shape:
                raise SystemExit(f"{s} gives no '{blob}' of shape {value.shape}: {list(saved[s])}")
            diff = float(np.max(np.abs(other - value))) / max(1.0, float(np.max(np.abs(value))))
            agree = float(np.mean(other.reshape(len(other), -1).argmax(1) == value.reshape(len(value), -1).argmax(1)))
            rows.append((job["net"], job["batch"], s, blob, float(np.max(np.abs(value))), diff, agree))
            print(f"{job['net']} batch {job['batch']}: {s} vs tinycaffe '{blob}': max |diff| / "
                  f"max(1, max |value| = {rows[-1][4]:.3g}) = {diff:.2e}, argmax agrees {agree:.0%}", flush=True)
            if not diff < TOLERANCE:
                raise SystemExit(f"outputs disagree (tolerance {TOLERANCE}), not timing")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 100])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a tenth of the repeats (development only)")
    ap.add_argument("--write", action="store_true", help="write the table to bench/results/forward.md")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if "tinycaffe" not in args.systems:
        raise SystemExit("tinycaffe is the reference the others are checked against: keep it in --systems")
    from machine import print_machine_info

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report: list[str] = []
    tables: list[str] = []

    def say(line: str = "", table: bool = False) -> None:
        print(line, flush=True)
        (tables if table else report).append(line)

    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_machine_info()
    for line in buf.getvalue().splitlines():
        say(line)
    configs = [(n, b, t) for n in args.nets for b in args.batches for t in args.threads
               if not (n == "googlenet" and b != 1)]  # GoogLeNet at batch 1 only
    systems = list(args.systems)
    rows, checks, hows, pools, rss, layer_rows = [], [], {}, {}, {}, []
    with tempfile.TemporaryDirectory(prefix="tinycaffe_bench_") as tmp:
        prepared = {}
        for name in dict.fromkeys(n for n, _, _ in configs):
            folder = Path(tmp) / name
            folder.mkdir()
            prepared[name] = (folder, prepare(name, sorted({b for n, b, _ in configs if n == name}), folder))
            info = prepared[name][1]
            say(f"{name}: {info['prototxt']} weights {info['weights']}, input (N, "
                f"{', '.join(map(str, info['input']))}): {info['what']}; checked blobs {', '.join(info['check'])}")
        for name, batch, threads in configs:
            folder = prepared[name][0]
            big = batch >= 100 or name == "googlenet"
            repeats = 30 if big else 300
            if args.quick:
                repeats = max(3, repeats // 10)
            job = {"net": name, "prototxt": prepared[name][1]["prototxt"], "folder": str(folder),
                   "batch": batch, "threads": threads, "warmup": 3 if big else 20, "repeats": repeats}
            if threads == args.threads[0]:
                checks += check_outputs(folder, job, systems)
            per_round = {s: [] for s in systems}
            for r in range(args.rounds):
                order = systems[r % len(systems):] + systems[: r % len(systems)]
                for s in order:
                    per_layer = s == "tinycaffe" and r == args.rounds - 1 and threads == args.threads[0]
                    res = launch({**job, "system": s, "per_layer": per_layer})
                    if per_layer:
                        layer_rows.append((name, batch, threads, res["median_ms"], res["layers"]))
                    per_round[s].append(res["median_ms"])
                    hows[s] = res["how"]
                    pools[s, threads] = res["threadpools"]
                    if batch >= 100:
                        rss.setdefault((name, batch, threads, s), []).append(res["peak_rss_mb"])
            med = {s: float(np.median(v)) for s, v in per_round.items()}
            rows.append((name, batch, threads, med, repeats, per_round))
            print(f"{name} batch {batch} threads {threads}: "
                  + ", ".join(f"{s} {m:.3f} ms (rounds {', '.join(f'{v:.3f}' for v in per_round[s])})"
                              for s, m in med.items()), flush=True)
    say()
    say("systems: " + "; ".join(f"{s}: {h}" for s, h in hows.items()))
    for (s, t), p in sorted(pools.items()):
        say(f"thread pools in the {s} subprocess at {t} thread(s): " + "; ".join(p))
    say(f"{args.rounds} rounds; in each, one subprocess per system (order rotating), warm-up then "
        "N timed forwards (N below); figure = median over rounds of the per-round median")
    say()
    peers = [s for s in ("ort", "torch") if s in systems]
    head = "| net | batch | threads | N | tinycaffe ms |" + "".join(
        f" {'ONNX Runtime' if s == 'ort' else 'PyTorch'} ms |" for s in peers)
    head += " tinycaffe / ORT |" if "ort" in systems else ""
    head += " tinycaffe / PyTorch |" if "torch" in systems else ""
    say(head, True)
    say("|" + "---|" * (head.count("|") - 1), True)
    for name, batch, threads, med, repeats, _ in rows:
        line = f"| {name} | {batch} | {threads} | {repeats} | {med['tinycaffe']:.3f} |"
        line += "".join(f" {med[s]:.3f} |" for s in peers)
        line += "".join(f" {med['tinycaffe'] / med[s]:.2f} |" for s in peers)
        say(line, True)
    if rss:
        say("", True)
        say("Peak RSS at batch 100 (MB, the whole subprocess with its libraries; median over rounds):", True)
        say("", True)
        say("| net | threads |" + "".join(f" {s} |" for s in systems), True)
        say("|---|---|" + "---|" * len(systems), True)
        for (name, batch, threads) in dict.fromkeys((n, b, t) for n, b, t, _ in rss):
            say(f"| {name} | {threads} |" + "".join(
                f" {np.median(rss[name, batch, threads, s]):.0f} |" for s in systems), True)
    if checks:
        say("", True)
        say(f"Outputs checked before timing (each peer against tinycaffe, same input; "
            f"must be < {TOLERANCE}):", True)
        say("", True)
        say("| net | batch | blob | max abs value | peer | max abs diff / max(1, max abs value) | argmax agrees |",
            True)
        say("|---|---|---|---|---|---|---|", True)
        for net_name, batch, peer, blob, top, diff, agree in checks:
            say(f"| {net_name} | {batch} | {blob} | {top:.3g} | {peer} | {diff:.1e} | {agree:.0%} |", True)
    if layer_rows:
        say("", True)
        say("Where tinycaffe's forward goes (last round's subprocess; median ms per layer over N "
            "net.forward_timed calls, the same plan as forward; layers under 2% of the sum are "
            "lumped together; a ReLU fused into the layer before it counts 0; 'rest' = the "
            "forward's median minus the layers' sum: input copy, plan check, Python, noise):", True)
        for name, batch, threads, total, layers in layer_rows:
            big = {k: v for k, v in layers.items() if v >= 0.02 * sum(layers.values())}
            small = [v for k, v in layers.items() if k not in big]
            fused = sum(1 for v in layers.values() if v == 0.0)
            say("", True)
            say(f"- {name}, batch {batch}, {threads} thread(s): forward {total:.3f} ms = "
                + " + ".join(f"{k} {v:.3f}" for k, v in big.items())
                + f" + {len(small)} other layers {sum(small):.3f} (of them {fused} fused ReLUs)"
                + f" + rest {total - sum(layers.values()):.3f}", True)
    if hasattr(os, "getloadavg"):
        say("\nload average after: %.2f %.2f %.2f  (other processes on the machine skew timings)" % os.getloadavg())
    if args.write:
        out = REPO / "bench/results/forward.md"
        cmd = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/forward.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]))
        out.write_text(f"# Forward speed against ONNX Runtime and PyTorch\n\n`{cmd.strip()}` ({started})\n\n"
                       + "\n".join(tables) + "\n\n```\n" + "\n".join(report) + "\n```\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
