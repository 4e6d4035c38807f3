"""Re-cut while running: a client whose link drops from 100 to 5 Mbit/s moves its cut.

Two clients run the same batches against one ``tinycaffe serve --any-cut``
(the whole cifar10_full net behind a Source, 1 kernel thread, full speed):

* fixed:  the cut the plan chooses at the start, kept for the whole run;
* recut:  :class:`tinycaffe.plan.recut.RecutClient`, which estimates the
          link's throughput from its own DATA-to-ACK times and switches cut
          between batches when another is predicted faster by ``--margin``.

Each client is its own process, held to ``--quota`` of one core by a cgroup
CPU quota (an emulated slow device, see bench/cpu_quota.py; the label says
so), 1 kernel thread. The link is loopback paced by the Sink's own pacer
(``tc netem`` is not available here): ``--rates`` for ``--batches`` batches
each, e.g. 100 Mbit/s for 10 batches, then 5 Mbit/s for 12, then 100 again.
The plan's cost model uses profiles taken by this script: the cloud's at full
speed, the client's inside the same quota. Under a quota, per-layer medians
miss the throttled pauses (a short layer usually runs inside one unthrottled
slice), so the client profile's layer times are set to sum to its
measured median whole forward with the full-speed profile's layer shares
(a uniformly slower core); the script prints both.

Rounds alternate the two clients; the figure per batch is the median over
rounds. Outputs (``prob``) of every batch are hashed in both clients and
compared: they must be bit-identical.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/recut.py
    ... bench/recut.py --rounds 1 --batches 6,8,6     # quicker
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from server_process import drain, free_port  # noqa: E402
PY = sys.executable
TC = str(Path(sys.executable).with_name("tinycaffe"))  # the console script of this venv
ENV = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
ENV.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def blas_info() -> str:
    import numpy  # noqa: F401
    import threadpoolctl

    return "; ".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} x{p.get('num_threads')}"
                     for p in threadpoolctl.threadpool_info()) or "none found"


def scale_profile(path: Path, shares: Path) -> tuple[float, float]:
    """Give the quota'd profile at ``path`` the layer shares of the unthrottled ``shares`` profile.

    Under a CPU quota a layer's median time says little (a short layer usually
    runs inside one unthrottled slice, a long one takes the pauses), but the
    median whole forward is right; a uniformly slower core keeps the layers'
    shares. Returns (layer medians' sum before, whole forward).
    """
    doc = json.loads(path.read_text())
    ref = {l["name"]: l["forward_s"] for l in json.loads(shares.read_text())["layers"]}
    total, ref_total = sum(l["forward_s"] for l in doc["layers"]), sum(ref.values())
    fwd = doc["forward_s"]
    for l in doc["layers"]:
        l["forward_s"] = ref[l["name"]] * fwd / ref_total
    doc.setdefault("machine", {})["note"] = (f"layer times: the full-speed profile's shares of this "
                                             f"profile's median forward ({fwd * 1e3:.1f} ms; cpu quota)")
    path.write_text(json.dumps(doc))
    return total, fwd


def profile(model: str, weights: str, out: Path, quota=None) -> None:
    cmd = [TC, "profile", model, "--weights", weights, "--batch", "100", "--threads", "1",
           "--repeats", "8", "-o", str(out)]
    p = quota.popen(cmd, env=ENV, stdout=subprocess.PIPE, text=True) if quota else \
        subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, text=True)
    text, _ = p.communicate(timeout=600)
    if p.returncode:
        raise SystemExit(f"profile failed: {' '.join(cmd)}")
    print("  " + text.strip().splitlines()[-2], flush=True)


# ---- the client process ------------------------------------------------------------------------
def client_main(a: argparse.Namespace) -> None:
    import numpy as np

    import tinycaffe
    from tinycaffe.cli.common import set_threads
    from tinycaffe.plan.cost import CostModel
    from tinycaffe.plan.cuts import CutGraph
    from tinycaffe.plan.link import Link
    from tinycaffe.plan.profile import read_profile
    from tinycaffe.plan.recut import RecutClient
    from tinycaffe.wire.pacing import parse_rate

    set_threads(1)
    rates = a.rates.split(",")
    counts = [int(x) for x in a.batches.split(",")]
    net = tinycaffe.Net(a.model, weights=a.weights)
    graph = CutGraph.from_model(a.model)
    model = CostModel(graph, read_profile(a.client_profile), read_profile(a.cloud_profile),
                      Link(parse_rate(rates[0]), a.rtt), ["prob"])
    rng = np.random.default_rng(0)
    shape = net.blobs["data"].shape
    records = []
    with RecutClient(net, model, "127.0.0.1", a.port, returns=["prob"], start=None, margin=a.margin,
                     recut=a.mode == "recut", rate=rates[0], probe_every=a.probe_every) as c:
        i = 0
        for phase, (rate, n) in enumerate(zip(rates, counts)):
            c.set_rate(rate)
            for _ in range(n):
                x = rng.standard_normal(shape).astype(np.float32)
                out = c.infer({"data": x})["prob"]
                r = c.records[-1]
                records.append({"batch": i, "phase": phase, "rate": rate, "cut": r.cut, "seconds": r.seconds,
                                "ack_s": r.ack_seconds, "estimate_mbps": r.bandwidth_estimate * 8 / 1e6,
                                "prob_sha256": hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()})
                i += 1
        start = c.records[0].cut
    Path(a.out).write_text(json.dumps({"mode": a.mode, "start": start, "switches": c.switches,
                                       "records": records, "costs": [vars(x) for x in c.costs]}))


# ---- the orchestrator --------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="prototxt/cifar10_full.prototxt")
    p.add_argument("--weights", default="weights/study/full_iter_5000.caffemodel")
    p.add_argument("--quota", type=float, default=0.1, help="the clients' CPU quota, in cores (default 0.1)")
    p.add_argument("--rates", default="100Mbps,5Mbps,100Mbps")
    p.add_argument("--batches", default="10,12,10", help="batches at each rate")
    p.add_argument("--rtt", type=float, default=0.001, help="the plan's round trip (s), loopback ~1 ms")
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--probe-every", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default="bench/results/recut.json")
    p.add_argument("--role", choices=["main", "client"], default="main", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["fixed", "recut"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--client-profile", help=argparse.SUPPRESS)
    p.add_argument("--cloud-profile", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.role == "client":
        client_main(a)
        return
    from cpu_quota import CpuQuota, available

    ok, how = available()
    if not ok:
        raise SystemExit(f"cannot hold the client to a CPU quota here: {how}")
    os.chdir(ROOT)
    print(f"bench/recut.py: {a.model}, weights {a.weights}, batch 100; BLAS: {blas_info()}", flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    quota = CpuQuota(a.quota)
    print(f"clients: {quota.describe()} -- an EMULATED slow device; server: full speed, 1 thread", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="tc_recut_"))
    server = None
    try:
        import tinycaffe
        from tinycaffe.plan.recut import any_cut_net_param

        port = free_port()
        served = tmp / "served.prototxt"
        shape = tuple(tinycaffe.Net(a.model).blobs["data"].shape)
        served.write_text(str(any_cut_net_param(a.model, {"data": shape}, ["prob"], port=port)))
        print("profiling (cloud at full speed, client in the quota)...", flush=True)
        profile(a.model, a.weights, tmp / "cloud.json")
        profile(a.model, a.weights, tmp / "client.json", quota)
        before, fwd = scale_profile(tmp / "client.json", tmp / "cloud.json")
        print(f"  client profile: layer medians sum to {before * 1e3:.1f} ms, median whole forward "
              f"{fwd * 1e3:.1f} ms: layer times = the full-speed shares of the latter", flush=True)
        server = subprocess.Popen([TC, "serve", str(served), "--weights", a.weights,
                                   "--any-cut", "--keep-serving", "--threads", "1", "--quiet"],
                                  env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = server.stdout.readline()
        if "serving" not in line:
            raise SystemExit(f"server did not start: {line}{server.stdout.read()}")
        drain(server)
        runs: dict[str, list[dict]] = {"fixed": [], "recut": []}
        for r in range(a.rounds):
            for mode in (["fixed", "recut"] if r % 2 == 0 else ["recut", "fixed"]):
                out = tmp / f"{mode}_{r}.json"
                cmd = [PY, __file__, "--role", "client", "--mode", mode, "--port", str(port), "--model", a.model,
                       "--weights", a.weights, "--rates", a.rates, "--batches", a.batches, "--rtt", str(a.rtt),
                       "--margin", str(a.margin), "--probe-every", str(a.probe_every),
                       "--client-profile", str(tmp / "client.json"), "--cloud-profile", str(tmp / "cloud.json"),
                       "--out", str(out)]
                t0 = time.perf_counter()
                c = quota.popen(cmd, env=ENV)
                if c.wait(timeout=900):
                    raise SystemExit(f"{mode} client failed (round {r})")
                runs[mode].append(json.loads(out.read_text()))
                print(f"round {r} {mode}: {time.perf_counter() - t0:.1f} s, switches "
                      f"{runs[mode][-1]['switches']}", flush=True)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        quota.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report(a, runs)


def report(a, runs) -> None:
    n = len(runs["fixed"][0]["records"])
    same = all(runs[m][k]["records"][i]["prob_sha256"] == runs["fixed"][0]["records"][i]["prob_sha256"]
               for m in runs for k in range(len(runs[m])) for i in range(n))
    print(f"\noutputs of all {n} batches bit-identical across every run of both clients: {same}")
    print(f"\nPer batch (median seconds over {a.rounds} round(s)); cut of round 0:\n")
    print("| batch | link | fixed: cut | fixed s | recut: cut | recut s | recut estimate Mbit/s |")
    print("|---:|---|---|---:|---|---:|---:|")
    for i in range(n):
        f = [run["records"][i] for run in runs["fixed"]]
        g = [run["records"][i] for run in runs["recut"]]
        print(f"| {i} | {f[0]['rate']} | {f[0]['cut']} | {statistics.median(x['seconds'] for x in f):.3f} | "
              f"{g[0]['cut']} | {statistics.median(x['seconds'] for x in g):.3f} | {g[0]['estimate_mbps']:.1f} |")
    counts = [int(x) for x in a.batches.split(",")]
    print("\nPhases (median of per-batch medians):\n")
    print("| phase | batches | fixed s/batch | recut s/batch | recut / fixed |")
    print("|---|---|---:|---:|---:|")
    lo = 0
    rates = a.rates.split(",")
    for k, cnt in enumerate(counts):
        spans = [(f"{rates[k]} (before the change)" if k == 0 else f"{rates[k]}", lo, lo + cnt)]
        if k > 0:
            spans = [(f"{rates[k]}, during (first 3 batches)", lo, lo + 3), (f"{rates[k]}, after", lo + 3, lo + cnt)]
        for label, s, e in spans:
            fx = statistics.median(statistics.median(run["records"][i]["seconds"] for run in runs["fixed"])
                                   for i in range(s, e))
            rc = statistics.median(statistics.median(run["records"][i]["seconds"] for run in runs["recut"])
                                   for i in range(s, e))
            print(f"| {label} | {s}-{e - 1} | {fx:.3f} | {rc:.3f} | {rc / fx:.2f} |")
        lo += cnt
    total = {m: statistics.median(sum(x["seconds"] for x in run["records"]) for run in runs[m]) for m in runs}
    print(f"\nwhole run (median over rounds): fixed {total['fixed']:.1f} s, recut {total['recut']:.1f} s")
    print("predicted costs (s at the starting link):",
          ", ".join(f"{c['name']}: client {c['client_s'] * 1e3:.0f} ms + cloud {c['cloud_s'] * 1e3:.0f} ms + "
                    f"{c['sent_bytes'] / 1e3:.0f} kB" for c in runs["recut"][0]["costs"]))
    Path(a.json).write_text(json.dumps({"args": vars(a), "runs": runs, "identical": same}, indent=1))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
