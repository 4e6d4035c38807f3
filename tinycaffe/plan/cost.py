"""Bytes on the wire and the predicted time of a cut.

Bytes: a DATA frame is the 28-byte frame header, the 12-byte payload prefix,
one table entry per blob (name, dtype, shape, uint8's scale/offset, size) and
each blob's elements at 4 (float32), 2 (float16) or 1 (uint8) bytes; the
cloud answers with a 32-byte ACK, or with a RESULT frame when blobs are
returned (``return_top``). :func:`data_frame_bytes` matches the wire's own
encoder byte for byte (tested).

Time per batch, from the two profiles and the link:

* client = the client profile's times of the client layers, plus its own CPU
  cost of the frames (:mod:`tinycaffe.plan.wirecost`: encoding and sending
  the DATA frame, receiving and decoding the ACK or RESULT);
* cloud  = the cloud profile's times of the other layers, plus its CPU cost
  of receiving the DATA frame and sending the answer;
* link   = rtt + (sent + returned bytes) / bandwidth  (stop-and-wait), or
  the busier direction's bytes / bandwidth (pipelined: with enough batches in
  flight the round trip is hidden, and the link is full-duplex);
* stop-and-wait = client + link + cloud (one batch at a time: the latency);
* pipelined     = the slowest of client, link, cloud (the steady-state
  throughput of a pipeline).

Profiles without wire costs (``tinycaffe-profile/1``) charge none.
"All on the client" sends nothing and takes the client's time for the whole
net; "all in the cloud" sends the input.

Layers the Net adds (Split) cost nothing forward and are not in the profile's
sum; a layer of the net missing from a profile is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..wire.blobs import PREFIX
from ..wire.header import HEADER_SIZE
from .cuts import CutGraph
from .errors import PlanError
from .link import Link
from .profile import Profile

#: Bytes per element on the wire, by ``--wire`` name.
WIRE_ITEMSIZE = {"float32": 4, "float16": 2, "uint8": 1}
WIRE_NAMES = tuple(WIRE_ITEMSIZE)
ACK_BYTES = HEADER_SIZE + 4
_UINT8_SCALE_OFFSET = 16  # two float64 in the blob's table entry


def check_wire(name: str) -> str:
    if name not in WIRE_ITEMSIZE:
        raise PlanError(f"unknown wire dtype {name!r} (use {', '.join(WIRE_NAMES)})")
    return name


def blob_entry_bytes(name: str, shape: Sequence[int], wire: str) -> int:
    """One blob's table entry plus its data, on the wire."""
    elements = 1
    for d in shape:
        elements *= int(d)
    entry = 2 + len(name.encode("utf-8")) + 6 + 4 * len(shape) + 8
    if wire == "uint8":
        entry += _UINT8_SCALE_OFFSET
    return entry + elements * WIRE_ITEMSIZE[check_wire(wire)]


def data_frame_bytes(blobs: dict[str, Sequence[int]], wire: str) -> int:
    """Bytes of a DATA (or RESULT) frame carrying ``blobs`` (name -> shape) as float32 blobs."""
    return HEADER_SIZE + PREFIX.size + sum(blob_entry_bytes(n, s, wire) for n, s in blobs.items())


@dataclass(frozen=True)
class Timing:
    """Predicted seconds per batch of one option, and the bytes it moves."""

    client_s: float
    link_s: float  # stop-and-wait link time (rtt included)
    cloud_s: float
    pipelined_link_s: float
    sent_bytes: int
    returned_bytes: int
    client_wire_s: float = 0.0  # the part of client_s spent on frames (encode, send, receive)
    cloud_wire_s: float = 0.0  # the part of cloud_s spent on frames

    @property
    def stop_and_wait_s(self) -> float:
        return self.client_s + self.link_s + self.cloud_s

    @property
    def pipelined_s(self) -> float:
        return max(self.client_s, self.pipelined_link_s, self.cloud_s)

    def objective(self, name: str) -> float:
        return self.stop_and_wait_s if name == "latency" else self.pipelined_s


class CostModel:
    """Per-group times on each side and per-blob bytes, for one net, two profiles and a link."""

    def __init__(self, graph: CutGraph, client: Profile, cloud: Profile, link: Link,
                 return_top: Sequence[str] = ()):
        if client.batch != cloud.batch:
            raise PlanError(
                f"the profiles were taken at different batch sizes: {client.path} batch {client.batch}, "
                f"{cloud.path} batch {cloud.batch}; profile both at the batch you will run"
            )
        self.graph, self.client, self.cloud, self.link = graph, client, cloud, link
        self.batch = client.batch
        self.client_time = [self._group_time(client, g) for g in graph.groups]
        self.cloud_time = [self._group_time(cloud, g) for g in graph.groups]
        self.shapes: dict[str, tuple[int, ...]] = {}
        for u in graph.blobs.values():
            shape = client.blob_shapes.get(u.name)
            if shape is None:
                raise PlanError(f"{client.path}: no shape for blob '{u.name}' of net '{graph.name}' "
                                "(was the profile taken of another net?)")
            other = cloud.blob_shapes.get(u.name)
            if other is not None and tuple(other) != tuple(shape):
                raise PlanError(f"blob '{u.name}' has shape {tuple(shape)} in {client.path} "
                                f"but {tuple(other)} in {cloud.path}")
            self.shapes[u.name] = tuple(shape)
        self.return_top = list(return_top)
        self.forced_cloud: frozenset[int] = frozenset()
        if self.return_top:
            missing = [b for b in self.return_top if b not in graph.blobs]
            if missing:
                raise PlanError(f"return_top blob(s) {', '.join(missing)} are not blobs of net '{graph.name}'")
            # A returned blob must be made in the cloud.
            self.forced_cloud = frozenset(graph.blobs[b].producer for b in self.return_top)
            bad = self.forced_cloud & graph.sources
            if bad:
                raise PlanError("return_top blobs made by input layers cannot come back from the cloud")
        self.client_total = sum(self.client_time)

    def _group_time(self, profile: Profile, group) -> float:
        total = 0.0
        for name in group.layers:
            if name not in profile.layer_times:
                raise PlanError(f"{profile.path}: no time for layer '{name}' of net '{self.graph.name}' "
                                "(was the profile taken of another net or phase?)")
            total += profile.layer_times[name]
        return total

    # -- pieces the exact searches use -------------------------------------------
    def blob_bytes(self, name: str, wire: str) -> int:
        """What one crossing blob adds to the DATA frame."""
        return blob_entry_bytes(name, self.shapes[name], wire)

    def cut_overhead_bytes(self, wire: str) -> tuple[int, int]:
        """(sent, returned) bytes any split pays whatever crosses: frame headers, the ACK or RESULT."""
        sent = HEADER_SIZE + PREFIX.size
        if self.return_top:
            returned = data_frame_bytes({b: self.shapes[b] for b in self.return_top}, wire)
        else:
            returned = ACK_BYTES
        return sent, returned

    def wire_cpu(self, sent: int, returned: int) -> tuple[float, float]:
        """(client, cloud) CPU seconds of one split batch's frames: DATA of ``sent`` bytes, answer of ``returned``."""
        cw, kw = self.client.wire, self.cloud.wire
        return cw.send_s(sent) + cw.recv_s(returned), kw.recv_s(sent) + kw.send_s(returned)

    def sent_byte_cpu_s(self) -> float:
        """Seconds of client and cloud CPU per byte of the DATA frame (beyond its fixed costs)."""
        return self.client.wire.send_per_byte_s + self.cloud.wire.recv_per_byte_s

    def is_valid(self, client) -> bool:
        """A cut whose returned blobs (if any) are made in the cloud; "all on client" always is."""
        client = frozenset(client)
        if client == self.graph.all_groups:
            return True
        return self.graph.is_cut(client) and not (client & self.forced_cloud)

    # -- one option ----------------------------------------------------------------
    def timing(self, client, wire: str) -> Timing:
        """The predicted time of keeping ``client`` (group indices, a cut) on the client."""
        client = frozenset(client)
        c = sum(self.client_time[g] for g in client)
        if client == self.graph.all_groups:
            return Timing(c, 0.0, 0.0, 0.0, 0, 0)
        k = sum(self.cloud_time[g] for g in range(len(self.graph.groups)) if g not in client)
        sent, returned = self.cut_overhead_bytes(wire)
        sent += sum(self.blob_bytes(b, wire) for b in self.graph.crossing_set(client))
        bw = self.link.bandwidth
        link = self.link.rtt + (sent + returned) / bw
        cw, kw = self.wire_cpu(sent, returned)
        return Timing(c + cw, link, k + kw, max(sent, returned) / bw, sent, returned, cw, kw)
