"""Pipeline efficiency of a split run: steady-state time per batch vs its slowest stage.

A split net is a three-stage pipeline: client compute (Data .. cut layer),
the link (frame bytes / rate), cloud compute (the rest of the net). If the
stages overlapped perfectly, a batch would take as long as the slowest stage.
For each configuration this runs the client and the cloud as separate
processes over loopback TCP (Sink paced at the given rate) and measures, in
the same run:

* steady state: the client's wall time per batch (median after warm-up);
* client compute: that minus the time spent in the Sink layer;
* link: DATA frame bytes / rate (and, for reference, the measured time in the paced send);
* cloud compute: the cloud's forward time minus the time in its Source layer.

It prints steady / slowest stage (the goal: <= 1.10) for window = 1 (the
study's stop-and-wait) and window = 4.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/pipeline_efficiency.py
    ... bench/pipeline_efficiency.py --iterations 5          # quicker

Writes bench/results/pipeline.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import split_timing as st  # noqa: E402

# (label, (conv1, conv2), cut after, rate): the study's split points on the unmodified net at
# its 10 Mbps, and at 100 Mbps, where the link no longer dominates.
CONFIGS = [
    ("split1 (pool1), 10 Mbps", (32, 32), "pool1", "10Mbps"),
    ("split2 (pool2), 10 Mbps", (32, 32), "pool2", "10Mbps"),
    ("split2 (pool2), 100 Mbps", (32, 32), "pool2", "100Mbps"),
    ("Cloud (raw data), 100 Mbps", (32, 32), st.DATA_LAYER, "100Mbps"),
]
GOAL = 1.10


def med(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=10, help="measured batches per run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="BLAS/kernel threads per process")
    ap.add_argument("--windows", default="1,4")
    ap.add_argument("--configs", default="", help="indexes into the config list (default all), e.g. 0,1")
    ap.add_argument("--out", type=Path, default=st.RESULTS)
    args = ap.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    configs = [CONFIGS[int(i)] for i in args.configs.split(",")] if args.configs else CONFIGS
    batches = args.warmup + args.iterations
    t_start = time.perf_counter()
    header = [
        f"bench/pipeline_efficiency.py, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        *st.machine_lines(),
        f"uptime at start: {st.uptime()}",
        f"NOTE: client and cloud are separate processes on the SAME {os.cpu_count()}-CPU machine "
        f"({args.threads} thread(s) each), loopback TCP, Sink-paced link.",
        f"repeats: {args.warmup} warm-up + {args.iterations} measured batches of 100 per run; medians.",
    ]
    for line in header:
        print(line, flush=True)
    st.TMP.mkdir(parents=True, exist_ok=True)
    test_lmdb, mean, data_note = st.prepare_data(st.TMP)
    print("data: " + data_note, flush=True)
    head = st.mkp.data_layers(test_lmdb, test_lmdb, mean)
    variants: dict = {}
    rows = []
    for label, key, after, rate in configs:
        if key not in variants:
            variants[key] = st.Variant(*key, head, st.TMP)
        v = variants[key]
        rate_Bps = st_parse_rate(rate)
        for window in windows:
            ld = st.load()
            work = st.TMP / "pipeline" / f"{after}_{rate}_w{window}"
            res = st.run_split_pair(v, after, work, batches=batches, threads=args.threads, window=window,
                                    wire="float32", rate=rate, timeout=batches * 12 + 60,
                                    cloud_cmd=st.cloud_role_cmd)
            pb, cl = res["per_batch"], res["cloud"]
            w = args.warmup
            steady = med(pb["total"][w:])
            client_c = med([t - k for t, k in zip(pb["total"][w:], pb["sink"][w:])])
            nbytes = med(pb["bytes"][w:])
            link = nbytes / rate_Bps
            send = med(pb["send"][w:])
            cloud_c = med([t - s for t, s in zip(cl["total"][w:], cl["source"][w:])])
            stages = {"client": client_c, "link": link, "cloud": cloud_c}
            slowest = max(stages, key=stages.get)
            ratio = steady / stages[slowest]
            serial = client_c + link  # what a send that blocks the client for the whole transfer gives
            rows.append(dict(label=label, after=after, rate=rate, window=window, load=ld, steady_ms=1e3 * steady,
                             client_ms=1e3 * client_c, link_ms=1e3 * link, send_ms=1e3 * send,
                             cloud_ms=1e3 * cloud_c, slowest=slowest, ratio=ratio, bytes=int(nbytes),
                             serial_ms=1e3 * serial, cloud_batches=len(cl["total"]),
                             wait_ms=1e3 * med([k - s for k, s in zip(pb["sink"][w:], pb["send"][w:])])))
            r = rows[-1]
            print(f"{label:28s} window={window}: steady {r['steady_ms']:7.1f} ms/batch | client {r['client_ms']:6.1f}"
                  f"  link {r['link_ms']:6.1f} (paced send {r['send_ms']:6.1f})  cloud {r['cloud_ms']:6.1f} ms"
                  f" | slowest={slowest} ratio {ratio:.3f} {'OK' if ratio <= GOAL else 'MISS'} (goal <= {GOAL})"
                  f" | client+link {r['serial_ms']:.1f} ms, ACK wait {r['wait_ms']:.1f} ms | load {ld}", flush=True)
    footer = f"uptime at end: {st.uptime()}; bench wall time {time.perf_counter() - t_start:.0f} s"
    print(footer, flush=True)
    write_md(args, rows, header + ["data: " + data_note], footer)
    return 0


def st_parse_rate(rate: str) -> float:
    from tinycaffe.wire import parse_rate

    return parse_rate(rate)


def write_md(args, rows, header, footer) -> None:
    md = ["# Pipeline efficiency of split runs", "",
          "Written by `bench/pipeline_efficiency.py` (command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
          ".venv/bin/python bench/pipeline_efficiency.py " + " ".join(sys.argv[1:]) + "`).", ""]
    md += [f"- {h}" for h in header] + [f"- {footer}", ""]
    md += ["All times are medians per batch of 100 over the measured batches, from the same run: steady = "
           "client wall time per batch; client = steady minus time in the Sink; link = DATA frame bytes / rate; "
           "paced send = measured time in the Sink's paced send; cloud = cloud forward minus time in the Source; "
           f"ratio = steady / slowest stage (goal <= {GOAL}); client+link = the time when the send blocks the "
           "client for the whole transfer.", "",
           "| config | window | bytes/batch | steady ms | client ms | link ms | paced send ms | cloud ms | slowest "
           "| ratio | client+link ms | ACK wait ms | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['label']} | {r['window']} | {r['bytes']:,} | {r['steady_ms']:.1f} | {r['client_ms']:.1f} "
                  f"| {r['link_ms']:.1f} | {r['send_ms']:.1f} | {r['cloud_ms']:.1f} | {r['slowest']} "
                  f"| **{r['ratio']:.3f}** {'OK' if r['ratio'] <= GOAL else 'MISS'} | {r['serial_ms']:.1f} "
                  f"| {r['wait_ms']:.1f} | {r['load']} |")
    md += ["", "## Reading", ""] + [f"- {x}" for x in reading(rows)] + [""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline.md").write_text("\n".join(md))
    (args.out / "pipeline.json").write_text(json.dumps({"header": header, "footer": footer, "rows": rows}, indent=1))
    print("\n".join(reading(rows)))
    print(f"wrote {args.out / 'pipeline.md'}, pipeline.json")


def reading(rows) -> list[str]:
    out = []
    by = {}
    for r in rows:
        by.setdefault(r["label"], {})[r["window"]] = r
    for label, ws in by.items():
        parts = [f"window {w}: {r['steady_ms']:.0f} ms (ratio {r['ratio']:.2f}, client+link {r['serial_ms']:.0f} ms)"
                 for w, r in sorted(ws.items())]
        out.append(f"{label}: " + "; ".join(parts))
    out.append("The Sink's paced send (tinycaffe/wire/transport.py Transport.send -> Pacer.wait) sleeps in the "
               "client's own thread, so the emulated transfer never overlaps the client's compute: with the "
               "link or the client the slowest stage, a batch takes client + link, whatever the window. "
               "A larger window can only hide the cloud's compute and the ACK round trip, which stop-and-wait "
               "already overlaps (the Source ACKs on receipt).")
    return out


if __name__ == "__main__":
    sys.exit(main())
