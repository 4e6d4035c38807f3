"""CPU time of the wire's small-frame round trip: 32 KB DATA -> ACK -> 40-byte RESULT.

Both ends (SinkSession and SourceSession, the real client and server code) run in
ONE thread of one process over loopback TCP, so process CPU time per round trip is
the wire's own cost (Python + system calls), with no thread wake-ups or scheduler
noise in it. Each tree (``--trees name=PATH,...``: the ``tinycaffe`` package found
under PATH) runs in its own process, alternating over ``--rounds``; medians are
reported, with per-piece wall times (perf_counter, same thread) from the last round.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/wire_frame_cpu.py \\
        --trees before=/tmp/i_before,after=. --rounds 5 --frames 3000
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading

_CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import tinycaffe.wire as w
from tinycaffe.wire import Hello, SinkSession, SourceServer, specs
frames, checksum = int(sys.argv[2]), sys.argv[3]
x = np.random.default_rng(0).standard_normal((1, 32, 16, 16), dtype=np.float32)  # 32 KB: pool1 at batch 1
out = {"ip1": np.zeros((1, 10), np.float32)}
algos = (checksum,) if checksum != "none" else ("crc32",)
s, r = specs({"pool1": x}), specs(out)
sink_h = Hello("sink", "edge_cut", s, returns=r, checksum=checksum != "none", checksums=algos)
src_h = Hello("source", "cloud_in", s, returns=r, checksum=checksum != "none", checksums=algos)
server = SourceServer(src_h, timeout=30.0)
box = {}
t = threading.Thread(target=lambda: box.setdefault("s", server.accept()))
t.start()
sink = SinkSession.connect(*server.address, sink_h, timeout=30.0)
t.join()
src = box["s"]
sink.transport.interruptible = False  # one thread: the client writes itself (no helper thread)
pieces = {"sink.send": [], "source.receive+ack": [], "source.send_result": [], "sink.result": []}
def trip(timed):
    pc = time.perf_counter
    t0 = pc(); sink.send({"pool1": x}); t1 = pc()
    f = src.receive(); t2 = pc()
    src.send_result(f.seq, out); t3 = pc()
    sink.result(); t4 = pc()
    if timed:
        for k, a, b in (("sink.send", t0, t1), ("source.receive+ack", t1, t2),
                        ("source.send_result", t2, t3), ("sink.result", t3, t4)):
            pieces[k].append((b - a) * 1e6)
for _ in range(200):
    trip(False)
c0 = time.process_time()
for _ in range(frames):
    trip(False)
cpu = (time.process_time() - c0) / frames * 1e6
for _ in range(min(frames, 1000)):
    trip(True)
sink.transport.close(); src.transport.close(); server.close()  # no BYE: one thread cannot wait for both
print(json.dumps({"cpu_us": cpu, "pieces": {k: sorted(v)[len(v) // 2] for k, v in pieces.items()}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", default="before=/tmp/i_before,after=.")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--checksum", default="xxh3", choices=["xxh3", "crc32", "none"])
    args = ap.parse_args()
    trees = [t.split("=", 1) for t in args.trees.split(",")]
    try:
        import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)
        from threadpoolctl import threadpool_info

        blas = [(i.get("internal_api"), i.get("architecture")) for i in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"BLAS: {blas} (not used here); load: {os.getloadavg()}")
    print(f"{args.frames} round trips (32 KB DATA + ACK + 40 B RESULT, checksum {args.checksum}) per round, "
          f"{args.rounds} rounds, trees alternating: {trees}")
    got: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for r in range(args.rounds):
        for name, path in trees:
            res = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(path), str(args.frames),
                                  args.checksum], check=False, capture_output=True, text=True, timeout=600)
            if res.returncode:
                print(res.stderr, file=sys.stderr)
                return 1
            got[name].append(json.loads(res.stdout))
            print(f"round {r} {name}: {got[name][-1]['cpu_us']:.1f} us CPU per round trip")
    first = statistics.median(g["cpu_us"] for g in got[trees[0][0]])
    for name, _ in trees:
        med = statistics.median(g["cpu_us"] for g in got[name])
        pcs = {k: round(statistics.median(g["pieces"][k] for g in got[name]), 1) for k in got[name][0]["pieces"]}
        print(f"{name}: median CPU {med:.1f} us per round trip (x{med / first:.2f} of {trees[0][0]}); "
              f"median wall per piece, us: {pcs}")
    print(f"load at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "main"
    sys.exit(main())
