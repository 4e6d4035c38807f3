"""Checked predictions: does ``tinycaffe plan`` pick the cut that is measured fastest, at the time it says?

For each net (cifar10_full and the study's narrowed nets), each client speed
and each link rate, the planner ranks every cut of the net from two profiles
and a link (stop-and-wait latency, float32 wire, ``prob`` returned to the
client); its ``--top`` choices then run for real: a client process (the whole
net, :class:`tinycaffe.plan.recut.RecutClient` with the cut fixed) against
``tinycaffe serve --any-cut`` (the whole net; its suffix for each cut is the
one ``split`` writes), on loopback, through an emulated link
(bench/link_emulator.py: a relay that paces *both* directions at the link
rate and adds the round trip, ``--rtt``, default 5 ms; the Sink's own pacer is
off). The planner is given that same link (rate, rtt), so the link it prices
is the link that runs. Measured: each batch's wall time on the client (its
layers, sending, the cloud's layers, the RESULT back), median over
``--batches`` batches after one warm-up batch.

Emulation, labelled as such: the client process is held to 100%, 25% or 10%
of one core by a cgroup CPU quota (bench/cpu_quota.py: cgroups v2 cpu.max, or
v1 cpu.cfs_quota_us where, as on this VM, only v1 is mounted), 1 kernel
thread; the server runs at full speed, 1 kernel thread, on the same machine;
the relay runs in this (orchestrating) process, outside the quota. Profiles
are taken by this script: the cloud's at full speed; the client's inside its
quota, whose median whole forward is kept and split over the layers in the
full-speed profile's shares (per-layer medians under a quota miss the
throttled pauses). Both profiles carry their machine's own CPU cost of
sending and receiving frames (``tinycaffe-profile/2``, measured inside the
same quota), which the planner charges to each side. The client's quota
group, the server and the relay get a cgroup CPU weight (``--weight``, 1000
against the default 100), so that other jobs on a shared machine yield to
them. The package's source is fingerprinted before and after each net
(:func:`source_fingerprint`); a net whose code changed while it ran is marked
in the table.

Options predicted more than ``--skip-factor`` times slower than the chosen
one are not run (they could only be measured fastest if the prediction were
off by that factor) and are listed as such.

    # the whole grid, 3 nets per invocation (each under 5 minutes on 2 cores, under the benchmark
    # lock), merged into one JSON (--append: the nets run now replace their rows, others stay):
    for nets in full,c1_4,c1_8 c1_12,c1_16,c1_20 c1_24,c1_28,c2_4 c2_8,c2_12,c2_16 c2_20,c2_24,c2_28; do
      flock /tmp/tinycaffe-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python \\
        bench/plan_check.py --nets $nets --top 4 --batches 7 --append; done
    .venv/bin/python bench/plan_check.py --report-only    # the tables and the plot from the JSON

Writes bench/results/plan_check.json and plan_check.png and prints the
markdown tables that bench/results/plan.md holds.
"""
from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "tools"))
PY = sys.executable
TC = str(Path(sys.executable).with_name("tinycaffe"))
ENV = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
ENV.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


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


def source_fingerprint() -> str:
    """A short hash of the package's source files (path, size, mtime): to notice code edited mid-run.

    The working tree is shared with other people's work in progress; a kernel
    edited between the client's profile and its run would make the prediction
    describe other code than the one measured. Rows of a net whose fingerprint
    changed while it ran are marked in the report.
    """
    import hashlib

    h = hashlib.sha1()
    for f in sorted((ROOT / "tinycaffe").rglob("*.py")):
        st = f.stat()
        h.update(f"{f.relative_to(ROOT)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


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
    path.write_text(json.dumps(doc))  # (its "wire" costs, measured in the quota, are kept as they are)


# ---- the client process: every rate, the plan's top options, measured ---------------------------
def client_main(a) -> None:
    import numpy as np

    import tinycaffe
    from tinycaffe.cli.common import set_threads
    from tinycaffe.plan.cost import CostModel
    from tinycaffe.plan.cuts import CutGraph
    from tinycaffe.plan.link import Link, parse_duration
    from tinycaffe.plan.planner import make_plan
    from tinycaffe.plan.profile import read_profile
    from tinycaffe.plan.recut import RecutClient
    from tinycaffe.wire.pacing import parse_rate

    set_threads(1)
    rtt = parse_duration(a.rtt)
    ports = dict(item.split("=") for item in a.link_ports.split(","))
    sink_paced = a.link_mode == "sink"
    net = tinycaffe.Net(a.model, weights=a.weights)
    graph = CutGraph.from_model(a.model)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(net.blobs["data"].shape).astype(np.float32) for _ in range(a.batches + 1)]
    out = []
    for rate in a.rates.split(","):
        model = CostModel(graph, read_profile(a.client_profile), read_profile(a.cloud_profile),
                          Link(parse_rate(rate), rtt), ["prob"])
        plan = make_plan(graph, model, "latency", ("float32",))
        best = plan.options[0].timing.stop_and_wait_s
        for rank, o in enumerate(plan.options[: a.top], 1):
            t = o.timing
            row = {"rate": rate, "rank": rank, "cut": o.label, "predicted_s": t.stop_and_wait_s,
                   "client_s": t.client_s, "link_s": t.link_s, "cloud_s": t.cloud_s, "sent_bytes": t.sent_bytes,
                   "returned_bytes": t.returned_bytes, "client_wire_s": t.client_wire_s,
                   "cloud_wire_s": t.cloud_wire_s, "measured_s": None, "times": [],
                   "load1": os.getloadavg()[0]}
            if rank > 1 and t.stop_and_wait_s > a.skip_factor * best:
                row["skipped"] = f"predicted > {a.skip_factor:g}x the chosen cut"
            else:
                # Through the emulated link of this rate, the Sink's own pacer off (rate=None); or,
                # with --link-mode sink, straight to the server with the Sink pacing its sending only.
                with RecutClient(net, model, "127.0.0.1", int(ports[rate]), returns=["prob"], start=o.label,
                                 recut=False, rate=rate if sink_paced else None, timeout=300) as c:
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
    p.add_argument("--weight", type=int, default=1000,
                   help="cgroup CPU weight (100 = default) of the client, the server and the link relay, so that "
                        "other jobs on the machine disturb them less; 0: none")
    p.add_argument("--link-mode", choices=["relay", "sink"], default="relay",
                   help="relay: the emulated link of bench/link_emulator.py (both directions, --rtt); sink: the "
                        "old way, only the client's sending paced by the Sink's pacer, no rtt added (the planner "
                        "is told 0.5 ms)")
    p.add_argument("--rtt", default="5ms", help="round trip the emulated link adds (and the planner is told)")
    p.add_argument("--append", action="store_true",
                   help="merge into the existing --json: rows of the nets run now replace theirs, others stay")
    p.add_argument("--report-only", action="store_true", help="print the tables and redraw the plot from --json")
    p.add_argument("--json", default="bench/results/plan_check.json")
    p.add_argument("--plot", default="bench/results/plan_check.png")
    p.add_argument("--role", default="main", help=argparse.SUPPRESS)
    for k in ("model", "weights", "client_profile", "cloud_profile", "out"):
        p.add_argument("--" + k.replace("_", "-"), help=argparse.SUPPRESS)
    p.add_argument("--link-ports", help=argparse.SUPPRESS)  # rate=port of each emulated link
    a = p.parse_args()
    if a.role == "client":
        client_main(a)
        return
    os.chdir(ROOT)
    if a.report_only:
        doc = json.loads(Path(a.json).read_text())
        report(doc["rows"], a)
        plot(doc["rows"], a.plot)
        return
    import numpy  # noqa: F401 -- loaded, so that threadpoolctl can name its BLAS below
    import threadpoolctl
    from cpu_quota import CpuQuota, available

    ok, how = available()
    if not ok:
        raise SystemExit(f"cannot hold the client to a CPU quota here: {how}")
    t_start = time.perf_counter()
    print(f"bench/plan_check.py: nets {a.nets}, client quotas {a.quotas} core(s) ({how}; EMULATED slow clients), "
          + (f"rates {a.rates} with rtt {a.rtt} (EMULATED link: loopback relay pacing both directions), "
             if a.link_mode == "relay" else
             f"rates {a.rates} (EMULATED link, the old way: the Sink's pacer paces only the client's sending), ")
          + f"top {a.top}, {a.batches} timed batches each; BLAS "
          + "; ".join(f"{x.get('internal_api')} {x.get('version')} {x.get('architecture')}"
                      for x in threadpoolctl.threadpool_info()), flush=True)
    load_before = os.getloadavg()
    print(f"load average before: {load_before}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="tc_plancheck_"))
    rows = []
    weight = a.weight or None
    # The cloud side (this process: the relays; and the server) in one group, weighted, no ceiling.
    cloud_group = CpuQuota(None, name=f"tinycaffe_plancheck_cloud_{os.getpid()}", weight=weight)
    cloud_group.join()
    print(f"cloud side and link relays: {cloud_group.describe()}", flush=True)
    try:
        run_nets(a, tmp, rows, weight)
    finally:
        cloud_group.close()
    finish(a, rows, t_start, load_before, tmp)


def run_nets(a, tmp: Path, rows: list, weight) -> None:
    """Every net, client quota and rate of ``a``; appends the measured rows."""
    from cpu_quota import CpuQuota
    from link_emulator import LinkEmulator

    import tinycaffe
    from tinycaffe.plan.link import parse_duration
    from tinycaffe.plan.recut import any_cut_net_param
    from tinycaffe.wire.pacing import parse_rate

    for name in a.nets.split(","):
        model, weights = net_files(name, tmp)
        code_before = source_fingerprint()
        first_row = len(rows)
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
        links = []
        try:
            line = server.stdout.readline()
            if "serving" not in line:
                raise SystemExit(f"server did not start: {line}")
            drain(server)
            if a.link_mode == "relay":
                links = [LinkEmulator(port, parse_rate(r), parse_duration(a.rtt)) for r in a.rates.split(",")]
                link_ports = ",".join(f"{r}={l.port}" for r, l in zip(a.rates.split(","), links))
            else:
                link_ports = ",".join(f"{r}={port}" for r in a.rates.split(","))
            for q in a.quotas.split(","):
                quota = CpuQuota(float(q), weight=weight)
                try:
                    client = tmp / f"{name}_client_{q}.json"
                    cfwd = profile(model, weights, client, quota)
                    share_profile(client, cloud)
                    print(f"  client at {quota.describe()}: {cfwd * 1e3:.1f} ms per forward", flush=True)
                    out = tmp / f"{name}_{q}.json"
                    cmd = [PY, __file__, "--role", "client", "--model", model, "--weights", weights,
                           "--client-profile", str(client), "--cloud-profile", str(cloud),
                           "--link-ports", link_ports, "--link-mode", a.link_mode,
                           "--rtt", a.rtt if a.link_mode == "relay" else "0.5ms", "--rates", a.rates,
                           "--top", str(a.top),
                           "--batches", str(a.batches), "--skip-factor", str(a.skip_factor), "--out", str(out)]
                    c = quota.popen(cmd, env=ENV)
                    if c.wait(timeout=1800):
                        raise SystemExit(f"client failed: {name} quota {q}")
                    for r in json.loads(out.read_text()):
                        rows.append({"net": name, "quota": float(q), "client_forward_s": cfwd,
                                     "rtt": a.rtt if a.link_mode == "relay" else "0.5ms",
                                     "link": "emulated relay" if a.link_mode == "relay" else "Sink pacer", **r})
                finally:
                    quota.close()
        finally:
            for link in links:
                link.close()
                if link.errors:
                    print(f"  link emulator: {'; '.join(link.errors)}", flush=True)
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        code_after = source_fingerprint()
        for r in rows[first_row:]:
            r["code"] = code_before if code_before == code_after else f"{code_before}->{code_after}"
        if code_before != code_after:
            print(f"  WARNING: tinycaffe's source changed while {name} ran; its rows are marked", flush=True)


def finish(a, rows: list, t_start: float, load_before, tmp: Path) -> None:
    """Write (or merge into) the JSON, print the tables, draw the plot."""
    shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - t_start
    run = {"args": vars(a), "elapsed_s": elapsed, "load_before": load_before, "load_after": os.getloadavg()}
    runs = []
    if a.append and Path(a.json).exists():
        old = json.loads(Path(a.json).read_text())
        done = set(a.nets.split(","))
        rows = [r for r in old["rows"] if r["net"] not in done] + rows
        runs = old.get("runs", [])
    Path(a.json).write_text(json.dumps({"runs": runs + [run], "rows": rows}, indent=1))
    report(rows, a)
    plot(rows, a.plot)
    print(f"\nwhole check: {elapsed / 60:.1f} min; load average after: {os.getloadavg()}; wrote {a.json}, {a.plot}")


def _net_order(name: str) -> tuple:
    if name == "full":
        return (0, 0)
    layer, n = name.split("_")
    return (1 if layer == "c1" else 2, int(n))


def configs(rows):
    keys = []
    for r in rows:
        k = (r["net"], r["quota"], r["rate"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (_net_order(k[0]), -k[1]))  # rates stay in the order they ran
    return [(k, [r for r in rows if (r["net"], r["quota"], r["rate"]) == k]) for k in keys]


def report(rows, a) -> None:
    print("\n| net | client (emulated) | link (emulated) | chosen cut | predicted ms | measured ms | error "
          "| measured fastest | chosen vs fastest | load | other options run (predicted / measured ms) |")
    print("|---|---|---|---|---:|---:|---:|---|---:|---:|---|")
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
        loads = [r["load1"] for r in rs if r.get("load1") is not None]
        load = f"{statistics.median(loads):.1f}" if loads else "?"
        rtt = f", {rs[0]['rtt']}" if rs[0].get("rtt") else ""
        if "->" in chosen.get("code", ""):
            net = f"{net} (code changed mid-run)"
        print(f"| {net} | {q:.0%} core | {rate}{rtt} | {chosen['cut']} | {chosen['predicted_s'] * 1e3:.0f} | "
              f"{chosen['measured_s'] * 1e3:.0f} | {err:+.0%} | {fastest['cut']} | {gap:+.0%} | {load} | {others} |")
    print(f"\nchosen cut's prediction within 15% of measured: {within15}/{n} configurations; "
          f"chosen cut measured fastest or within 5% of it: {good_choice}/{n} ({good_choice / n:.0%})")
    errs = [abs(r["predicted_s"] - r["measured_s"]) / r["measured_s"] for r in rows if r["measured_s"]]
    print(f"all options run: |error| median {statistics.median(errs):.0%}, max {max(errs):.0%} over {len(errs)}")
    # The same runs priced without each side's CPU cost of the frames (what the model charged before it
    # had one): how much that term moves the predictions. (Which cut it would have chosen is not rerun.)
    ran = [r for r in rows if r["measured_s"] and "client_wire_s" in r]
    if ran:
        def err(r, wire=True):
            pred = r["predicted_s"] - (0 if wire else r["client_wire_s"] + r["cloud_wire_s"])
            return abs(pred - r["measured_s"]) / r["measured_s"]

        chosen = [r for r in ran if r["rank"] == 1 and r["sent_bytes"] > 0]
        print(f"the wire CPU term: over the {len(ran)} options run, |error| median "
              f"{statistics.median(map(err, ran)):.1%} with it, {statistics.median(err(r, False) for r in ran):.1%} without; chosen split cuts within 15%: "
              f"{sum(err(r) <= 0.15 for r in chosen)}/{len(chosen)} with it, "
              f"{sum(err(r, False) <= 0.15 for r in chosen)}/{len(chosen)} without; largest client share "
              f"{max(r['client_wire_s'] for r in ran) * 1e3:.1f} ms")


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
    ax.set_title("tinycaffe plan: predicted vs measured (emulated link and clients)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
