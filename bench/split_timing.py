"""The study's timing experiment: Client vs Distribution vs Cloud over an emulated 10 Mbps link.

For each filter count n, the CIFAR-10 "full" net with conv1 = n (split 1
curves) or conv2 = n (split 2 curves) runs in three modes, as real separate
processes talking over loopback TCP:

* Client:       the whole net in one client process, no network;
* Distribution: client = Data .. pool1 (split 1) or Data .. pool2 (split 2),
                ending in a Sink paced at 10 Mbps; cloud = ``tinycaffe serve``
                of the rest, starting at a Source;
* Cloud:        client = the Data layer only (it sends the raw, mean-subtracted
                data blob and the labels); cloud = ``tinycaffe serve`` of the whole net.

Weights are the nets' fillers (seed 0), saved once per variant to a caffemodel
that both sides load. Data: the real CIFAR-10 test set (converted once into
bench/results/tmp/), batches of 100. On the client, each batch's wall time
(compute + sending + waiting for the ACK) is recorded; the reported figure is
the median over ``--iterations`` batches after ``--warmup`` batches. Bytes per
batch are measured on the socket (DATA frames) and computed from the blob
shapes for float32, float16 and uint8 wire dtypes.

Here the client and the cloud share one 2-core machine (each process gets
``--threads`` BLAS/kernel threads, 1 by default, i.e. one core each); the study
had separate machines.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/split_timing.py
    ... bench/split_timing.py --counts 4,16,32 --iterations 5 --wire float32   # quick run

By default both the float32 wire and the uint8 wire (one byte per element,
as the study counts sizes) are timed. Writes bench/results/split_timing.md,
split_timing.json, split_timing_split{1,2}.png (float32) and
split_timing_split{1,2}_uint8.png.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TMP = RESULTS / "tmp" / "split_timing"  # bench/results/tmp/ is git-ignored
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
SAMPLE = ROOT / "tinycaffe" / "sample"

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import make_prototxt as mkp  # noqa: E402

RATE = "10Mbps"
DATA_LAYER = "cifar"  # name of the Data layer in make_prototxt.data_layers
SPLITS = {  # curve -> (narrowed layer, cut after)
    "split1": ("conv1", "pool1"),
    "split2": ("conv2", "pool2"),
}
WIRES = ("float32", "float16", "uint8")
WIRE_ENUM = {"float32": 0, "float16": 1, "uint8": 2}  # SinkParameter.WireDType
MODES = ("Client", "Distribution", "Cloud")
# The study's findings for the fast (Xeon CPU) client, from /work/shared/paper.md.
PAPER = {
    "split1": "Distribution beats Cloud when conv1 <= 8 (sent < raw); Client alone fastest",
    "split2": "Distribution beats Cloud when conv2 <= 28; Client alone fastest",
}
PAPER_MAX_N = {"split1": 8, "split2": 28}


# ---------------------------------------------------------------- environment


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average: {load()}"


def blas_info() -> list[dict]:
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl sees it)
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def machine_lines() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")}
    return [
        f"machine: {platform.node()} {platform.system()} {platform.release()}, {cpu}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}",
        "BLAS (threadpoolctl, bench process): "
        + "; ".join(f"{d['internal_api']} {d['version']} {d['architecture']} threads={d['num_threads']}"
                    for d in blas_info()),
        "env: " + ", ".join(f"{k}={v}" for k, v in env.items()),
    ]


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def tinycaffe_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("tinycaffe")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from tinycaffe.cli.main import main; sys.exit(main())"]


# ---------------------------------------------------------------- data, nets, weights


def prepare_data(tmp: Path) -> tuple[str, str, str]:
    """(test LMDB, mean file, note): the real CIFAR-10 test set, else the bundled 1,000-image sample."""
    dst = tmp.parent / "cifar10"  # shared with other benches under bench/results/tmp/
    test, mean = dst / "cifar10_test_lmdb", dst / "mean.binaryproto"
    if test.is_dir() and mean.is_file():
        return str(test), str(mean), f"real CIFAR-10 test set (10,000 images, converted from {SHARED_CIFAR})"
    if SHARED_CIFAR.is_dir():
        from tinycaffe.data.cifar10 import convert_cifar10

        if dst.exists():
            import shutil

            shutil.rmtree(dst)  # a half-written conversion
        dst.parent.mkdir(parents=True, exist_ok=True)
        convert_cifar10(SHARED_CIFAR, dst)
        return str(test), str(mean), f"real CIFAR-10 test set (10,000 images, converted from {SHARED_CIFAR})"
    return (str(SAMPLE / "cifar10_test_lmdb"), str(SAMPLE / "mean.binaryproto"),
            f"FALLBACK: {SHARED_CIFAR} is missing; the bundled 1,000-image sample (10 batches, repeating)")


class Variant:
    """One net of the study: conv1 = c1, conv2 = c2 filters; its prototxt, weights and blob shapes."""

    def __init__(self, c1: int, c2: int, head: str, tmp: Path):
        self.c1, self.c2 = c1, c2
        if c1 == 32 and c2 == 32:
            self.stem, kw = "cifar10_full", {}
        elif c2 == 32:
            self.stem, kw = mkp.variant_name("conv1", c1), mkp.variant_filters("conv1", c1)
        else:
            self.stem, kw = mkp.variant_name("conv2", c2), mkp.variant_filters("conv2", c2)
        nets, weights = tmp / "nets", tmp / "weights"
        nets.mkdir(parents=True, exist_ok=True)
        weights.mkdir(parents=True, exist_ok=True)
        self.prototxt = nets / f"{self.stem}.prototxt"
        self.prototxt.write_text("# Written by bench/split_timing.py (make_prototxt.full_net)\n"
                                 + mkp.full_net(self.stem, head, False, **kw))
        self.weights = weights / f"{self.stem}.caffemodel"
        from tinycaffe import Net

        net = Net(str(self.prototxt), phase="test", seed=0)  # filler weights
        self.shapes = {name: tuple(b.shape) for name, b in net.blobs.items()}
        net.save(self.weights)  # once per variant; both halves load it
        net.close()


def crossing(variant: Variant, after: str) -> dict[str, tuple]:
    from tinycaffe.net.build import load_net_param
    from tinycaffe.net.cut import cut_net

    client, _ = cut_net(load_net_param(str(variant.prototxt)), after, variant.shapes)
    return {b: variant.shapes[b] for b in client.layer[-1].bottom}


def frame_bytes(blobs: dict[str, tuple], wire: str) -> int:
    """Exact size of one DATA frame (header + blob table + data) carrying these blobs."""
    import numpy as np

    from tinycaffe.wire import HEADER_SIZE
    from tinycaffe.wire.blobs import encode_blobs
    from tinycaffe.wire.dtypes import parse_wire

    arrays = {n: np.linspace(0, 1, math.prod(s), dtype=np.float32).reshape(s) for n, s in blobs.items()}
    return HEADER_SIZE + sum(len(b) for b in encode_blobs(arrays, parse_wire(wire)))


def write_halves(variant: Variant, after: str, workdir: Path, *, window: int, wire: str, rate: str):
    """The cloud prototxt path (Source on port 0) and the client NetParameter (port set later)."""
    from tinycaffe.net.build import load_net_param
    from tinycaffe.net.cut import cut_net
    from tinycaffe.proto.prototxt import write_prototxt

    client, cloud = cut_net(load_net_param(str(variant.prototxt)), after, variant.shapes,
                            host="127.0.0.1", port=0, bind="127.0.0.1")
    sink = client.layer[-1].sink_param
    sink.window = window
    sink.wire_dtype = WIRE_ENUM[wire]
    if rate:
        sink.bandwidth = rate
    workdir.mkdir(parents=True, exist_ok=True)
    cloud_path = workdir / "cloud.prototxt"
    write_prototxt(cloud, str(cloud_path))
    return client, cloud_path


# ---------------------------------------------------------------- the client process


def client_role(argv: list[str]) -> int:
    """``split_timing.py _client MODEL WEIGHTS --batches N``: run the client net, print one JSON line of timings.

    Per batch: the forward's wall time and the time spent in the Sink layer;
    per DATA frame (sent by the Sink, or by its background sender thread when
    window > 1): bytes, seconds in the paced send, and when it ended.
    """
    ap = argparse.ArgumentParser(prog="split_timing.py _client")
    ap.add_argument("model")
    ap.add_argument("weights")
    ap.add_argument("--batches", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import numpy as np
    from threadpoolctl import threadpool_limits

    from tinycaffe import Net
    from tinycaffe.kernels import set_num_threads

    set_num_threads(a.threads)
    threadpool_limits(a.threads)
    t_build = time.perf_counter()
    net = Net(a.model, weights=a.weights, phase="test")
    build_s = time.perf_counter() - t_build
    sinks = [l for l in net.layers if l.type == "Sink"]
    rec: dict[str, list] = {"total": [], "sink": [], "send": [], "bytes": []}
    sends: list[tuple[int, float, float]] = []  # (bytes, seconds, end time) of each DATA frame, in order
    cur = {"sink": 0.0}
    if sinks:
        sink = sinks[0]
        sink.open()  # the Sink connects on first use; connect now so the first batch's time is the batch's
        transport = sink.session.transport
        real_forward, real_send = sink.forward, transport.send

        def timed_send(buffers, timeout=None):
            before = transport.bytes_sent
            t0 = time.perf_counter()
            try:
                real_send(buffers, timeout)
            finally:
                t1 = time.perf_counter()
                sends.append((transport.bytes_sent - before, t1 - t0, t1))

        transport.send = timed_send  # after setup: only DATA frames (and the final BYE) go through it

        def timed_forward(bottoms, tops):
            t0 = time.perf_counter()
            try:
                real_forward(bottoms, tops)
            finally:
                cur["sink"] += time.perf_counter() - t0

        sink.forward = timed_forward
    sums: dict[str, float] = {}
    ok = False
    try:
        for _ in range(a.batches):
            cur["sink"] = 0.0
            t0 = time.perf_counter()
            out = net.forward()
            rec["total"].append(time.perf_counter() - t0)
            rec["sink"].append(cur["sink"])
            for name, v in out.items():
                sums[name] = sums.get(name, 0.0) + float(np.asarray(v).reshape(-1)[0])
        ok = True
    finally:
        t0 = time.perf_counter()
        net.close(abort=not ok)  # a background sender finishes first; the Sink's BYE waits for the last ACK
        close_s = time.perf_counter() - t0
    data_frames = sends[: a.batches]  # the DATA frames, in order; the BYE came last
    rec["bytes"] = [f[0] for f in data_frames] + [0] * (a.batches - len(data_frames))
    rec["send"] = [f[1] for f in data_frames] + [0.0] * (a.batches - len(data_frames))
    rec["send_end"] = [f[2] for f in data_frames]  # perf_counter times: their differences are the link's period
    print(json.dumps({
        "per_batch": rec, "build_s": build_s, "close_s": close_s,
        "means": {k: v / a.batches for k, v in sums.items()},
        "blas_threads": [d["num_threads"] for d in blas_info()],
    }), flush=True)
    return 0


def cloud_role(argv: list[str]) -> int:
    """``split_timing.py _cloud MODEL WEIGHTS``: serve a cloud net like ``tinycaffe serve``, but time it.

    Prints ``listening on PORT``, then after the client's BYE one JSON line:
    per batch, the forward's wall time and the part spent in the Source
    (waiting for and receiving the batch); the rest is the cloud's compute.
    """
    ap = argparse.ArgumentParser(prog="split_timing.py _cloud")
    ap.add_argument("model")
    ap.add_argument("weights")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from tinycaffe import Net
    from tinycaffe.errors import EndOfStream
    from tinycaffe.kernels import set_num_threads

    set_num_threads(a.threads)
    threadpool_limits(a.threads)
    net = Net(a.model, weights=a.weights, phase="test")
    source = [l for l in net.layers if l.type == "Source"][0]
    print(f"listening on {source.port}", flush=True)
    rec: dict[str, list] = {"total": [], "source": []}
    cur = {"source": 0.0}
    real_forward = source.forward

    def timed_forward(bottoms, tops):
        t0 = time.perf_counter()
        try:
            real_forward(bottoms, tops)
        finally:
            cur["source"] += time.perf_counter() - t0

    source.forward = timed_forward
    ok = False
    try:
        while True:
            cur["source"] = 0.0
            t0 = time.perf_counter()
            try:
                net.forward()
            except EndOfStream:
                break
            rec["total"].append(time.perf_counter() - t0)
            rec["source"].append(cur["source"])
        ok = True
    finally:
        net.close(abort=not ok)
    print(json.dumps({"per_batch": rec}), flush=True)
    return 0


def cloud_role_cmd(cloud_path: Path, weights: Path, threads: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "_cloud", str(cloud_path), str(weights),
            "--threads", str(threads)]


# ---------------------------------------------------------------- running one configuration


class Lines:
    """Reads a child's stdout lines in a thread, so we can wait for one with a timeout."""

    def __init__(self, stream):
        self.q: queue.Queue = queue.Queue()
        self.all: list[str] = []
        self.t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.t.start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.all.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def rest(self, timeout: float) -> str:
        self.t.join(timeout)
        while True:
            try:
                line = self.q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.all.append(line)
        return "".join(self.all)


def stop(proc: subprocess.Popen) -> None:
    """Kill a child we started (by its handle) if it is still running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


#: The cgroup CPU quota the client processes run in (``--cpu-quota``), or None: full speed.
CLIENT_QUOTA = None


def run_client(model: Path, weights: Path, batches: int, threads: int, timeout: float,
               extra: tuple[str, ...] = ()) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_client", str(model), str(weights),
           "--batches", str(batches), "--threads", str(threads), *extra]
    if CLIENT_QUOTA is not None:  # --cpu-quota: an emulated slow client (bench/cpu_quota.py)
        proc = CLIENT_QUOTA.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"client timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"client failed ({proc.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_split_pair(variant: Variant, after: str, workdir: Path, *, batches: int, threads: int,
                   window: int, wire: str, rate: str, timeout: float, cloud_cmd=None,
                   client_extra: tuple[str, ...] = ()) -> dict:
    """One split run: ``tinycaffe serve`` (or ``cloud_cmd``) in one process, the client in another."""
    from tinycaffe.proto.prototxt import write_prototxt

    client, cloud_path = write_halves(variant, after, workdir, window=window, wire=wire, rate=rate)
    if cloud_cmd is None:
        cmd = tinycaffe_cmd() + ["serve", str(cloud_path), "--weights", str(variant.weights),
                                 "--quiet", "--threads", str(threads)]
        ready = r"serving .* on [^ ]*:(\d+)"
    else:
        cmd = cloud_cmd(cloud_path, variant.weights, threads)
        ready = r"listening on (\d+)"
    cloud = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env())
    lines = Lines(cloud.stdout)
    try:
        m = lines.wait_for(ready, 60)
        if m is None:
            stop(cloud)
            raise RuntimeError(f"cloud did not start: {lines.rest(5)[-2000:]}")
        client.layer[-1].sink_param.port = int(m.group(1))
        client_path = workdir / "client.prototxt"
        write_prototxt(client, str(client_path))
        res = run_client(client_path, variant.weights, batches, threads, timeout, client_extra)
        try:
            cloud.wait(60)
        except subprocess.TimeoutExpired:
            stop(cloud)
            raise RuntimeError(f"cloud did not end after the client's BYE: {lines.rest(5)[-2000:]}") from None
        text = lines.rest(5)
        if cloud.returncode != 0:
            raise RuntimeError(f"cloud failed ({cloud.returncode}): {text[-2000:]}")
    finally:
        stop(cloud)
    res["cloud_output"] = text
    if cloud_cmd is not None:
        last = [l for l in text.splitlines() if l.startswith("{")]
        res["cloud"] = json.loads(last[-1])["per_batch"] if last else None
    res["cloud_means"] = {m.group(1): float(m.group(2))
                          for m in re.finditer(r"^(\w+) = ([-+0-9.eE]+)", text, re.M)}
    res["crossing"] = list(client.layer[-1].bottom)
    return res


def summarize(res: dict, warmup: int) -> dict:
    pb = res["per_batch"]
    steady = slice(warmup, None)
    tot = pb["total"][steady]
    out = {
        "ms": 1e3 * statistics.median(tot),
        "ms_min": 1e3 * min(tot), "ms_max": 1e3 * max(tot),
        "batches": len(tot),
    }
    if any(pb["bytes"]):
        b, s = pb["bytes"][steady], pb["send"][steady]
        out["bytes"] = int(statistics.median(b))
        out["send_ms"] = 1e3 * statistics.median(s)
        out["rate_Mbps"] = statistics.median(8 * x / y / 1e6 for x, y in zip(b, s) if y > 0)
        out["client_compute_ms"] = 1e3 * statistics.median(t - k for t, k in zip(tot, pb["sink"][steady]))
        out["wait_ms"] = 1e3 * statistics.median(k - s for k, s in zip(pb["sink"][steady], pb["send"][steady]))
    else:
        out["client_compute_ms"] = out["ms"]
    return out


# ---------------------------------------------------------------- the bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default=",".join(map(str, mkp.FILTER_COUNTS)),
                    help="filter counts n (default 4,8,...,32)")
    ap.add_argument("--splits", default="split1,split2")
    ap.add_argument("--iterations", type=int, default=10, help="measured batches per run (K)")
    ap.add_argument("--warmup", type=int, default=2, help="batches run first and not measured")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/kernel threads per process")
    ap.add_argument("--rate", default=RATE, help="emulated link (Sink bandwidth)")
    ap.add_argument("--wire", default="float32,uint8",
                    help="wire dtypes to time (default float32,uint8; uint8 = the study's 1 byte/element)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--cpu-quota", type=float,
                    help="hold every client process to this fraction of one core with a cgroup CPU quota "
                         "(an EMULATED slower client; bench/cpu_quota.py); the cloud stays at full speed")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite split_timing.md and the plots from OUT/split_timing.json, running nothing")
    args = ap.parse_args(argv)
    counts = sorted({int(x) for x in args.counts.split(",")})
    splits = [s for s in args.splits.split(",") if s]
    wires = [w for w in args.wire.split(",") if w]
    for w in wires:
        if w not in WIRES:
            ap.error(f"unknown wire dtype {w}")
    if args.report_only:
        saved = json.loads((args.out / "split_timing.json").read_text())
        old = saved.get("args", {})
        args.rate = old.get("rate", args.rate)
        rows = saved["rows"]
        splits = [s for s in SPLITS if any(r["split"] == s for r in rows)]
        wires = [w for w in WIRES if any(r["wire"] == w for r in rows)]
        counts = sorted({r["n"] for r in rows})
        args.command = saved.get("command") or "(see split_timing.json)"
        report(args, rows, saved["header"], saved["footer"], counts, splits, wires)
        return 0
    args.command = " ".join(["bench/split_timing.py", *(argv if argv is not None else sys.argv[1:])])
    batches = args.warmup + args.iterations
    global CLIENT_QUOTA
    if args.cpu_quota is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from cpu_quota import CpuQuota, available

        ok, why = available()
        if not ok:
            ap.error(f"--cpu-quota: {why}")
        CLIENT_QUOTA = CpuQuota(args.cpu_quota)
    t_start = time.perf_counter()

    header = [
        f"bench/split_timing.py, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        *machine_lines(),
        f"uptime at start: {uptime()}",
        f"NOTE: client and cloud are separate processes on the SAME {os.cpu_count()}-CPU machine "
        f"({args.threads} thread(s) each), over loopback TCP with the Sink pacing at {args.rate}; "
        "the study used separate machines (cloud: Xeon + GTX 980).",
        f"repeats: {args.warmup} warm-up + {args.iterations} measured batches of 100 per run; "
        "figures are medians of the measured batches (client wall time per batch).",
    ]
    if CLIENT_QUOTA is not None:
        header.append(f"EMULATED client: every client process held to {CLIENT_QUOTA.describe()}; "
                      "the cloud runs at full speed")
    for line in header:
        print(line, flush=True)
    TMP.mkdir(parents=True, exist_ok=True)
    test_lmdb, mean, data_note = prepare_data(TMP)
    print("data: " + data_note, flush=True)
    head = mkp.data_layers(test_lmdb, test_lmdb, mean)

    variants: dict[tuple[int, int], Variant] = {}

    def variant(split: str, n: int) -> Variant:
        key = (n, 32) if SPLITS[split][0] == "conv1" else (32, n)
        if key not in variants:
            variants[key] = Variant(*key, head, TMP)
        return variants[key]

    client_runs: dict[tuple[int, int], dict] = {}
    split_runs: dict[tuple, dict] = {}
    rows = []  # one per (split, n, mode, wire)
    per_run_timeout = batches * 12 + 60
    for split in splits:
        layer, after = SPLITS[split]
        for n in counts:
            v = variant(split, n)
            key = (v.c1, v.c2)
            if key not in client_runs:
                ld = load()
                res = run_client(v.prototxt, v.weights, batches, args.threads, per_run_timeout)
                client_runs[key] = dict(summarize(res, args.warmup), load=ld, means=res["means"])
                s = client_runs[key]
                print(f"[{split} n={n:2d}] Client        {s['ms']:8.1f} ms/batch  (load {ld})", flush=True)
            rows.append(dict(split=split, n=n, mode="Client", wire="-", **client_runs[key]))
            for mode, cut in (("Distribution", after), ("Cloud", DATA_LAYER)):
                for wire in wires:
                    rk = (key, cut, wire)
                    if rk in split_runs:  # the Cloud run of the unmodified net serves both curves
                        rows.append(dict(split_runs[rk], split=split, n=n))
                        continue
                    ld = load()
                    work = TMP / "runs" / f"{split}_{n}_{mode}_{wire}"
                    res = run_split_pair(v, cut, work, batches=batches, threads=args.threads, window=1,
                                         wire=wire, rate=args.rate, timeout=per_run_timeout)
                    s = summarize(res, args.warmup)
                    blobs = {b: v.shapes[b] for b in res["crossing"]}
                    computed = {w: frame_bytes(blobs, w) for w in WIRES}
                    ref = client_runs[key]["means"]
                    cm = res["cloud_means"]
                    diff = max((abs(cm[k] - ref[k]) for k in ref if k in cm), default=float("nan"))
                    rows.append(dict(split=split, n=n, mode=mode, wire=wire, load=ld, crossing=res["crossing"],
                                     computed_bytes=computed, cloud_vs_client_maxdiff=diff, **s))
                    split_runs[rk] = rows[-1]
                    print(f"[{split} n={n:2d}] {mode:13s} {s['ms']:8.1f} ms/batch  {wire:7s} "
                          f"{s['bytes']:9d} B/batch (computed {computed[wire]}), send {s['send_ms']:.0f} ms, "
                          f"link {s['rate_Mbps']:.2f} Mbps, client compute {s['client_compute_ms']:.0f} ms, "
                          f"ACK wait {s['wait_ms']:.0f} ms, cloud outputs vs Client mode max|diff| {diff:.2g} "
                          f"(load {ld})", flush=True)
    elapsed = time.perf_counter() - t_start
    footer = f"uptime at end: {uptime()}; bench wall time {elapsed:.0f} s"
    print(footer, flush=True)
    report(args, rows, header + ["data: " + data_note], footer, counts, splits, wires)
    if CLIENT_QUOTA is not None:
        CLIENT_QUOTA.close()
    return 0


#: Two modes closer than this (relative to the faster) are called a tie: on this shared
#: machine repeated runs move by about that much.
TIE = 0.02


def versus(a: float, b: float) -> str:
    """'<', '>' or '=' (a tie within TIE) for two times."""
    if abs(a - b) <= TIE * min(a, b):
        return "="
    return "<" if a < b else ">"


def winners(rows, split, wire="float32"):
    out = {}
    for n in sorted({r["n"] for r in rows if r["split"] == split}):
        ms = {r["mode"]: r["ms"] for r in rows if r["split"] == split and r["n"] == n and r["wire"] in ("-", wire)}
        if len(ms) == 3:
            out[n] = (min(ms, key=ms.get), ms)
    return out


def report(args, rows, header, footer, counts, splits, wires) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        (args.out / "split_timing.json").write_text(json.dumps(
            {"header": header, "footer": footer, "rows": rows, "command": args.command,
             "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    md = ["# Split timing: Client vs Distribution vs Cloud at " + args.rate, "",
          "Written by `bench/split_timing.py` (command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
          f".venv/bin/python {args.command}`).", ""]
    md += [f"- {h}" for h in header] + [f"- {footer}", ""]
    md += ["Columns: ms/batch = median client wall time per batch of 100 (compute + send + ACK wait); "
           "bytes = measured DATA frame bytes per batch on the socket; computed f32/f16/u8 = exact frame size "
           "for each wire dtype from the blob shapes; link = measured bytes / time in the paced send; "
           "load = 1/5/15-min load average when the run started; cloud outputs vs Client = largest difference between "
           "the accuracy/loss means `tinycaffe serve` printed and the Client-mode run's over the same batches "
           "(same weights), a check that the split computes the same net.", ""]
    lines_out = []
    for split in splits:
        layer, after = SPLITS[split]
        for wire in wires:
            md += [f"## {split}: {layer} = n filters, cut after {after} (wire {wire})", "",
                   "| n | mode | crossing blobs | ms/batch (min..max) | client compute ms | send ms | ACK wait ms "
                   "| bytes/batch measured | computed f32 / f16 / u8 | link Mbps | cloud outputs vs Client max abs diff | load |",
                   "|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                if r["split"] != split or r["wire"] not in ("-", wire):
                    continue
                if r["mode"] == "Client":
                    md.append(f"| {r['n']} | Client | - | {r['ms']:.1f} ({r['ms_min']:.0f}..{r['ms_max']:.0f}) "
                              f"| {r['client_compute_ms']:.1f} | - | - | 0 | - | - | - | {r['load']} |")
                else:
                    c = r["computed_bytes"]
                    md.append(f"| {r['n']} | {r['mode']} | {', '.join(r['crossing'])} | {r['ms']:.1f} "
                              f"({r['ms_min']:.0f}..{r['ms_max']:.0f}) | {r['client_compute_ms']:.1f} "
                              f"| {r['send_ms']:.1f} | {r['wait_ms']:.1f} | {r['bytes']:,} "
                              f"| {c['float32']:,} / {c['float16']:,} / {c['uint8']:,} | {r['rate_Mbps']:.2f} "
                              f"| {r['cloud_vs_client_maxdiff']:.2g} | {r['load']} |")
            md.append("")
            w = winners(rows, split, wire)
            md += [f"Winner per n ({wire}): " + ", ".join(f"n={n}: {m}" for n, (m, _) in w.items()), ""]
            vs = {n: versus(ms["Distribution"], ms["Cloud"]) for n, (_, ms) in w.items()}
            dist_beats = [n for n, c in vs.items() if c == "<"]
            ties = [n for n, c in vs.items() if c == "="]
            client_fastest = all(m == "Client" for m, _ in w.values())
            paper_beats = [n for n in w if n <= PAPER_MAX_N[split]]
            untied = [n for n in w if n not in ties]
            if not client_fastest:
                verdict = "differs (Client alone is not always fastest)"
            elif dist_beats == [n for n in paper_beats if n in untied]:
                verdict = "agrees" + (f" where not tied (tie at n = {ties})" if ties else "")
            else:
                verdict = "differs"
            lines_out += [
                f"{split} ({wire}): winner per n: " + ", ".join(f"{n}:{m}" for n, (m, _) in w.items()),
                f"{split} ({wire}): Distribution vs Cloud per n: "
                + ", ".join(f"{n}: {ms['Distribution']:.0f} {vs[n]} {ms['Cloud']:.0f}" for n, (_, ms) in w.items())
                + f" ms ('=' within {TIE:.0%})",
                f"{split} ({wire}): Distribution beats Cloud at n = {dist_beats or 'none'}"
                + (f", ties at n = {ties}" if ties else "") + f"; Client alone fastest at every n: {client_fastest}",
                f"{split} ({wire}) vs paper (fast CPU client: {PAPER[split]}): ours {verdict} on the tested n",
            ]
            top = max(w) if w else None
            d = next((r for r in rows if r["split"] == split and r["n"] == top and r["mode"] == "Distribution"
                      and r["wire"] == wire), None)
            c = next((r for r in rows if r["split"] == split and r["n"] == top and r["mode"] == "Cloud"
                      and r["wire"] == wire), None)
            if d and c:
                lines_out.append(
                    f"{split} ({wire}) at n = {top}: Distribution = client compute {d['client_compute_ms']:.0f} + "
                    f"send {d['send_ms']:.0f} + ACK wait {d['wait_ms']:.0f} ms; Cloud = send {c['send_ms']:.0f} ms "
                    f"(+ {c['client_compute_ms'] + c['wait_ms']:.0f}): "
                    + (f"Distribution wins while the client's compute stays under about "
                       f"{c['send_ms'] - d['send_ms']:.0f} ms" if c["send_ms"] > d["send_ms"] else
                       "Distribution cannot win here: it sends more bytes than Cloud"))
            suffix = "" if wire == "float32" else f"_{wire}"
            plot(args.out / f"split_timing_{split}{suffix}.png", rows, split, wire, args.rate, layer, after)
    md += ["## Comparison with the study", ""] + [f"- {x}" for x in lines_out] + [
        "- The study counts one byte per element (uint8 sizes); the float32 wire sends 4x that, the "
        "float16 wire 2x. Distribution and Cloud frames scale alike, so the Distribution/Cloud byte ratio "
        "(n*256/3072 for split 1, n*64/3072 for split 2) does not depend on the wire dtype.",
        "- Client and cloud share this 2-core machine, one thread each; in the study the cloud was a separate "
        "Xeon + GTX 980 node. At 10 Mbps the link dominates here as it did for the study's fast CPU client.",
        "",
        "Plots: " + ", ".join(f"`split_timing_{s}{'' if w == 'float32' else '_' + w}.png`"
                              for s in splits for w in wires), ""]
    (args.out / "split_timing.md").write_text("\n".join(md))
    print("\n".join(lines_out))
    print(f"wrote {args.out / 'split_timing.md'}" + ("" if args.report_only else ", split_timing.json")
          + " and the plots")


def plot(path: Path, rows, split, wire, rate, layer, after) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for mode, marker in zip(MODES, "o^s"):
        pts = sorted((r["n"], r["ms"]) for r in rows
                     if r["split"] == split and r["mode"] == mode and r["wire"] in ("-", wire))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=mode)
    ax.set_xlabel(f"{layer} filters")
    ax.set_ylabel("time per batch of 100 (ms, median)")
    ax.set_title(f"{split}: cut after {after}, {rate}, {wire} wire\n(client and cloud on one 2-core machine)",
                 fontsize=10)
    ax.set_xticks(sorted({r["n"] for r in rows if r["split"] == split}))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        sys.exit(client_role(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "_cloud":
        sys.exit(cloud_role(sys.argv[2:]))
    sys.exit(main())
