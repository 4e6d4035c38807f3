"""Measure a link against a running ``tinycaffe serve`` (``tinycaffe probe HOST:PORT``).

A ``serve`` accepts only the blobs its Source layer declares, so the probe reads
them from the served prototxt (``--net cloud.prototxt``, the file ``split``
wrote) and sends zero-filled batches of exactly those shapes. Payload sizes
come from the three wire encodings (float32, float16 and uint8: 4, 2 and 1
bytes per element).

Each exchange uses a fresh connection, through the same client API the Sink
layer uses (:class:`tinycaffe.wire.SinkSession`): connect and HELLO, send one
DATA frame, time it until its ACK, BYE. A fresh connection finds the server
idle, so the DATA-to-ACK time is the link's alone (round trip plus bytes over
bandwidth), not the cloud's compute on a previous batch. Medians over the
repeats, then a least-squares line through (bytes, median time): its slope
is 1 / bandwidth. The round trip is half the time of TCP connect plus the
HELLO exchange (two round trips of small packets). Times include encoding and
decoding at both ends, as a real run pays them. The server needs
``--keep-serving`` to take the probe's successive connections.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import numpy as np

from ..errors import TinyCaffeError
from .cost import ACK_BYTES, data_frame_bytes
from .errors import PlanError
from .link import FORMAT

PROBE_WIRES = ("float32", "float16", "uint8")


def parse_address(text: str) -> tuple[str, int]:
    """("host", port) from "HOST:PORT"."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PlanError(f"bad address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:3000")
    return host.strip("[]"), int(port)


def source_shapes(cloud_model) -> dict[str, tuple[int, ...]]:
    """The blobs (name -> shape) the served net's Source layer expects."""
    from ..net.build import load_net_param

    param = load_net_param(cloud_model)
    sources = [l for l in param.layer if l.type == "Source"]
    if len(sources) != 1:
        raise PlanError(f"{cloud_model}: the served net should have one Source layer, found {len(sources)}")
    src = sources[0]
    if src.source_param.return_top:
        raise PlanError(f"{cloud_model}: the probe cannot measure a Source with return_top "
                        f"({', '.join(src.source_param.return_top)}); probe a split without it")
    shapes = list(src.input_param.shape)
    if len(shapes) != len(src.top):
        raise PlanError(f"{cloud_model}: Source '{src.name}' declares {len(shapes)} shapes for {len(src.top)} tops")
    return {t: tuple(int(d) for d in s.dim) for t, s in zip(src.top, shapes)}


def _exchange(host: str, port: int, blobs: dict[str, np.ndarray], wire: str,
              timeout: float, pace: str | None) -> tuple[float, float]:
    """(connect + HELLO seconds, DATA-to-ACK seconds) of one fresh connection."""
    from ..wire import Hello, SinkSession, specs

    hello = Hello("sink", "probe", specs(blobs), wire=wire, window=1)
    t0 = time.perf_counter()
    session = SinkSession.connect(host, port, hello, timeout=timeout, connect_timeout=timeout,
                                  ack_timeout=timeout, rate=pace)
    connected = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        session.send(blobs)
        session.flush()
        elapsed = time.perf_counter() - t0
        session.close(timeout)
    except BaseException:
        session.fail("probe stopped")
        raise
    return connected, elapsed


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y on x."""
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    if len(points) < 2 or np.ptp(xs) == 0:
        raise PlanError("need at least two different payload sizes to fit a line")
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope), float(intercept)


def measure_link(host: str, port: int, shapes: dict[str, tuple[int, ...]], *, repeats: int = 5,
                 wires: Sequence[str] = PROBE_WIRES, timeout: float = 10.0,
                 pace: str | None = None) -> dict[str, Any]:
    """The link document (see :mod:`tinycaffe.plan.link`) measured against ``host:port``.

    ``pace`` (e.g. "10Mbps") paces the probe's sends as the Sink's ``bandwidth``
    setting does, to measure an emulated link.
    """
    if repeats <= 0:
        raise PlanError(f"--repeats must be positive, got {repeats}")
    blobs = {n: np.zeros(s, np.float32) for n, s in shapes.items()}
    times: dict[str, list[float]] = {w: [] for w in wires}
    connects: list[float] = []
    try:
        for _ in range(repeats):  # alternate the sizes, so drift hits them alike
            for w in wires:
                connected, elapsed = _exchange(host, port, blobs, w, timeout, pace)
                connects.append(connected)
                times[w].append(elapsed)
    except TinyCaffeError as exc:
        raise PlanError(f"probe of {host}:{port} failed: {exc}") from None
    samples = [{"wire": w, "bytes": data_frame_bytes(shapes, w), "median_s": statistics.median(ts),
                "times_s": ts} for w, ts in times.items()]
    # TCP connect and the HELLO exchange are two round trips of small packets.
    rtt = statistics.median(connects) / 2
    # Each exchange moves the DATA frame one way and the ACK back.
    slope, _ = fit_line([(s["bytes"] + ACK_BYTES, s["median_s"]) for s in samples])
    if slope > 0:
        bandwidth, method = 1.0 / slope, "bandwidth: least-squares slope of median DATA-to-ACK time on bytes"
    else:
        # Sizes too noisy to show a slope (loopback, where encoding dominates): bytes over time
        # is a lower bound on the bandwidth.
        biggest = max(samples, key=lambda s: s["bytes"])
        bandwidth = (biggest["bytes"] + ACK_BYTES) / max(biggest["median_s"] - rtt, biggest["median_s"] / 2)
        method = "bandwidth: largest payload's bytes / (median time - rtt) (no positive slope: a lower bound)"
    return {
        "format": FORMAT, "source": "measured", "bandwidth_bytes_per_s": bandwidth, "rtt_s": rtt,
        "peer": f"{host}:{port}", "pace": pace, "method": method + "; rtt: half the median connect + HELLO time",
        "repeats": repeats, "connect_s": connects, "samples": samples,
    }
