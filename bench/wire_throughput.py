"""Loopback throughput of the tinycaffe wire vs a plain socket loop, and pacing accuracy.

One sender (this process) and one receiver (a child process, or a thread with
``--threads``) move a 3.2 MB float32 blob (100x32x16x16: a CIFAR-10 batch cut
after pool1) N times, each acknowledged:

* ``plain``: ``sendall`` of the bytes, ``recv_into`` a preallocated buffer, 8-byte ack;
* ``wire wN crc``: SinkSession -> SourceSession, window N, CRC32 on payloads;
* ``wire wN nocrc``: the same with checksums switched off on both sides.

Variants run interleaved, ``--rounds`` times; medians are reported. Then the
same blob is sent paced at ``--rate`` and the time to its ACK is compared
with frame_size / rate.

    .venv/bin/python bench/wire_throughput.py [--repeats 50] [--rounds 5] [--rate 10Mbps]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinycaffe.wire import HEADER_SIZE, Endpoint, Hello, SinkSession, SourceServer, parse_rate, specs  # noqa: E402
from tinycaffe.wire.blobs import encode_blobs  # noqa: E402
from tinycaffe.wire.dtypes import Encoding  # noqa: E402
from tinycaffe.wire.session import SourceSession  # noqa: E402
from tinycaffe.wire.transport import Transport, accept, listen  # noqa: E402

SHAPE = (100, 32, 16, 16)
TIMEOUT = 30.0


def blob() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)


def hellos(window: int, checksum: bool) -> tuple[Hello, Hello]:
    s = specs({"pool1": np.empty(SHAPE, np.float32)})
    return (
        Hello("sink", "edge_cut", s, window=window, checksum=checksum),
        Hello("source", "cloud_in", s, wire="any", window=window, checksum=checksum),
    )


# ---- receivers (run in a child process or a thread) ------------------------


def plain_receiver(listener: socket.socket, n: int) -> None:
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = np.empty(SHAPE, np.float32)
    view = memoryview(buf.reshape(-1).view(np.uint8))
    for _ in range(n):
        got = 0
        while got < len(view):
            k = sock.recv_into(view[got:])
            if not k:
                raise RuntimeError("sender closed early")
            got += k
        sock.sendall(b"ACK00000")
    sock.close()


def wire_receiver(listener: socket.socket, n: int, window: int, checksum: bool) -> None:
    _, hs = hellos(window, checksum)
    sock, peer = accept(listener, TIMEOUT)
    session = SourceSession(Transport(sock, peer, timeout=TIMEOUT), Endpoint(hs))
    session.handshake()
    session.targets = {"pool1": np.empty(SHAPE, np.float32)}  # receive in place, no copy
    count = 0
    while session.receive() is not None:
        count += 1
    assert count == n, count


def start(target, *args, threads: bool):
    if threads:
        worker = threading.Thread(target=target, args=args, daemon=True)
    else:
        worker = mp.get_context("fork").Process(target=target, args=args, daemon=True)
    worker.start()
    return worker


# ---- senders ----------------------------------------------------------------


def run_plain(x: np.ndarray, n: int, threads: bool) -> float:
    listener = listen("127.0.0.1", 0)
    worker = start(plain_receiver, listener, n, threads=threads)
    sock = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    view = memoryview(x.reshape(-1).view(np.uint8))
    ack = bytearray(8)
    t0 = time.perf_counter()
    for _ in range(n):
        sock.sendall(view)
        got = 0
        while got < 8:
            got += sock.recv_into(memoryview(ack)[got:])
    dt = time.perf_counter() - t0
    sock.close()
    worker.join(TIMEOUT)
    listener.close()
    return n * x.nbytes / dt / 1e6


def run_wire(x: np.ndarray, n: int, window: int, checksum: bool, threads: bool) -> float:
    listener = listen("127.0.0.1", 0)
    worker = start(wire_receiver, listener, n, window, checksum, threads=threads)
    hk, _ = hellos(window, checksum)
    session = SinkSession.connect(*listener.getsockname()[:2], hk, timeout=TIMEOUT)
    t0 = time.perf_counter()
    for _ in range(n):
        session.send({"pool1": x})
    session.flush()
    dt = time.perf_counter() - t0
    session.close()
    worker.join(TIMEOUT)
    listener.close()
    return n * x.nbytes / dt / 1e6


def run_paced(x: np.ndarray, rate_text: str, repeats: int) -> list[tuple[float, float]]:
    """(measured seconds, expected seconds) per paced send, each timed up to its ACK."""
    rate = parse_rate(rate_text)
    hk, hs = hellos(1, True)
    server = SourceServer(hs, timeout=TIMEOUT)

    def serve() -> None:
        s = server.accept()
        while s.receive() is not None:
            pass

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    session = SinkSession.connect(*server.address, hk, timeout=TIMEOUT, rate=rate)
    frame = HEADER_SIZE + sum(len(b) for b in encode_blobs({"pool1": x}, Encoding.RAW))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.send({"pool1": x})
        session.flush()
        out.append((time.perf_counter() - t0, frame / rate))
        time.sleep(0.05)  # let the emulated link go idle: each transfer starts fresh
    session.close()
    worker.join(TIMEOUT)
    server.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=50, help="blobs sent per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="measurements per variant (median reported)")
    ap.add_argument("--rate", default="10Mbps", help="emulated bandwidth for the pacing check")
    ap.add_argument("--pace-repeats", type=int, default=3)
    ap.add_argument("--threads", action="store_true", help="receiver in a thread instead of a process")
    args = ap.parse_args()

    x = blob()
    variants = {
        "plain sendall/recv_into": lambda: run_plain(x, args.repeats, args.threads),
        "wire w1 crc": lambda: run_wire(x, args.repeats, 1, True, args.threads),
        "wire w4 crc": lambda: run_wire(x, args.repeats, 4, True, args.threads),
        "wire w1 nocrc": lambda: run_wire(x, args.repeats, 1, False, args.threads),
        "wire w4 nocrc": lambda: run_wire(x, args.repeats, 4, False, args.threads),
    }
    results: dict[str, list[float]] = {k: [] for k in variants}
    print(f"blob {SHAPE} float32 = {x.nbytes} bytes, {args.repeats} sends x {args.rounds} rounds, "
          f"receiver in a {'thread' if args.threads else 'process'}")
    for _ in range(args.rounds):
        for name, fn in variants.items():
            results[name].append(fn())
    base = statistics.median(results["plain sendall/recv_into"])
    print(f"{'variant':26s} {'median MB/s':>12s} {'ratio':>7s}   all rounds (MB/s)")
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"{name:26s} {med:12.0f} {med / base:7.2f}   {' '.join(f'{v:.0f}' for v in vals)}")

    paced = run_paced(x, args.rate, args.pace_repeats)
    print(f"pacing at {args.rate} ({parse_rate(args.rate):.0f} B/s), {args.pace_repeats} sends:")
    for got, want in paced:
        print(f"  measured {got:.4f} s, expected {want:.4f} s, error {100 * (got - want) / want:+.2f}%")
    med_err = statistics.median(100 * (g - w) / w for g, w in paced)
    print(f"  median error {med_err:+.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
