"""Pipeline efficiency of a split run: steady-state time per batch vs its slowest stage.

A split net is a three-stage pipeline: client compute (Data .. cut layer),
the link (frame bytes / rate), cloud compute (the rest of the net). If the
stages overlapped perfectly, a batch would take as long as the slowest stage.
For each configuration this runs the client and the cloud as separate
processes over loopback TCP (Sink paced at the given rate) and measures, in
the same run, over the same measured batches (after warm-up):

* steady state: the pipeline's period, the largest of the periods seen by the
  client (mean wall time per batch), the link ((end of the last DATA frame's
  send - end of the first measured one's) / (measured batches - 1)) and the
  cloud (mean forward time, its Source's waiting included): equal in a steady
  state, while a backlog that built up during warm-up drains one side looks
  faster than the pipeline is;
* client compute: the client's forward time minus the time in the Sink layer;
* link: DATA frame bytes / rate (the measured paced send time is shown too);
* cloud compute: the cloud's forward time minus the time in its Source layer.

The ratio is steady / the slowest stage, both as means over the measured
batches (a pipeline cannot beat its slowest stage's mean; medians are shown
beside). Goal: ratio <= 1.10. Windows: 1 (the study's stop-and-wait: the
Sink sends, paced, in the net's thread and waits for the ACK) and 4 (the Sink
hands each batch to a background sender thread, so the client's compute
overlaps the transfer).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/pipeline_efficiency.py
    ... bench/pipeline_efficiency.py --iterations 5 --configs 1,2     # quicker

Writes bench/results/pipeline.md (and pipeline.json).
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


def mean(xs) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=10, help="measured batches per run")
    ap.add_argument("--warmup", type=int, default=2, help="batches not measured (at least 1)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/kernel threads per process")
    ap.add_argument("--windows", default="1,4", help="Sink windows to run")
    ap.add_argument("--configs", default="", help="indexes into the config list (default all), e.g. 0,1")
    ap.add_argument("--out", type=Path, default=st.RESULTS)
    args = ap.parse_args(argv)
    args.warmup = max(1, args.warmup)
    args.iterations = max(2, args.iterations)
    windows = [int(w) for w in args.windows.split(",") if w.strip()]
    configs = [CONFIGS[int(i)] for i in args.configs.split(",")] if args.configs else CONFIGS
    batches = args.warmup + args.iterations
    t_start = time.perf_counter()
    header = [
        f"bench/pipeline_efficiency.py, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        *st.machine_lines(),
        f"uptime at start: {st.uptime()}",
        f"NOTE: client and cloud are separate processes on the SAME {os.cpu_count()}-CPU machine "
        f"({args.threads} thread(s) each), loopback TCP, Sink-paced link.",
        f"repeats: {args.warmup} warm-up + {args.iterations} measured batches of 100 per run; "
        "ratio from means over the measured batches, medians shown beside.",
    ]
    for line in header:
        print(line, flush=True)
    st.TMP.mkdir(parents=True, exist_ok=True)
    test_lmdb, mean_file, data_note = st.prepare_data(st.TMP)
    print("data: " + data_note, flush=True)
    head = st.mkp.data_layers(test_lmdb, test_lmdb, mean_file)
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
            w, k = args.warmup, args.iterations
            ends = pb["send_end"]
            # The period seen by each process over the measured batches. In steady state they are equal;
            # while a backlog fills or drains (e.g. after the cloud's slow first, compiling forward) one side
            # looks faster than the pipeline really is, so the largest is taken. The link's period counts
            # from the end of the first measured frame's send: the interval before it still holds warm-up stalls.
            periods = {
                "link": (ends[-1] - ends[w]) / (len(ends) - 1 - w),
                "client": mean(pb["total"][w:]),
                "cloud": mean(cl["total"][w:]),
            }
            steady_side = max(periods, key=periods.get)
            steady = periods[steady_side]
            client_each = [t - s for t, s in zip(pb["total"][w:], pb["sink"][w:])]
            cloud_each = [t - s for t, s in zip(cl["total"][w:], cl["source"][w:])]
            nbytes = med(pb["bytes"][w:])
            link = nbytes / rate_Bps
            stages = {"client": mean(client_each), "link": link, "cloud": mean(cloud_each)}
            slowest = max(stages, key=stages.get)
            ratio = steady / stages[slowest]
            rows.append(dict(
                label=label, after=after, rate=rate, window=window, load=ld, bytes=int(nbytes),
                steady_ms=1e3 * steady, steady_side=steady_side,
                periods_ms={k: 1e3 * v for k, v in periods.items()}, client_wall_ms=1e3 * med(pb["total"][w:]),
                client_ms=1e3 * stages["client"], client_med_ms=1e3 * med(client_each),
                link_ms=1e3 * link, send_ms=1e3 * med(pb["send"][w:]),
                cloud_ms=1e3 * stages["cloud"], cloud_med_ms=1e3 * med(cloud_each),
                slowest=slowest, ratio=ratio, serial_ms=1e3 * (stages["client"] + link),
                measured=k, cloud_batches=len(cl["total"]),
                raw={"client": pb, "cloud": cl},
                sink_ms=1e3 * med(pb["sink"][w:])))
            r = rows[-1]
            print(f"{label:27s} w={window}: steady {r['steady_ms']:6.1f} ms/batch (periods: "
                  + " ".join(f"{k} {v:.1f}" for k, v in r["periods_ms"].items()) + f") | client {r['client_ms']:5.1f} "
                  f"(med {r['client_med_ms']:5.1f})  link {r['link_ms']:6.1f} (paced send med {r['send_ms']:6.1f})  "
                  f"cloud {r['cloud_ms']:5.1f} (med {r['cloud_med_ms']:5.1f}) | slowest={slowest} ratio "
                  f"{ratio:.3f} {'OK' if ratio <= GOAL else 'MISS'} | client+link {r['serial_ms']:.1f} | client wall "
                  f"med {r['client_wall_ms']:.1f} | load {ld}", flush=True)
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
    md += ["Per batch of 100, from the same run and the same measured batches: steady = the pipeline's period, "
           "the largest of the periods seen by the client (mean wall time per batch), the link (time between the "
           "ends of the first and last measured DATA frames' sends / (batches - 1)) and the cloud (mean forward "
           "time incl. the Source's wait), shown as 'periods c/l/cl'; client = client forward minus the Sink layer; link = DATA frame bytes / rate; cloud = "
           "cloud forward minus the Source layer; stage figures are means (medians in brackets); "
           f"ratio = steady / slowest stage mean (goal <= {GOAL}); client+link = client + link, the period when "
           "the send blocks the client for the whole transfer; paced send = median measured time in the Sink's "
           "send; client wall = median client wall time per batch; in Sink = median time the client net spends in the "
           "Sink layer (window 1: send + ACK wait; window 4: handing the batch to the sender thread, waiting when "
           "window + 1 batches are queued).",
           ""]
    md += [
           "| config | window | bytes/batch | steady ms | periods c / l / cl ms | slowest | ratio | client ms | link ms | cloud ms "
           "| client+link ms | paced send ms | client wall ms | in Sink ms | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pr = r["periods_ms"]
        md.append(f"| {r['label']} | {r['window']} | {r['bytes']:,} | {r['steady_ms']:.1f} "
                  f"| {pr['client']:.0f} / {pr['link']:.0f} / {pr['cloud']:.0f} | {r['slowest']} "
                  f"| **{r['ratio']:.3f}** {'OK' if r['ratio'] <= GOAL else 'MISS'} "
                  f"| {r['client_ms']:.1f} ({r['client_med_ms']:.1f}) | {r['link_ms']:.1f} "
                  f"| {r['cloud_ms']:.1f} ({r['cloud_med_ms']:.1f}) | {r['serial_ms']:.1f} | {r['send_ms']:.1f} "
                  f"| {r['client_wall_ms']:.1f} | {r['sink_ms']:.1f} | {r['load']} |")
    md += ["", "## Reading", ""] + [f"- {x}" for x in reading(rows)] + [""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline.md").write_text("\n".join(md))
    (args.out / "pipeline.json").write_text(json.dumps({"header": header, "footer": footer, "rows": rows}))
    print("\n".join(reading(rows)))
    print(f"wrote {args.out / 'pipeline.md'}, pipeline.json")


def reading(rows) -> list[str]:
    out = []
    by = {}
    for r in rows:
        by.setdefault(r["label"], {})[r["window"]] = r
    for label, ws in by.items():
        parts = [f"window {w}: {r['steady_ms']:.0f} ms (ratio {r['ratio']:.2f}, client+link {r['serial_ms']:.0f} ms)"
                 for w, r in ws.items()]
        out.append(f"{label}: " + "; ".join(parts))
    for label, ws in by.items():
        if 1 in ws and 4 in ws:
            a, b = ws[1], ws[4]
            serial = abs(a["steady_ms"] / a["serial_ms"] - 1) <= 0.10
            out.append(f"{label}: window 4 vs 1: {b['steady_ms']:.0f} vs {a['steady_ms']:.0f} ms/batch "
                       f"(window 1 / window 4 = {a['steady_ms'] / b['steady_ms']:.2f}); window 1 vs client+link: "
                       f"{a['steady_ms']:.0f} vs {a['serial_ms']:.0f} ms"
                       + (" (within 10%: stop-and-wait serialises the client's compute and the transfer)"
                          if serial else ""))
    return out


if __name__ == "__main__":
    sys.exit(main())
