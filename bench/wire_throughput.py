"""Loopback throughput of the tinycaffe wire against a plain socket doing the same work, and pacing accuracy.

What is compared (every measurement in a fresh pair of processes, sender and
receiver, forked from this one; nothing is shared between measurements):

* ``plain wN``: the baseline. The sender ``sendall``s each message (exactly
  the frame's payload bytes, one message per frame) and the receiver
  ``recv_into``s it whole into one preallocated array, then answers an 8-byte
  ACK; the sender keeps at most N messages un-ACKed (N=1: stop-and-wait, as
  the study's client). TCP_NODELAY on both ends, default socket buffers, a
  socket timeout on both ends (as the wire has).
* ``wire wN xxh3|crc32|none``: SinkSession -> SourceSession (the real client
  and server session code, the receiver landing blobs in a preallocated
  target), window N, with the XXH3 payload checksum (what two sides with
  ``xxhash`` negotiate), CRC32, or no payload checksum.
* ``--congestion cubic`` (say) sets that TCP congestion control on every
  socket of every variant, both ends; by default the system's is used (printed).
  On this VM it is BBR, which paces even on loopback: a plain socket then
  moves 3.3 MB frames at about half the rate it reaches with cubic, so the
  wire's fixed per-frame cost weighs less in the ratio. Quote ratios with the
  congestion control they were taken under.
* ``--tls`` adds ``plain-tls w1`` (two ``ssl.SSLSocket``s, same pattern) and
  ``tls w1 xxh3|none`` (the wire over TLS: the server side reads through
  TLSStream, as ``tinycaffe serve`` does; with ``none`` TLS's own record MAC is
  the only integrity check).

Payloads (``--sizes``): pool1 of cifar10_full at batch 100 (100x32x16x16
float32, 3.3 MB), a 4-channel cut at batch 100 (100x4x16x16, 410 KB) and
pool1 at batch 1 (1x32x16x16, 32 KB). Each measurement moves about
``--mb`` MB (50..4000 frames) after a few untimed warm-up frames.

Rounds alternate the variants (in a shuffled order, seeded, so none always
runs first); per size the table gives each variant's median MB/s over the
rounds, the median over rounds of its ratio to the plain peer with the same
window measured in the same round (the figure to quote on a shared machine),
and the ratio of the best rounds (best MB/s over best MB/s of the plain peer:
the least disturbed runs of each, as ``timeit`` takes the minimum).
Then the pacing check: a blob sent paced at ``--rate``, time to its ACK vs
frame_size / rate.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/wire_throughput.py [--rounds 7] [--tls]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
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

SIZES = {
    "pool1-b100": (100, 32, 16, 16),
    "c4-b100": (100, 4, 16, 16),
    "pool1-b1": (1, 32, 16, 16),
}
TIMEOUT = 60.0
WARMUP = 5
#: TCP congestion control set on every socket of every variant, both ends (--congestion); None: the system's.
CONGESTION: str | None = None
_ACK = b"ACK00000"


def blob(shape) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def hellos(shape, window: int, checksum: str | None) -> tuple[Hello, Hello]:
    """``checksum``: "crc32", "xxh3" or None (off on both sides)."""
    s = specs({"pool1": np.empty(shape, np.float32)})
    algos = (checksum,) if checksum else ("crc32",)
    return (
        Hello("sink", "edge_cut", s, window=window, checksum=bool(checksum), checksums=algos),
        Hello("source", "cloud_in", s, wire="any", window=window, checksum=bool(checksum), checksums=algos),
    )


def _nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _congestion(sock)


def _congestion(sock: socket.socket) -> socket.socket:
    """Apply --congestion to a TCP socket (an SSLSocket is one too)."""
    if CONGESTION is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CONGESTION.encode())
    return sock


def system_congestion() -> str:
    try:
        return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    except OSError:
        return "unknown"


# ---- one measurement: (receiver, sender) in two fresh processes --------------------


def plain_receiver(listener: socket.socket, shape, frames: int, tls_pem: str | None) -> None:
    sock, _ = listener.accept()
    _nodelay(sock)
    sock.settimeout(TIMEOUT)
    if tls_pem is not None:
        from tinycaffe.wire.tls import server_context

        sock = server_context(tls_pem).wrap_socket(sock, server_side=True)
    buf = np.empty(shape, np.float32)
    view = memoryview(buf.reshape(-1).view(np.uint8))
    for _ in range(frames):
        got = 0
        while got < len(view):
            k = sock.recv_into(view[got:])
            if not k:
                raise RuntimeError("sender closed early")
            got += k
        sock.sendall(_ACK)
    sock.close()


def plain_sender(address, shape, frames: int, window: int, tls_ctx) -> float:
    sock = _nodelay(socket.create_connection(address, timeout=TIMEOUT))
    if tls_ctx is not None:
        sock = tls_ctx.wrap_socket(sock, server_hostname=address[0])
    x = blob(shape)
    view = memoryview(x.reshape(-1).view(np.uint8))
    ack = bytearray(len(_ACK))
    ack_view = memoryview(ack)

    def read_ack() -> None:
        got = 0
        while got < len(ack):
            k = sock.recv_into(ack_view[got:])
            if not k:
                raise RuntimeError("receiver closed early")
            got += k

    def burst(n: int) -> None:
        in_flight = 0
        for _ in range(n):
            if in_flight == window:
                read_ack()
                in_flight -= 1
            sock.sendall(view)
            in_flight += 1
        for _ in range(in_flight):
            read_ack()

    burst(WARMUP)
    t0 = time.perf_counter()
    burst(frames - WARMUP)
    dt = time.perf_counter() - t0
    sock.close()
    return (frames - WARMUP) * x.nbytes / dt / 1e6


def wire_receiver(listener: socket.socket, shape, frames: int, window: int, checksum: str | None,
                  tls_pem: str | None) -> None:
    _, hs = hellos(shape, window, checksum)
    sock, peer = accept(listener, TIMEOUT)
    _congestion(sock)
    if tls_pem is not None:
        from tinycaffe.wire.tls import server_context
        from tinycaffe.wire.transport import tls_accept

        sock = tls_accept(sock, server_context(tls_pem), peer, TIMEOUT).duplex
    session = SourceSession(Transport(sock, peer, timeout=TIMEOUT), Endpoint(hs))
    session.handshake()
    session.targets = {"pool1": np.empty(shape, np.float32)}  # received in place, as the server does
    count = 0
    while session.receive() is not None:
        count += 1
    if count != frames:
        raise RuntimeError(f"received {count} frames, expected {frames}")


def wire_sender(address, shape, frames: int, window: int, checksum: str | None, tls_ctx) -> float:
    hk, _ = hellos(shape, window, checksum)
    session = SinkSession.connect(*address[:2], hk, timeout=TIMEOUT, tls=tls_ctx)
    _congestion(session.transport.sock)
    x = blob(shape)
    for _ in range(WARMUP):
        session.send({"pool1": x})
    session.flush()
    t0 = time.perf_counter()
    for _ in range(frames - WARMUP):
        session.send({"pool1": x})
    session.flush()
    dt = time.perf_counter() - t0
    session.close()
    return (frames - WARMUP) * x.nbytes / dt / 1e6


def _pinned(cpu: int | None, fn, *args):
    """Run ``fn`` with this process on one CPU (``--pin``), else where the scheduler likes."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return fn(*args)


def _send_child(conn, cpu, fn, args) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # reported to the parent
        conn.send(("error", f"{type(e).__name__}: {e}"))
    conn.close()


def measure(kind: str, shape, frames: int, window: int, checksum: str | None, tls, pin: bool = False) -> float:
    """MB/s of one run: receiver and sender each in a fresh forked process (on CPUs 0 and 1 with ``pin``)."""
    ctx = mp.get_context("fork")
    listener = listen("127.0.0.1", 0)
    pem, client_ctx = tls if tls else (None, None)
    if kind == "plain":
        rargs = (listener, shape, frames, pem)
        receiver, sender, sargs = plain_receiver, plain_sender, (listener.getsockname(), shape, frames, window,
                                                                client_ctx)
    else:
        rargs = (listener, shape, frames, window, checksum, pem)
        receiver, sender, sargs = wire_receiver, wire_sender, (listener.getsockname(), shape, frames, window,
                                                              checksum, client_ctx)
    rproc = ctx.Process(target=_pinned, args=(0 if pin else None, receiver, *rargs), daemon=True)
    rproc.start()
    parent, child = ctx.Pipe(duplex=False)
    sproc = ctx.Process(target=_send_child, args=(child, 1 if pin else None, sender, sargs), daemon=True)
    sproc.start()
    child.close()
    try:
        if not parent.poll(TIMEOUT * 2):
            raise RuntimeError(f"{kind} sender gave no result within {2 * TIMEOUT:g} s")
        status, value = parent.recv()
    finally:
        sproc.join(TIMEOUT)
        rproc.join(TIMEOUT)
        for p in (sproc, rproc):
            if p.is_alive():
                p.kill()
        listener.close()
    if status != "ok":
        raise RuntimeError(f"{kind} w{window} {checksum}: {value}")
    if rproc.exitcode != 0:
        raise RuntimeError(f"{kind} w{window} {checksum}: receiver exited with {rproc.exitcode}")
    return value


# ---- pacing ------------------------------------------------------------------------------


def run_paced(x: np.ndarray, rate_text: str, repeats: int) -> list[tuple[float, float]]:
    """(measured seconds, expected seconds) per paced send, each timed up to its ACK."""
    rate = parse_rate(rate_text)
    hk, hs = hellos(x.shape, 1, "crc32")
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


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="measurements per variant (medians reported)")
    ap.add_argument("--mb", type=float, default=300.0, help="MB moved per measurement (50..4000 frames)")
    ap.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, from {list(SIZES)}")
    ap.add_argument("--windows", default="1,4", help="windows to compare (each against a plain peer)")
    ap.add_argument("--crc32", action="store_true", help="also the CRC32 checksum (slower than XXH3)")
    ap.add_argument("--tls", action="store_true", help="add TLS variants (needs trustme)")
    ap.add_argument("--rate", default="10Mbps", help="emulated bandwidth for the pacing check")
    ap.add_argument("--pace-repeats", type=int, default=3, help="0 skips the pacing check")
    ap.add_argument("--seed", type=int, default=0, help="shuffles the order of variants in each round")
    ap.add_argument("--pin", action="store_true", help="receiver on CPU 0, sender on CPU 1 (every variant)")
    ap.add_argument("--congestion", default=None,
                    help="TCP congestion control for every socket of every variant, e.g. cubic (default: the "
                         "system's; BBR paces even on loopback, which halves a plain socket's rate here)")
    args = ap.parse_args()
    global CONGESTION
    CONGESTION = args.congestion

    from threadpoolctl import threadpool_info

    print("BLAS (not used by this benchmark, printed for the record):",
          [(d.get("internal_api"), d.get("architecture")) for d in threadpool_info()])
    print(f"TCP congestion control: {CONGESTION or system_congestion() + ' (system default)'}")
    print(f"cores: {os.cpu_count()}, load average at start: {_load()}, "
          f"{'receiver pinned to CPU 0, sender to CPU 1' if args.pin else 'processes not pinned'}")
    from tinycaffe.wire.checksum import available

    print(f"payload checksums available: {available()}")
    tls = None
    if args.tls:
        import tempfile

        import trustme

        from tinycaffe.wire.tls import client_context

        tmp = Path(tempfile.mkdtemp())
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
        tls = (str(tmp / "server.pem"), client_context(tmp / "ca.pem"))

    windows = [int(w) for w in args.windows.split(",")]
    checks = ["xxh3", *(["crc32"] if args.crc32 else []), None]
    # (label, kind, window, checksum, tls, label of its plain peer)
    variants = []
    for w in windows:
        variants.append((f"plain w{w}", "plain", w, None, None, f"plain w{w}"))
        variants += [(f"wire w{w} {c or 'none'}", "wire", w, c, None, f"plain w{w}") for c in checks]
    if tls:
        variants.append(("plain-tls w1", "plain", 1, None, tls, "plain-tls w1"))
        variants += [(f"tls w1 {c or 'none'}", "wire", 1, c, tls, "plain-tls w1") for c in ("xxh3", None)]

    rng = random.Random(args.seed)
    for size in args.sizes.split(","):
        shape = SIZES[size]
        nbytes = int(np.prod(shape)) * 4
        frames = WARMUP + max(50, min(4000, int(args.mb * 1e6 // nbytes)))
        results: dict[str, list[float]] = {v[0]: [] for v in variants}
        ratios: dict[str, list[float]] = {v[0]: [] for v in variants}
        for _ in range(args.rounds):
            order = variants[:]
            rng.shuffle(order)
            got = {v[0]: measure(v[1], shape, frames, v[2], v[3], v[4], args.pin) for v in order}
            for label, *_rest, peer in variants:
                results[label].append(got[label])
                ratios[label].append(got[label] / got[peer])
        print(f"\n{size}: {shape} float32 = {nbytes} bytes per frame, {frames - WARMUP} timed frames "
              f"(+{WARMUP} warm-up) per measurement, {args.rounds} rounds, load average now {_load()}")
        print(f"{'variant':18s} {'median MB/s':>12s} {'ratio*':>7s}  {'ratio min..max':>14s} {'best**':>7s}"
              "   all rounds (MB/s)")
        for label, *_rest, peer in variants:
            med = statistics.median(results[label])
            r = ratios[label]
            best = max(results[label]) / max(results[peer])
            print(f"{label:18s} {med:12.0f} {statistics.median(r):7.2f}  {min(r):6.2f}..{max(r):<6.2f} {best:7.2f}   "
                  f"{' '.join(f'{v:.0f}' for v in results[label])}")
        print("* median over rounds of (variant / its plain peer in the same round); "
              "** best round of the variant / best round of its plain peer")

    if args.pace_repeats:
        x = blob(SIZES["pool1-b100"])
        paced = run_paced(x, args.rate, args.pace_repeats)
        print(f"\npacing at {args.rate} ({parse_rate(args.rate):.0f} B/s), {args.pace_repeats} sends:")
        for got_s, want in paced:
            print(f"  measured {got_s:.4f} s, expected {want:.4f} s, error {100 * (got_s - want) / want:+.2f}%")
        med_err = statistics.median(100 * (g - w) / w for g, w in paced)
        print(f"  median error {med_err:+.2f}%")
    print(f"load average at the end: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
