"""A link between client and cloud: bandwidth and round-trip time, as a small JSON document.

``tinycaffe probe --bandwidth 10Mbps --rtt 20ms -o link.json`` writes one from
given numbers; ``tinycaffe probe HOST:PORT`` measures a running ``serve``
(:mod:`tinycaffe.plan.probe`). The planner reads::

    {
      "format": "tinycaffe-link/1",
      "source": "given",                 # or "measured"
      "bandwidth_bytes_per_s": 1250000,  # payload bytes per second, each direction
      "rtt_s": 0.02,                     # round trip of a small frame, seconds
      "bandwidth": "10Mbps", "rtt": "20ms",   # as given (informative)
      "samples": [...]                   # measured form only: one entry per payload size
    }
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WireError
from .errors import PlanError

FORMAT = "tinycaffe-link/1"

_DURATION = re.compile(r"^\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(s|ms|us|µs)?\s*$")
_DURATION_UNITS = {"s": 1.0, None: 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


@dataclass(frozen=True)
class Link:
    """A symmetric link: ``bandwidth`` payload bytes per second each way, ``rtt`` seconds."""

    bandwidth: float
    rtt: float
    source: str = "given"
    path: str = "<link>"
    doc: dict[str, Any] = field(default_factory=dict, compare=False)

    def summary(self) -> str:
        return (f"{self.path}: {self.bandwidth * 8 / 1e6:.4g} Mbit/s, rtt {self.rtt * 1e3:.4g} ms "
                f"({self.source})")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as "20ms", "0.5s", "150us" or a bare number of seconds."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise PlanError(f"bad duration {text!r}: expected a number and s, ms or us (e.g. '20ms')")
    value = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(value) or value < 0:
        raise PlanError(f"bad duration {text!r}: must be finite and >= 0")
    return value


def parse_bandwidth(text: str) -> float:
    """Bytes per second of a rate such as "10Mbps" (the Sink's own rate syntax)."""
    from ..wire.pacing import parse_rate

    try:
        return parse_rate(text)
    except WireError as exc:
        raise PlanError(str(exc)) from None


def given_link(bandwidth: str, rtt: str) -> dict[str, Any]:
    """The link document for given numbers, e.g. ``given_link("10Mbps", "20ms")``."""
    return {
        "format": FORMAT, "source": "given",
        "bandwidth_bytes_per_s": parse_bandwidth(bandwidth), "rtt_s": parse_duration(rtt),
        "bandwidth": bandwidth, "rtt": rtt,
    }


def link_from_dict(doc: Any, path: str = "<link>") -> Link:
    """Validate and parse a link document."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise PlanError(f"{path}: not a tinycaffe link (format {got!r}, expected {FORMAT!r})")
    bw, rtt = doc.get("bandwidth_bytes_per_s"), doc.get("rtt_s")
    for key, value, positive in (("bandwidth_bytes_per_s", bw, True), ("rtt_s", rtt, False)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < 0 or (positive and value == 0):
            need = "> 0" if positive else ">= 0"
            raise PlanError(f"{path}: {key} must be a finite number {need}, got {value!r}")
    return Link(float(bw), float(rtt), str(doc.get("source", "given")), path, doc)


def read_link(path: str | Path) -> Link:
    """A link from a JSON file; any problem is a PlanError naming the file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise PlanError(f"{p}: cannot read link ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return link_from_dict(doc, str(p))


def write_link(doc: dict, path: str | Path) -> None:
    """Write a link document (validated first)."""
    link_from_dict(doc, str(path))
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
