"""A client that moves the cut while it runs, when the link changes.

:class:`RecutClient` holds the whole net and talks to a ``tinycaffe serve
--any-cut`` that holds it too. For each batch it runs its own layers up to
the current cut, sends the crossing blobs (the HELLO names the cut, see
:mod:`tinycaffe.serve.cuts`) and waits for the returned blobs. It times each
batch's DATA-to-ACK exchange and keeps a moving estimate of the link's
throughput (:class:`ThroughputEstimate`); after each batch it prices every
candidate cut with the planner's cost model at that throughput
(:func:`choose_cut`) and, when another cut is predicted faster by more than
``margin``, switches before the next batch: the current connection finishes
(every batch answered, BYE) and a new one opens with the new cut. A batch is
computed under exactly one cut and sent once, so none is lost or repeated,
and as the server's halves run the same layers with the same weights the
outputs match a run that never re-cuts (tested bit for bit).

Candidates are the net-order prefixes the planner lists (every cut of a chain
such as cifar10_full) plus "all on the client". A cut that sends nothing, or
a frame that would cross in less than ``min_transfer`` at the current
estimate, cannot time the link (a 4 kB frame's DATA-to-ACK time is mostly
fixed costs, and on a slow client its own CPU): its samples only bound the
throughput from below, and after ``probe_every`` such batches the client
runs one batch at the cheapest cut whose frame is large enough, to measure
the link again.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import WireError
from .cost import CostModel
from .errors import PlanError


@dataclass(frozen=True)
class CutCost:
    """What one candidate cut costs per batch, apart from the link's throughput."""

    name: str  # "all in cloud", "after pool2", "all on client"
    after: str  # the cut the HELLO names ("" = the server's own, i.e. all in cloud); None-like for local
    local: bool  # all on the client: nothing is sent
    client_s: float
    cloud_s: float
    sent_bytes: int
    returned_bytes: int

    def predict(self, bandwidth: float, rtt: float) -> float:
        """Stop-and-wait seconds per batch at ``bandwidth`` bytes/s and ``rtt`` seconds."""
        if self.local:
            return self.client_s
        return self.client_s + rtt + (self.sent_bytes + self.returned_bytes) / bandwidth + self.cloud_s


def choose_cut(costs: Sequence[CutCost], current: str, bandwidth: float, rtt: float, margin: float) -> str:
    """The cut to run next: the cheapest at this throughput if it beats ``current`` by more than ``margin``.

    ``margin`` is a fraction (0.2: switch only for a cut predicted at least
    20% faster), so noise in the estimate does not make the client flap.
    """
    if not costs:
        raise PlanError("no candidate cuts")
    by_name = {c.name: c for c in costs}
    if current not in by_name:
        raise PlanError(f"current cut {current!r} is not a candidate ({', '.join(by_name)})")
    best = min(costs, key=lambda c: c.predict(bandwidth, rtt))
    if best.predict(bandwidth, rtt) < (1.0 - margin) * by_name[current].predict(bandwidth, rtt):
        return best.name
    return current


@dataclass
class ThroughputEstimate:
    """An exponential moving average of a link's throughput from (bytes, seconds) samples.

    Each sample is one batch's DATA-to-ACK time; the round trip ``rtt`` is
    taken off first (a sample no longer than the rtt is ignored). ``alpha`` is
    the weight of the newest sample; a sample more than ``jump`` times above
    or below the estimate replaces it (the link changed: averaging would take
    several slow batches to notice a 20x drop). A sample taken with
    ``lower_bound=True`` (a frame too small to time the link: its time is
    mostly fixed costs, the peer's turnaround, the sender's own CPU) may raise
    the estimate but never lower it.
    """

    bandwidth: float  # bytes/s: the starting estimate (e.g. the plan's link)
    rtt: float = 0.0
    alpha: float = 0.5
    jump: float = 4.0
    samples: int = 0
    history: list[float] = field(default_factory=list)

    def add(self, nbytes: int, seconds: float, lower_bound: bool = False) -> float:
        transfer = seconds - self.rtt
        if nbytes <= 0 or not math.isfinite(seconds) or transfer <= 0:
            return self.bandwidth
        sample = nbytes / transfer
        if lower_bound and sample <= self.bandwidth:
            return self.bandwidth
        shifted = not (self.bandwidth / self.jump <= sample <= self.bandwidth * self.jump)
        if self.samples == 0 or shifted:
            self.bandwidth = sample
        else:
            self.bandwidth = self.alpha * sample + (1 - self.alpha) * self.bandwidth
        self.samples += 1
        self.history.append(sample)
        return self.bandwidth


def candidate_costs(model: CostModel, wire: str = "float32") -> list[CutCost]:
    """Every net-order prefix cut the model finds valid, and "all on client", as CutCosts."""
    graph = model.graph
    minimal = graph.minimal_cut()
    out: list[CutCost] = []
    for client in graph.prefixes():
        if not model.is_valid(client):
            continue
        t = model.timing(client, wire)
        if client == graph.all_groups:
            out.append(CutCost("all on client", "", True, t.client_s, 0.0, 0, 0))
            continue
        last = graph.groups[max(client)]
        after = "" if client == minimal else last.name
        out.append(CutCost(graph.describe(client), after, False, t.client_s, t.cloud_s, t.sent_bytes,
                           t.returned_bytes))
    if not any(c.local for c in out):
        t = model.timing(graph.all_groups, wire)
        out.append(CutCost("all on client", "", True, t.client_s, 0.0, 0, 0))
    return out


@dataclass
class BatchRecord:
    """One batch as the client ran it."""

    index: int
    cut: str
    seconds: float  # the whole batch: client layers, link, cloud, answer
    ack_seconds: float | None  # DATA sent to ACK (None: nothing sent)
    bandwidth_estimate: float  # bytes/s after this batch


def any_cut_net_param(model, shapes: Mapping[str, Sequence[int]], returns: Sequence[str], *,
                      port: int = 0, bind: str = "127.0.0.1", phase: str = "test"):
    """The net a ``serve --any-cut`` holds: the whole ``model`` behind one Source taking its input.

    That is the cloud half of the "all in the cloud" cut, as ``split`` writes
    it; ``shapes`` gives the input blobs' shapes.
    """
    from ..net.build import PHASES
    from ..net.cut import cut_net
    from .cuts import CutGraph

    graph = CutGraph.from_model(model, phase)
    minimal = graph.minimal_cut()
    if not graph.is_prefix(minimal):
        raise PlanError(f"net '{graph.name}': its input layers do not come first; cannot serve it whole")
    after = graph.groups[max(minimal)].name
    _, cloud = cut_net(graph.net_param, after, shapes, phase=PHASES[phase], port=port, bind=bind,
                       return_top=list(returns))
    return cloud


class RecutClient:
    """Run batches through ``net`` split with a ``serve --any-cut`` server, re-cutting as the link changes.

    ``net``: the whole net (a built Net, inputs fed by name, e.g. an Input
    layer ``data``); ``model``: the planner's cost model for it (client and
    cloud profiles; its link gives the starting throughput and the rtt);
    ``returns``: blobs the server sends back (made in the cloud by every
    candidate cut). ``rate`` paces the sending (an emulated link, bytes/s or
    "10Mbps"); :meth:`set_rate` changes it while running. ``recut=False``
    keeps the starting cut (the reference run).
    """

    def __init__(self, net, model: CostModel, host: str, port: int, *, returns: Sequence[str],
                 start: str | None = None, margin: float = 0.2, alpha: float = 0.5, recut: bool = True,
                 rate: float | str | None = None, probe_every: int = 6, min_transfer: float = 0.02,
                 timeout: float = 60.0, wire: str = "float32") -> None:
        if not returns:
            raise PlanError("RecutClient needs return_top blobs (the outputs it hands back)")
        self.net, self.model, self.host, self.port = net, model, host, port
        self.returns = list(returns)
        self.margin, self.recut, self.timeout, self.wire = margin, recut, timeout, wire
        self.probe_every, self.min_transfer = probe_every, min_transfer
        self.costs = [c for c in candidate_costs(model, wire)
                      if c.local or self._returns_in_cloud(c)]
        self._by_name = {c.name: c for c in self.costs}
        self.estimate = ThroughputEstimate(model.link.bandwidth, model.link.rtt, alpha)
        self.current = start or choose_cut(self.costs, self.costs[0].name, model.link.bandwidth,
                                           model.link.rtt, 0.0)
        if self.current not in self._by_name:
            raise PlanError(f"start cut {self.current!r} is not a candidate ({', '.join(self._by_name)})")
        # One forward now, so that moving the cut deeper later does not pay the kernels'
        # first-call costs (Numba compiling, buffers) in the middle of the run.
        net.forward()
        self._rate = rate
        self._session = None  # a ResilientSink for the current cut (None: all on client / not yet open)
        self._blind_batches = 0  # batches in a row that could not time the link
        self.records: list[BatchRecord] = []
        self.switches: list[tuple[int, str, str]] = []  # (before batch index, from, to)

    def _returns_in_cloud(self, cost: CutCost) -> bool:
        graph = self.model.graph
        made = {graph.blobs[b].producer for b in self.returns if b in graph.blobs}
        client = next(c for c in graph.prefixes() if graph.describe(c) == cost.name)
        return not (made & client)

    # ---- the link --------------------------------------------------------------------------
    def set_rate(self, rate: float | str | None) -> None:
        """Change the emulated link's rate (the Sink's pacer) now and for later connections."""
        from ..wire.pacing import Pacer, parse_rate

        self._rate = rate
        if self._session is not None and self._session.session is not None:
            t = self._session.transport
            bps = parse_rate(rate) if isinstance(rate, str) else rate
            t.pacer = Pacer(bps) if bps else None

    def _open(self, cost: CutCost) -> None:
        from ..wire import Hello, SinkSession, specs, wanted
        from ..wire.resilient import ResilientSink

        graph = self.model.graph
        client = next(c for c in graph.prefixes() if graph.describe(c) == cost.name)
        self._crossing = graph.crossing(client)
        self._end = graph.groups[max(client)].layers[-1]
        blobs = specs([(b, "float32", tuple(self.net.blobs[b].shape)) for b in self._crossing])
        hello = Hello("sink", "recut-client", blobs, returns=wanted(self.returns), wire=self.wire,
                      cut=cost.after)
        rate, timeout = self._rate, self.timeout

        def connect(t: float) -> SinkSession:
            return SinkSession.connect(self.host, self.port, hello, timeout=timeout, connect_timeout=t,
                                       ack_timeout=timeout, rate=rate)

        session = ResilientSink(connect, returns=True, retry_for=timeout)
        session.open(timeout)
        self._session = session

    def _close(self) -> None:
        if self._session is not None:
            self._session.close(self.timeout)  # every batch answered, then BYE
            self._session = None

    # ---- running ---------------------------------------------------------------------------
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch under the current cut; returns copies of the ``returns`` blobs."""
        index = len(self.records)
        cost = self._by_name[self.current]
        t0 = time.perf_counter()
        ack_s = None
        if cost.local:
            self.net.forward(**inputs)
            result = {b: np.array(self.net.blobs[b].data) for b in self.returns}
        else:
            if self._session is None:
                self._open(cost)
            self.net.forward(end=self._end, **inputs)
            blobs = {b: self.net.blobs[b].data for b in self._crossing}
            t1 = time.perf_counter()
            self._session.send(blobs)
            try:
                self._session.session.flush()  # the ACK: the link's share of this batch
                ack_s = time.perf_counter() - t1
            except WireError:
                ack_s = None  # a reconnect will resend it; no sample from this batch
            frame = self._session.result(self.timeout)
            result = {b: np.array(frame.blobs[b]) for b in self.returns}
            if ack_s is not None:
                self.estimate.add(cost.sent_bytes, ack_s, lower_bound=self._blind(cost))
        seconds = time.perf_counter() - t0
        self.records.append(BatchRecord(index, self.current, seconds, ack_s, self.estimate.bandwidth))
        self._decide(index)
        return result

    def _blind(self, cost: CutCost) -> bool:
        """Whether batches at ``cost`` cannot time the link (nothing sent, or too few bytes)."""
        return cost.local or cost.sent_bytes / self.estimate.bandwidth < self.min_transfer

    def _decide(self, index: int) -> None:
        if not self.recut:
            return
        bw, rtt = self.estimate.bandwidth, self.estimate.rtt
        self._blind_batches = self._blind_batches + 1 if self._blind(self._by_name[self.current]) else 0
        nxt = choose_cut(self.costs, self.current, bw, rtt, self.margin)
        if nxt == self.current and self._blind_batches >= self.probe_every:
            # Learning nothing about the link: one batch at the cheapest cut that can time it.
            seeing = [c for c in self.costs if not self._blind(c)]
            if seeing:
                nxt = min(seeing, key=lambda c: c.predict(bw, rtt)).name
        if nxt != self.current:
            self._switch(index + 1, nxt)

    def switch(self, to: str) -> None:
        """Run the next batch under cut ``to`` (a candidate's name), whatever the estimate says."""
        if to not in self._by_name:
            raise PlanError(f"cut {to!r} is not a candidate ({', '.join(self._by_name)})")
        if to != self.current:
            self._switch(len(self.records), to)

    def _switch(self, before: int, to: str) -> None:
        self._close()
        self.switches.append((before, self.current, to))
        self.current = to
        self._blind_batches = 0

    def close(self) -> None:
        """Finish the current connection cleanly (every batch answered, BYE)."""
        self._close()

    def __enter__(self) -> RecutClient:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._session is not None:
            self._session.fail(f"client stopped: {exc_type.__name__}")
