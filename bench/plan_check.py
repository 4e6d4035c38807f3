"""Checked predictions: does ``tinycaffe plan`` pick the cut that is measured fastest, at the time it says?

For each net (cifar10_full and some of the study's narrowed nets), each
client speed and each link rate, the planner ranks every cut of the net from
two profiles and a link (stop-and-wait latency, float32 wire, ``prob``
returned to the client); its ``--top`` choices then run for real: a client
process (the whole net, :class:`tinycaffe.plan.recut.RecutClient` with the
cut fixed) against ``tinycaffe serve --any-cut`` (the whole net; its suffix
for each cut is the one ``split`` writes), on loopback, the client's sending
paced by the Sink's pacer at the link rate. Measured: each batch's wall time
on the client (its layers, sending, the cloud's layers, the RESULT back),
median over ``--batches`` batches after one warm-up batch.

Emulation, labelled as such: the client process is held to 100%, 25% or 10%
of one core by a cgroup CPU quota (bench/cpu_quota.py: cgroups v2 cpu.max, or
v1 cpu.cfs_quota_us where, as on this VM, only v1 is mounted), 1 kernel
thread; the server runs at full speed, 1 kernel thread, on the same 2-core
machine. Profiles are taken by this script: the cloud's at full speed; the
client's inside its quota, whose median whole forward is kept and split over
the layers in the full-speed profile's shares (per-layer medians under a
quota miss the throttled pauses). The link is given to the planner as the
pacer's rate and a 0.5 ms round trip (loopback). The pacer paces only the
client's sending; the RESULT comes back unpaced, while the planner charges
it at the link rate too (at 1 Mbit/s that is ~32 ms for the 4 kB ``prob``):
the tables show the planner's own figure.

Options predicted more than ``--skip-factor`` times slower than the chosen
one are not run (they could only be measured fastest if the prediction were
off by that factor) and are listed as such.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/plan_check.py          # ~3-4 min
    # the full grid (all 14 narrowed nets; roughly 25-30 min on 2 cores, estimated):
    ... bench/plan_check.py --nets full,c1_4,c1_8,c1_12,c1_16,c1_20,c1_24,c1_28,c2_4,c2_8,c2_12,c2_16,c2_20,c2_24,c2_28 \\
        --top 4 --batches 7

Writes bench/results/plan_check.json and plan_check.png and prints the
markdown tables that bench/results/plan.md holds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))
PY = sys.executable
TC = str(Path(sys.executable).with_name("tinycaffe"))
ENV = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
ENV.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
RTT = 0.0005


def net_files(name: str, tmp: Path) -> tuple[str, str]:
    """(deploy prototxt, caffemodel) of "full" or a narrowed study net "c1_N" / "c2_N"."""
    if name == "full":
        return "prototxt/cifar10_full.prototxt", "weights/study/full_iter_5000.caffemodel"
    import make_prototxt as mkp

    layer, n = name.split("_")
    widths = {"conv1": int(n)} if layer == "c1" else {"conv2": int(n)}
    path = tmp / f"cifar10_full_{name}_deploy.prototxt"
    path.write_text(mkp.full_net(f"CIFAR10_full_{name}_deploy", mkp.input_layer(), True, **widths))
    return str(path), f"weights/study/{name}_iter_5000.caffemodel"


def drain(proc) -> None:
    """Read the server's output in a thread: a full pipe would block its prints, and then the server."""
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profile(model: str, weights: str, out: Path, quota=None, repeats: int = 10) -> float:
    cmd = [TC, "profile", model, "--weights", weights, "--batch", "100", "--threads", "1",
           "--repeats", str(repeats), "-o", str(out)]
    p = quota.popen(cmd, env=ENV, stdout=subprocess.PIPE, text=True) if quota else \
        subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, text=True)
    p.communicate(timeout=900)
    if p.returncode:
        raise SystemExit(f"profile failed: {' '.join(cmd)}")
    return json.loads(out.read_text())["forward_s"]


def share_profile(path: Path, shares: Path) -> None:
    """The quota'd profile's median forward, split over the layers in the full-speed profile's shares."""
    doc = json.loads(path.read_text())
    ref = {l["name"]: l["forward_s"] for l in json.loads(shares.read_text())["layers"]}
    total = sum(ref.values())
    for l in doc["layers"]:
        l["forward_s"] = ref[l["name"]] * doc["forward_s"] / total
    path.write_text(json.dumps(doc))


# ---- the client process: every rate, the plan's top options, measured ---------------------------
def client_main(a) -> None:
    import numpy as np

    import tinycaffe
    from tinycaffe.cli.common import set_threads
    from tinycaffe.plan.cost import CostModel
    from tinycaffe.plan.cuts import CutGraph
    from tinycaffe.plan.link import Link
    from tinycaffe.plan.planner import make_plan
    from tinycaffe.plan.profile import read_profile
    from tinycaffe.plan.recut import RecutClient
    from tinycaffe.wire.pacing import parse_rate

    set_threads(1)
    net = tinycaffe.Net(a.model, weights=a.weights)
    graph = CutGraph.from_model(a.model)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(net.blobs["data"].shape).astype(np.float32) for _ in range(a.batches + 1)]
    out = []
    for rate in a.rates.split(","):
        model = CostModel(graph, read_profile(a.client_profile), read_profile(a.cloud_profile),
                          Link(parse_rate(rate), RTT), ["prob"])
        plan = make_plan(graph, model, "latency", ("float32",))
        best = plan.options[0].timing.stop_and_wait_s
        for rank, o in enumerate(plan.options[: a.top], 1):
            t = o.timing
            row = {"rate": rate, "rank": rank, "cut": o.label, "predicted_s": t.stop_and_wait_s,
                   "client_s": t.client_s, "link_s": t.link_s, "cloud_s": t.cloud_s, "sent_bytes": t.sent_bytes,
                   "returned_bytes": t.returned_bytes, "measured_s": None, "times": []}
            if rank > 1 and t.stop_and_wait_s > a.skip_factor * best:
                row["skipped"] = f"predicted > {a.skip_factor:g}x the chosen cut"
            else:
                with RecutClient(net, model, "127.0.0.1", a.port, returns=["prob"], start=o.label, recut=False,
                                 rate=rate, timeout=300) as c:
                    for x in xs:
                        c.infer({"data": x})
                    row["times"] = [r.seconds for r in c.records[1:]]  # the first: connection + warm-up
                row["measured_s"] = statistics.median(row["times"])
            out.append(row)
            print(f"    {rate:>7} #{rank} {o.label:<14} predicted {t.stop_and_wait_s * 1e3:8.1f} ms  measured "
                  + (f"{row['measured_s'] * 1e3:8.1f} ms" if row["measured_s"] else row.get("skipped", "")),
                  flush=True)
    Path(a.out).write_text(json.dumps(out))


# ---- the orchestrator --------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="full,c1_4,c2_4")
    p.add_argument("--quotas", default="1,0.25,0.1", help="client CPU quotas, in cores")
    p.add_argument("--rates", default="1Mbps,10Mbps,100Mbps")
    p.add_argument("--top", type=int, default=3, help="the plan's top options to run")
    p.add_argument("--batches", type=int, default=6, help="timed batches per option (after one warm-up)")
    p.add_argument("--skip-factor", type=float, default=4.0)
    p.add_argument("--json", default="bench/results/plan_check.json")
    p.add_argument("--plot", default="bench/results/plan_check.png")
    p.add_argument("--role", default="main", help=argparse.SUPPRESS)
    for k in ("model", "weights", "client_profile", "cloud_profile", "out"):
        p.add_argument("--" + k.replace("_", "-"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.role == "client":
        client_main(a)
        return
    import threadpoolctl
    from cpu_quota import CpuQuota, available

    os.chdir(ROOT)
    ok, how = available()
    if not ok:
        raise SystemExit(f"cannot hold the client to a CPU quota here: {how}")
    t_start = time.perf_counter()
    print(f"bench/plan_check.py: nets {a.nets}, client quotas {a.quotas} core(s) ({how}), rates {a.rates}, "
          f"top {a.top}, {a.batches} timed batches each; BLAS "
          + "; ".join(f"{x.get('internal_api')} {x.get('version')} {x.get('architecture')}"
                      for x in threadpoolctl.threadpool_info()), flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="tc_plancheck_"))
    rows = []
    import tinycaffe
    from tinycaffe.plan.recut import any_cut_net_param

    for name in a.nets.split(","):
        model, weights = net_files(name, tmp)
        port = free_port()
        served = tmp / f"{name}_served.prototxt"
        shape = tuple(tinycaffe.Net(model).blobs["data"].shape)
        served.write_text(str(any_cut_net_param(model, {"data": shape}, ["prob"], port=port)))
        cloud = tmp / f"{name}_cloud.json"
        fwd = profile(model, weights, cloud)
        print(f"{name}: cloud profile {fwd * 1e3:.1f} ms per forward (full speed)", flush=True)
        server = subprocess.Popen([TC, "serve", str(served), "--weights", weights, "--any-cut", "--keep-serving",
                                   "--threads", "1", "--quiet"], env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            line = server.stdout.readline()
            if "serving" not in line:
                raise SystemExit(f"server did not start: {line}")
            drain(server)
            for q in a.quotas.split(","):
                quota = CpuQuota(float(q))
                try:
                    client = tmp / f"{name}_client_{q}.json"
                    cfwd = profile(model, weights, client, quota)
                    share_profile(client, cloud)
                    print(f"  client at {quota.describe()}: {cfwd * 1e3:.1f} ms per forward", flush=True)
                    out = tmp / f"{name}_{q}.json"
                    cmd = [PY, __file__, "--role", "client", "--model", model, "--weights", weights,
                           "--client-profile", str(client), "--cloud-profile", str(cloud), "--port", str(port),
                           "--rates", a.rates, "--top", str(a.top), "--batches", str(a.batches),
                           "--skip-factor", str(a.skip_factor), "--out", str(out)]
                    c = quota.popen(cmd, env=ENV)
                    if c.wait(timeout=1800):
                        raise SystemExit(f"client failed: {name} quota {q}")
                    for r in json.loads(out.read_text()):
                        rows.append({"net": name, "quota": float(q), "client_forward_s": cfwd, **r})
                finally:
                    quota.close()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - t_start
    Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows, "elapsed_s": elapsed,
                                        "load_after": os.getloadavg()}, indent=1))
    report(rows, a)
    plot(rows, a.plot)
    print(f"\nwhole check: {elapsed / 60:.1f} min; load average after: {os.getloadavg()}; wrote {a.json}, {a.plot}")


def configs(rows):
    keys = []
    for r in rows:
        k = (r["net"], r["quota"], r["rate"])
        if k not in keys:
            keys.append(k)
    return [(k, [r for r in rows if (r["net"], r["quota"], r["rate"]) == k]) for k in keys]


def report(rows, a) -> None:
    print("\n| net | client | link | chosen cut | predicted ms | measured ms | error | measured fastest "
          "| chosen vs fastest | other options run (predicted / measured ms) |")
    print("|---|---|---|---|---:|---:|---:|---|---:|---|")
    within15 = good_choice = n = 0
    for (net, q, rate), rs in configs(rows):
        chosen = rs[0]
        ran = [r for r in rs if r["measured_s"] is not None]
        fastest = min(ran, key=lambda r: r["measured_s"])
        err = (chosen["predicted_s"] - chosen["measured_s"]) / chosen["measured_s"]
        gap = chosen["measured_s"] / fastest["measured_s"] - 1
        n += 1
        within15 += abs(err) <= 0.15
        good_choice += gap <= 0.05
        others = "; ".join(f"{r['cut']} {r['predicted_s'] * 1e3:.0f} / "
                           + (f"{r['measured_s'] * 1e3:.0f}" if r["measured_s"] is not None else "not run")
                           for r in rs[1:])
        print(f"| {net} | {q:.0%} core | {rate} | {chosen['cut']} | {chosen['predicted_s'] * 1e3:.0f} | "
              f"{chosen['measured_s'] * 1e3:.0f} | {err:+.0%} | {fastest['cut']} | {gap:+.0%} | {others} |")
    print(f"\nchosen cut's prediction within 15% of measured: {within15}/{n} configurations; "
          f"chosen cut measured fastest or within 5% of it: {good_choice}/{n} ({good_choice / n:.0%})")
    errs = [abs(r["predicted_s"] - r["measured_s"]) / r["measured_s"] for r in rows if r["measured_s"]]
    print(f"all options run: |error| median {statistics.median(errs):.0%}, max {max(errs):.0%} over {len(errs)}")


def plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 6))
    colors = {1.0: "tab:blue", 0.25: "tab:orange", 0.1: "tab:red"}
    for r in rows:
        if r["measured_s"] is None:
            continue
        ax.scatter(r["measured_s"] * 1e3, r["predicted_s"] * 1e3, s=40 if r["rank"] == 1 else 14,
                   marker="o" if r["rank"] == 1 else "x", color=colors.get(r["quota"], "gray"))
    lo = min(min(r["measured_s"], r["predicted_s"]) for r in rows if r["measured_s"]) * 1e3 / 1.5
    hi = max(max(r["measured_s"], r["predicted_s"]) for r in rows if r["measured_s"]) * 1e3 * 1.5
    xs = [lo, hi]
    ax.plot(xs, xs, "k-", lw=1, label="predicted = measured")
    ax.fill_between(xs, [x * 0.85 for x in xs], [x * 1.15 for x in xs], color="gray", alpha=0.2, label="±15%")
    for q, c in colors.items():
        ax.scatter([], [], color=c, label=f"client {q:.0%} of a core (emulated: cgroup quota)")
    ax.scatter([], [], marker="o", color="k", label="chosen cut")
    ax.scatter([], [], marker="x", color="k", label="other top options")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured ms per batch (median)")
    ax.set_ylabel("predicted ms per batch (plan, stop-and-wait)")
    ax.set_title("tinycaffe plan: predicted vs measured, loopback + Sink pacing")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
