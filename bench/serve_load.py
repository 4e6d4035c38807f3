"""Load on ``tinycaffe serve``: many clients at once, throughput, latency, memory, batching gain.

The server (``tinycaffe serve --keep-serving``, its own process) serves the
cloud half of the CIFAR-10 "full" net cut after pool1 (relu1 .. prob; each
client batch is ``--rows`` images of 32x16x16, ``prob`` comes back). A client
process runs C client threads, each a SinkSession sending ``--batches``
batches and waiting for each RESULT (the study's stop-and-wait).

For each client count (1, 4, 16, 32 by default) and each batching setting
(``--max-batch 1`` = one forward per client batch; ``--max-batch 32
--max-delay-ms 2`` = dynamic batching), it reports: client batches per
second, latency p50/p99 (send -> RESULT, ms), and the server's RSS after a
warm-up and after each of ``--waves`` identical waves of clients
(``/proc/PID/status``; the same server serves every wave, so memory that grows
per client or batch would keep growing wave after wave, while a bounded
cache -- blobs reshaped to the largest gathered batch, per-shape kernel plans,
malloc arenas of the reader threads -- levels off). Settings alternate over
``--rounds``; medians are reported.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/serve_load.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLOUD = """
layer {{ name: "src" type: "Source" top: "pool1" source_param {{ port: 0 return_top: "prob" }}
  input_param {{ shape {{ dim: [{rows}, 32, 16, 16] }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }}
layer {{ name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
  lrn_param {{ local_size: 3 alpha: 5e-05 beta: 0.75 norm_region: WITHIN_CHANNEL }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param {{ num_output: 32 pad: 2 kernel_size: 5 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }}
layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param {{ pool: AVE kernel_size: 3 stride: 2 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  inner_product_param {{ num_output: 10 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }}
"""


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


def start_server(model: Path, extra: list[str]) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "tinycaffe.cli", "serve", str(model), "--keep-serving", "--quiet",
           "--max-clients", "64", "--threads", "1", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    line = proc.stdout.readline()
    m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"server did not start: {line}{proc.stdout.read()}")
    # Keep reading its output so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(m.group(1))


def client_role(argv: list[str]) -> int:
    """``serve_load.py _clients PORT C BATCHES ROWS``: C threads; prints one JSON line."""
    port, clients, batches, rows = (int(a) for a in argv)
    from tinycaffe.wire import Hello, SinkSession, specs, wanted

    hello = Hello("sink", "edge", specs([("pool1", "float32", (rows, 32, 16, 16))]), returns=wanted(["prob"]))
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    go = threading.Event()

    def one(i: int) -> None:
        try:
            x = np.random.default_rng(i).standard_normal((rows, 32, 16, 16)).astype(np.float32)
            s = SinkSession.connect("127.0.0.1", port, hello, timeout=120, connect_timeout=60, ack_timeout=120)
            go.wait()
            for _ in range(batches):
                t0 = time.perf_counter()
                s.send({"pool1": x})
                s.result(120)
                lat[i].append(time.perf_counter() - t0)
            s.close(120)
        except Exception as e:  # reported in the JSON
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every client connected and handshaken before the clock starts
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = sorted(v for row in lat for v in row)
    print(json.dumps({"wall": wall, "n": len(flat), "errors": errors[:3],
                      "p50": flat[len(flat) // 2] if flat else None,
                      "p99": flat[min(len(flat) - 1, int(0.99 * len(flat)))] if flat else None}))
    return 0


def run_clients(port: int, clients: int, batches: int, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "_clients", str(port), str(clients), str(batches), str(rows)],
                         capture_output=True, text=True, timeout=1800, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_clients":
        return client_role(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1,4,16,32")
    ap.add_argument("--batches", type=int, default=100, help="batches per client")
    ap.add_argument("--rows", type=int, default=4, help="images per client batch")
    ap.add_argument("--rounds", type=int, default=2, help="servers per setting; each serves two waves")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--waves", type=int, default=3, help="identical waves of clients per server (RSS after each)")
    ap.add_argument("--settings", default="no batching,batching", help="which settings to run")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]

    from threadpoolctl import threadpool_info

    blas = [(d.get("internal_api"), d.get("architecture"), d.get("num_threads")) for d in threadpool_info()]
    print(f"BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}; cores: {os.cpu_count()}")
    settings = {"no batching": [], "batching": ["--max-batch", str(args.max_batch),
                                                 "--max-delay-ms", str(args.max_delay_ms)]}
    settings = {k: v for k, v in settings.items() if k in args.settings.split(",")}
    rows: dict[tuple, list[dict]] = {}
    rss: dict[str, list[tuple[float, float]]] = {k: [] for k in settings}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "cloud.prototxt"
        model.write_text(CLOUD.format(rows=args.rows))
        for r in range(args.rounds):
            for name, extra in settings.items():  # alternate the settings within each round
                proc, port = start_server(model, extra)
                try:
                    run_clients(port, 1, 5, args.rows)  # warm-up: JIT compilation, first allocations
                    marks = [rss_mb(proc.pid)]
                    for wave in range(args.waves):  # the same load again and again: growth per client would show
                        for c in counts:
                            res = run_clients(port, c, args.batches, args.rows)
                            if res["errors"]:
                                raise RuntimeError(f"{name}, {c} clients: {res['errors']}")
                            rows.setdefault((name, c), []).append(res)
                        marks.append(rss_mb(proc.pid))
                    rss[name].append(tuple(marks))
                finally:
                    proc.terminate()
                    proc.wait(30)
                print(f"round {r + 1}/{args.rounds} {name}: done", flush=True)
    print(f"\nclient batch = {args.rows} x 32x16x16 float32, {args.batches} batches per client, "
          f"{args.rounds} rounds x {args.waves} waves (medians); server 1 thread; client threads in one other process; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'setting':12s} {'clients':>7s} {'batches/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s}")
    thr: dict[tuple, float] = {}
    for (name, c), res in rows.items():
        thr[(name, c)] = statistics.median(r["n"] / r["wall"] for r in res)
        print(f"{name:12s} {c:7d} {thr[(name, c)]:10.1f} {1000 * statistics.median(r['p50'] for r in res):8.2f} "
              f"{1000 * statistics.median(r['p99'] for r in res):8.2f}")
    if len(settings) == 2:
        print("batching gain (throughput batching / no batching): "
              + ", ".join(f"{c} clients x{thr[('batching', c)] / thr[('no batching', c)]:.2f}" for c in counts))
    wave = f"{sum(counts)} clients, {sum(counts) * args.batches} batches"
    for name, vals in rss.items():
        marks = [statistics.median(v[k] for v in vals) for k in range(args.waves + 1)]
        steps = ", ".join(f"{marks[k + 1] - marks[k]:+.1f}" for k in range(args.waves))
        print(f"server RSS ({name}, medians over rounds): after warm-up {marks[0]:.1f} MB; after each wave "
              f"({wave}) {' '.join(f'{m:.1f}' for m in marks[1:])} MB; growth per wave {steps} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
