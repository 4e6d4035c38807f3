"""Load on ``tinycaffe serve``: many clients at once, throughput, latency, memory, batching gain.

The server (``tinycaffe serve --keep-serving``, its own process) serves the
cloud half of the CIFAR-10 "full" net cut after pool1 (relu1 .. prob; each
client batch is ``--rows`` images of 32x16x16, ``prob`` comes back). A client
process runs C client threads, each a SinkSession sending ``--batches``
batches. With ``--depth 1`` each client waits for a batch's RESULT before it
sends the next (the study's stop-and-wait); with ``--depth D`` it keeps up to D
batches unanswered (the wire window stays 1, as the server's HELLO offers: the
next batch goes out once the previous one is ACKed, i.e. taken in by the
server's compute thread, so a batch of every client is waiting at the server
while it computes: what a camera streaming frames does).

``--rows 1,4`` runs both: 4-row batches, and 1-row batches (one frame at a
time), where a forward's fixed cost (Python per layer, kernel dispatch) is
large against its work, so gathering many clients' rows into one forward
should pay.

For each rows value, depth, client count (1, 4, 16, 32 by default) and each
batching setting (``--max-batch 1`` = one forward per client batch;
``--max-batch 32 --max-delay-ms 2`` = dynamic batching), it reports: client
batches per second (and rows per second), latency p50/p99 (send -> RESULT,
ms), the server process's CPU time per client batch (``/proc/PID/stat``, all
its threads: on a shared machine, steadier than the throughput), and the
server's RSS after a warm-up and after each of ``--waves`` identical waves of clients
(``/proc/PID/status``; the same server serves every wave, so memory that grows
per client or batch would keep growing wave after wave, while a bounded
cache -- blobs reshaped to the largest gathered batch, per-shape kernel plans,
malloc arenas of the reader threads -- levels off). Settings alternate over
``--rounds``; medians are reported.

    flock /tmp/tinycaffe-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        .venv/bin/python bench/serve_load.py [--rounds 3] [--rows 1,4] [--depth 1,2]

The server runs the tinycaffe of the tree this script sits in (its working
directory is that tree). ``--trees NAME=PATH,NAME=PATH`` serves from several
checkouts instead (e.g. the committed tree, from ``git archive HEAD tinycaffe
| tar -x -C /tmp/before``, against this one), alternating them within each
round; the clients always run this tree's wire code.
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
# A role run for another checkout (--trees) imports that checkout's tinycaffe.
sys.path.insert(0, os.environ.get("SERVE_LOAD_TREE", str(REPO)))

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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model: Path, extra: list[str], tree: Path = REPO) -> tuple[subprocess.Popen, int]:
    """``tinycaffe serve`` of the checkout ``tree`` (its working directory comes first on sys.path)."""
    cmd = [sys.executable, "-m", "tinycaffe.cli", "serve", str(model), "--keep-serving", "--quiet",
           "--max-clients", "64", "--threads", "1", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tree)
    line = proc.stdout.readline()
    m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"server did not start: {line}{proc.stdout.read()}")
    # Keep reading its output so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(m.group(1))


def client_role(argv: list[str]) -> int:
    """``serve_load.py _clients PORT C BATCHES ROWS DEPTH``: C threads; prints one JSON line."""
    port, clients, batches, rows, depth = (int(a) for a in argv)
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
            sent: list[float] = []  # send times of the batches not answered yet, oldest first
            for _ in range(batches):
                if len(sent) >= depth:
                    s.result(120)
                    lat[i].append(time.perf_counter() - sent.pop(0))
                sent.append(time.perf_counter())
                s.send({"pool1": x})
            while sent:
                s.result(120)
                lat[i].append(time.perf_counter() - sent.pop(0))
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


def forwards_role(argv: list[str]) -> int:
    """``serve_load.py _forwards ROWS FORWARDS SEED``, run in a checkout: the served net alone,
    one thread. CPU time (``time.thread_time``) per row of FORWARDS forwards whose gathered count
    changes every time (1..32 client batches of ROWS rows, as dynamic batching gathers them)
    against as many forwards at one fixed count with the same total of rows; then one client batch
    per forward, and 32 per forward (the forward's fixed cost); prints one JSON line."""
    rows, n, seed = (int(a) for a in argv)
    import tinycaffe
    from tinycaffe.kernels import set_num_threads

    set_num_threads(1)
    net = tinycaffe.Net(CLOUD.format(rows=rows), seed=1)
    net.layers[0].as_input()
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 33, n)
    fixed = round(float(counts.mean()))
    x = rng.standard_normal((32 * rows, 32, 16, 16)).astype(np.float32)
    for c in range(1, 33):  # warm-up: JIT and per-shape plans for every count
        net.forward(pool1=x[:c * rows])
    out = {"fixed_count": fixed, "tinycaffe": str(Path(tinycaffe.__file__).parent),
           "capacity_rule": hasattr(tinycaffe.Blob, "capacity")}
    # The forward's fixed cost: one client batch alone against 32 gathered (what batching saves).
    for label, seq in (("changing", counts), ("fixed", [fixed] * n), ("alone", [1] * n), ("gathered32", [32] * (n // 8))):
        t0 = time.thread_time()
        for c in seq:
            net.forward(pool1=x[:c * rows])
        out[label] = (time.thread_time() - t0) / (sum(int(c) for c in seq) * rows)
    print(json.dumps(out))
    return 0


def forwards_table(trees: dict[str, Path], rows_list: list[int], rounds: int, n: int) -> None:
    """Per tree and rows value: CPU us per row, changing vs fixed gathered count, and one client
    batch alone vs 32 gathered (medians)."""
    got: dict[tuple, list[dict]] = {}
    for r in range(rounds):
        for rows in rows_list:
            for label, tree in trees.items():  # alternate the trees within each round
                out = subprocess.run([sys.executable, __file__, "_forwards", str(rows), str(n), str(r)],
                                     capture_output=True, text=True, timeout=600, cwd=tree, check=False,
                                     env={**os.environ, "SERVE_LOAD_TREE": str(tree)})
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-2000:])
                got.setdefault((rows, label), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nforwards alone (one thread, CPU time per row, medians of {rounds} processes x {n} forwards); "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'rows':>4s} {'server':>8s} {'changing us/row':>16s} {'fixed us/row':>13s} {'changing/fixed':>15s} "
          f"{'1 batch us/row':>15s} {'32 batches us/row':>18s}")
    for (rows, label), res in got.items():
        ch = statistics.median(x["changing"] for x in res) * 1e6
        fx = statistics.median(x["fixed"] for x in res) * 1e6
        ratio = statistics.median(x["changing"] / x["fixed"] for x in res)
        alone = statistics.median(x["alone"] for x in res) * 1e6
        g32 = statistics.median(x["gathered32"] for x in res) * 1e6
        print(f"{rows:4d} {label:>8s} {ch:16.1f} {fx:13.1f} {ratio:15.2f} {alone:15.1f} {g32:18.1f}   "
              f"(tinycaffe from {res[0]['tinycaffe']}, capacity rule {res[0]['capacity_rule']}, "
              f"fixed count {res[0]['fixed_count']} client batches)")


def run_clients(port: int, clients: int, batches: int, rows: int, depth: int = 1) -> dict:
    out = subprocess.run([sys.executable, __file__, "_clients", str(port), str(clients), str(batches), str(rows),
                          str(depth)],
                         capture_output=True, text=True, timeout=1800, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_clients":
        return client_role(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_forwards":
        return forwards_role(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1,4,16,32")
    ap.add_argument("--batches", type=int, default=100, help="batches per client")
    ap.add_argument("--rows", default="4", help="images per client batch (a list: 1,4)")
    ap.add_argument("--depth", default="1", help="batches a client keeps unanswered (a list: 1,2; 1 = stop-and-wait)")
    ap.add_argument("--rounds", type=int, default=2, help="servers per setting and rows value")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--waves", type=int, default=3, help="identical waves of clients per server (RSS after each)")
    ap.add_argument("--settings", default="no batching,batching", help="which settings to run")
    ap.add_argument("--trees", default="", help="NAME=PATH,... checkouts whose server to run (default: this one)")
    ap.add_argument("--forwards-only", type=int, default=0, metavar="N",
                    help="no server: N forwards of the served net in one process per tree, the gathered count "
                         "changing every time vs fixed (CPU time per row)")
    args = ap.parse_args()
    trees = {k: Path(v).resolve() for k, v in (t.split("=", 1) for t in args.trees.split(",") if t)} \
        or {"this": REPO}
    counts, rows_list, depths = _ints(args.clients), _ints(args.rows), _ints(args.depth)

    from threadpoolctl import threadpool_info

    import tinycaffe

    blas = [(d.get("internal_api"), d.get("architecture"), d.get("num_threads")) for d in threadpool_info()]
    print(f"BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}; cores: {os.cpu_count()}")
    print(f"clients: tinycaffe from {Path(tinycaffe.__file__).parent}", flush=True)
    for label, tree in trees.items():
        code = "import tinycaffe; print(tinycaffe.__file__, hasattr(tinycaffe.Blob, 'capacity'))"
        probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree, check=False)
        print(f"server '{label}': {probe.stdout.strip() or probe.stderr[-300:]} (tinycaffe, Blob capacity rule)")
    if args.forwards_only:
        forwards_table(trees, rows_list, args.rounds, args.forwards_only)
        return 0
    settings = {"no batching": [], "batching": ["--max-batch", str(args.max_batch),
                                                 "--max-delay-ms", str(args.max_delay_ms)]}
    settings = {k: v for k, v in settings.items() if k in args.settings.split(",")}
    results: dict[tuple, list[dict]] = {}
    rss: dict[tuple, list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for rows in rows_list:
                model = Path(tmp) / f"cloud_{rows}.prototxt"
                model.write_text(CLOUD.format(rows=rows))
                for (label, tree), (name, extra) in ((t, st) for t in trees.items() for st in settings.items()):
                    # trees and settings alternate within each round
                    proc, port = start_server(model, extra, tree)
                    try:
                        run_clients(port, 1, 5, rows)  # warm-up: JIT compilation, first allocations
                        marks = [rss_mb(proc.pid)]
                        for wave in range(args.waves):  # the same load again and again: growth would show
                            for depth in depths:
                                for c in counts:
                                    cpu0 = cpu_s(proc.pid)
                                    res = run_clients(port, c, args.batches, rows, depth)
                                    # The server's CPU per client batch: less disturbed by other jobs
                                    # on the machine than the wall-clock throughput.
                                    res["cpu_per_batch"] = (cpu_s(proc.pid) - cpu0) / max(res["n"], 1)
                                    if res["errors"]:
                                        raise RuntimeError(f"{label} {name}, {rows} rows, {c} clients: {res['errors']}")
                                    results.setdefault((rows, depth, label, name, c), []).append(res)
                            marks.append(rss_mb(proc.pid))
                        rss.setdefault((rows, label, name), []).append(tuple(marks))
                    finally:
                        proc.terminate()
                        proc.wait(30)
                    print(f"round {r + 1}/{args.rounds} rows {rows} {label} {name}: done", flush=True)
    print(f"\nclient batch = ROWS x 32x16x16 float32, {args.batches} batches per client, "
          f"{args.rounds} rounds x {args.waves} waves (medians); server 1 thread; client threads in one other process; "
          f"batching = --max-batch {args.max_batch} --max-delay-ms {args.max_delay_ms:g}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'rows':>4s} {'depth':>5s} {'server':>8s} {'setting':12s} {'clients':>7s} {'batches/s':>10s} "
          f"{'rows/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'srv CPU ms/batch':>17s}")
    thr: dict[tuple, float] = {}
    cpu: dict[tuple, float] = {}
    order = list(trees)
    for key in sorted(results, key=lambda k: (k[0], k[1], order.index(k[2]), k[3] != "no batching", k[4])):
        rows, depth, label, name, c = key
        res = results[key]
        thr[key] = statistics.median(x["n"] / x["wall"] for x in res)
        cpu[key] = statistics.median(x["cpu_per_batch"] for x in res)
        print(f"{rows:4d} {depth:5d} {label:>8s} {name:12s} {c:7d} {thr[key]:10.1f} {thr[key] * rows:9.1f} "
              f"{1000 * statistics.median(x['p50'] for x in res):8.2f} "
              f"{1000 * statistics.median(x['p99'] for x in res):8.2f} "
              f"{1000 * statistics.median(x['cpu_per_batch'] for x in res):17.3f}")
    for rows in rows_list:
        for depth in depths:
            for label in trees:
                if len(settings) == 2:
                    print(f"batching gain, server {label}, {rows} rows, depth {depth} (batching / no batching): "
                          + ", ".join(f"{c} clients x{thr[(rows, depth, label, 'batching', c)] / thr[(rows, depth, label, 'no batching', c)]:.2f}"
                                      for c in counts)
                          + "; server CPU per batch, batching / no batching: "
                          + ", ".join(f"x{cpu[(rows, depth, label, 'batching', c)] / cpu[(rows, depth, label, 'no batching', c)]:.2f}"
                                      for c in counts))
            for label in order[1:]:
                for name in settings:
                    print(f"server {label} / {order[0]}, {name}, {rows} rows, depth {depth}: "
                          + ", ".join(f"{c} clients x{thr[(rows, depth, label, name, c)] / thr[(rows, depth, order[0], name, c)]:.2f}"
                                      for c in counts))
    wave = f"{sum(counts) * len(depths)} clients, {sum(counts) * len(depths) * args.batches} batches"
    for (rows, label, name), vals in rss.items():
        marks = [statistics.median(v[k] for v in vals) for k in range(args.waves + 1)]
        steps = ", ".join(f"{marks[k + 1] - marks[k]:+.1f}" for k in range(args.waves))
        print(f"server RSS ({label}, {rows} rows, {name}, medians over rounds): after warm-up {marks[0]:.1f} MB; "
              f"after each wave ({wave}) {' '.join(f'{m:.1f}' for m in marks[1:])} MB; growth per wave {steps} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
