"""What moving a frame costs a machine's own CPU: encoding and sending it, receiving and decoding it.

A link model charges bytes / bandwidth, but the sender also spends its own CPU
around every frame before the first byte leaves (building the header, the
payload checksum, the ``sendmsg`` copies into the kernel) and the receiver
after the last byte lands (the copies out, the checksum check). On a fast
machine that is a millisecond per megabyte; on a client held to a tenth of a
core it is ten times that, and it is time the link model never sees.

:func:`measure_wire_cost` measures it on the machine it runs on, with the
wire's own public functions: a float32 blob of several sizes is encoded with
:func:`tinycaffe.wire.encode_data` (the checksum this side would use in plain
TCP) and written with :class:`tinycaffe.wire.Transport` to a loopback socket
whose reader, a thread of the same process, feeds a
:class:`tinycaffe.wire.Decoder`. The sender's and the reader's *thread CPU
times* are recorded (the reader's CPU is not part of the sender's cost: on a
real link the NIC, not this CPU, reads the bytes), converted to wall time by
the ratio of wall to CPU time of a one-thread calibration loop run just
before (1 on an idle machine; about 10 under a cgroup quota of 10% of a core;
above 1 when neighbours take the core), and fitted as ``fixed + per_byte *
bytes`` by least squares on the per-size medians.

The result, stored as the ``"wire"`` object of a ``tinycaffe-profile/2``::

    "wire": {
      "method": "loopback encode_data + Transport.send / Decoder, float32, checksum xxh3",
      "checksum": "xxh3",
      "cpu_to_wall": 1.02,          # wall / CPU seconds of the calibration loop
      "send_fixed_s": 3.1e-05,      # per frame, wall seconds (CPU x cpu_to_wall)
      "send_per_byte_s": 4.2e-10,   # per byte
      "recv_fixed_s": 4.0e-05,
      "recv_per_byte_s": 5.5e-10,
      "samples": [{"bytes": 65576, "send_cpu_s": ..., "send_wall_s": ..., "recv_cpu_s": ...}, ...]
    }

Limits: the float16 and uint8 encodings are charged the float32 cost per wire
byte (their quantisers are not timed); the cost is the CPU's, not the NIC
driver's of a real device.
"""
from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import PlanError

#: Frame payloads measured by default: 64 KiB .. 4 MiB of float32.
DEFAULT_SIZES = (64 * 1024, 512 * 1024, 4 * 1024 * 1024)
_CALIBRATE_CPU_S = 0.02  # CPU seconds the wall/CPU calibration loop runs for
_WAIT_S = 60.0  # the reader must finish a frame within this (a 4 MiB frame at 10% of a core: ~0.1 s)


@dataclass(frozen=True)
class WireCost:
    """Wall seconds a machine spends on a frame of ``n`` bytes: ``fixed + per_byte * n``, each way."""

    send_fixed_s: float = 0.0
    send_per_byte_s: float = 0.0
    recv_fixed_s: float = 0.0
    recv_per_byte_s: float = 0.0
    source: str = "not measured"

    def send_s(self, nbytes: int) -> float:
        """Encoding and sending a frame of ``nbytes`` (0 bytes: no frame, no cost)."""
        return self.send_fixed_s + self.send_per_byte_s * nbytes if nbytes > 0 else 0.0

    def recv_s(self, nbytes: int) -> float:
        """Receiving and decoding a frame of ``nbytes`` (0 bytes: no frame, no cost)."""
        return self.recv_fixed_s + self.recv_per_byte_s * nbytes if nbytes > 0 else 0.0


#: What a profile without a "wire" object (format tinycaffe-profile/1) is charged: nothing.
NOT_MEASURED = WireCost(source="not measured (tinycaffe-profile/1 has no wire costs): charged 0")

_FIELDS = ("send_fixed_s", "send_per_byte_s", "recv_fixed_s", "recv_per_byte_s")


def wire_cost_from_dict(doc: Any, where: str) -> WireCost:
    """Validate a profile's "wire" object; every problem names ``where``."""
    if not isinstance(doc, dict):
        raise PlanError(f"{where}: 'wire' must be an object, got {type(doc).__name__}")
    values = {}
    for key in _FIELDS:
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise PlanError(f"{where}: wire.{key} must be a finite number >= 0, got {v!r}")
        values[key] = float(v)
    method = doc.get("method", "measured")
    return WireCost(**values, source=f"measured ({method}; cpu_to_wall {doc.get('cpu_to_wall', '?')})")


def fit_fixed_and_per_byte(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through ``points``, both clamped to >= 0.

    A negative slope (noise swamping a tiny cost) becomes a flat line at the
    mean; a negative intercept, a line through the origin.
    """
    if not points:
        raise PlanError("no samples to fit")
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    if len(points) == 1 or np.ptp(xs) == 0:
        return float(max(ys.mean(), 0.0)), 0.0
    slope, intercept = np.polyfit(xs, ys, 1)
    if slope < 0:
        return float(max(ys.mean(), 0.0)), 0.0
    if intercept < 0:
        return 0.0, float(max((xs @ ys) / (xs @ xs), 0.0))
    return float(intercept), float(slope)


def cpu_to_wall_ratio(cpu_s: float = _CALIBRATE_CPU_S) -> float:
    """Wall seconds per CPU second of one busy thread here and now (>= 1 in practice)."""
    buf = np.ones(256 * 1024, dtype=np.float32)
    out = np.empty_like(buf)
    w0, c0 = time.perf_counter(), time.thread_time()
    while time.thread_time() - c0 < cpu_s:
        np.multiply(buf, 1.0001, out=out)
    cpu = time.thread_time() - c0
    return (time.perf_counter() - w0) / cpu if cpu > 0 else 1.0


def measure_wire_cost(sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 5) -> dict[str, Any]:
    """Measure this machine's per-frame and per-byte wire costs; returns the profile's "wire" object."""
    from ..wire import Decoder, Encoding, Frame, Transport, encode_data
    from ..wire.checksum import available, choose

    if repeats <= 0 or not sizes or any(int(s) < 4 for s in sizes):
        raise PlanError(f"wire cost: need repeats > 0 and sizes >= 4 bytes (got {repeats}, {list(sizes)})")
    algo = choose(available(), available())
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        sender = socket.create_connection(listener.getsockname(), timeout=_WAIT_S)
        reader, _ = listener.accept()
    finally:
        listener.close()
    reader.settimeout(_WAIT_S)
    got: list[tuple[int, float]] = []  # (payload bytes of the frame's blob, reader CPU seconds)
    done = threading.Semaphore(0)
    failed: list[Exception] = []

    def read_frames(total: int) -> None:
        dec = Decoder()
        try:
            for _ in range(total):
                c0 = time.thread_time()
                while True:
                    ev = dec.next_event()
                    if isinstance(ev, Frame):
                        break
                    view = dec.direct_view()
                    if view is not None and len(view):
                        n = reader.recv_into(view)
                        if n == 0:
                            raise PlanError("wire cost: the loopback sender closed early")
                        dec.commit(n)
                    else:
                        data = reader.recv(1 << 20)
                        if not data:
                            raise PlanError("wire cost: the loopback sender closed early")
                        dec.feed(data)
                got.append((sum(b.nbytes for b in ev.blobs.values()), time.thread_time() - c0))
                done.release()
        except Exception as exc:  # noqa: BLE001 -- reported by the sender below, never lost
            failed.append(exc)
            done.release()

    plan = [int(s) // 4 for s in sizes for _ in range(repeats + 1)]  # +1: a warm-up frame per size
    thread = threading.Thread(target=read_frames, args=(len(plan),), name="wirecost-reader", daemon=True)
    thread.start()
    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal(n).astype(np.float32) for n in set(plan)}
    transport = Transport(sender, "loopback wire-cost reader", timeout=_WAIT_S)
    ratio = cpu_to_wall_ratio()
    sent: list[tuple[int, float, float]] = []  # (frame bytes, CPU s, wall s)
    try:
        for seq, n in enumerate(plan):
            w0, c0 = time.perf_counter(), time.thread_time()
            bufs = encode_data(seq, {"x": arrays[n]}, Encoding.RAW, checksum=algo)
            transport.send(bufs)
            cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
            size = getattr(bufs, "nbytes", None)  # an encoded frame knows its size; a plain list does not
            sent.append((size if size is not None else sum(len(memoryview(b).cast("B")) for b in bufs), cpu, wall))
            if not done.acquire(timeout=_WAIT_S) or failed:
                raise PlanError(f"wire cost: the loopback reader failed on frame {seq}: "
                                f"{failed[0] if failed else f'no frame within {_WAIT_S:g} s'}")
    finally:
        transport.close()
        reader.close()
        thread.join(_WAIT_S)
    samples = []
    for i, size in enumerate(sizes):
        rows = range(i * (repeats + 1) + 1, (i + 1) * (repeats + 1))  # skip each size's warm-up
        samples.append({
            "bytes": sent[rows[0]][0],
            "send_cpu_s": statistics.median(sent[j][1] for j in rows),
            "send_wall_s": statistics.median(sent[j][2] for j in rows),
            "recv_cpu_s": statistics.median(got[j][1] for j in rows),
        })
    send_fixed, send_pb = fit_fixed_and_per_byte([(s["bytes"], s["send_cpu_s"]) for s in samples])
    recv_fixed, recv_pb = fit_fixed_and_per_byte([(s["bytes"], s["recv_cpu_s"]) for s in samples])
    return {
        "method": f"loopback encode_data + Transport.send / Decoder, float32, checksum {algo}",
        "checksum": algo,
        "cpu_to_wall": round(ratio, 4),
        "send_fixed_s": send_fixed * ratio, "send_per_byte_s": send_pb * ratio,
        "recv_fixed_s": recv_fixed * ratio, "recv_per_byte_s": recv_pb * ratio,
        "samples": samples,
    }
