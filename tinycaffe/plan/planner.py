"""The ranked options for one net, two profiles and a link, and their Pareto front.

An *option* is a cut (the client's groups) and a wire encoding. The planner

1. lists every valid cut when there are at most ``max_enumerate`` of them
   (chains have about one per layer; GoogLeNet's deploy net 499, its train_val
   27,026), and prices
   each one with each wire encoding (:class:`tinycaffe.plan.cost.CostModel`);
2. independently finds the best cut per encoding with an exact method -- the
   min-cut (:mod:`mincut`) for stop-and-wait latency, branch and bound
   (:mod:`search`) for pipelined throughput -- and checks that the listing
   agrees; when there are too many cuts to list, the table holds the exact best,
   the net-order prefixes, "all on client" and "all in cloud";
3. ranks by the objective (ties: fewer bytes sent first) and keeps the Pareto
   front of (objective time, bytes sent): the options no other option beats on
   both.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

from .cost import CostModel, Timing, check_wire
from .cuts import CutGraph
from .errors import PlanError
from .mincut import best_latency_cut
from .search import best_cut

OBJECTIVES = ("latency", "throughput")


@dataclass(frozen=True)
class Accuracy:
    """Measured accuracy of the net with one option's crossing blobs sent through the wire."""

    metric: str  # the Accuracy top, e.g. "accuracy"
    baseline: float  # float32, nothing sent
    value: float  # with the option's encoding
    batches: int

    @property
    def drop(self) -> float:
        return self.baseline - self.value


@dataclass(frozen=True)
class Option:
    """One way to run the net: a cut and a wire encoding, with its predicted timing."""

    client: frozenset[int]
    wire: str  # "-" for "all on client": nothing is sent
    label: str
    crossing: tuple[str, ...]
    timing: Timing
    kind: str  # "client", "cloud" or "split"
    accuracy: Accuracy | None = None

    def objective(self, name: str) -> float:
        return self.timing.objective(name)


@dataclass
class ExactBest:
    """The best option of one wire encoding found by an exact method."""

    wire: str
    method: str  # "min-cut" or "branch-and-bound"
    option: Option
    proven: bool
    nodes: int = 0


@dataclass
class Plan:
    graph: CutGraph
    model: CostModel
    objective: str
    wires: tuple[str, ...]
    options: list[Option]  # ranked, best first
    pareto: list[Option]
    n_cuts: int | None  # valid cuts, or None when more than max_enumerate
    exact: list[ExactBest] = field(default_factory=list)

    @property
    def enumerated(self) -> bool:
        return self.n_cuts is not None


def make_option(model: CostModel, client: frozenset[int], wire: str) -> Option:
    graph = model.graph
    if client == graph.all_groups:
        return Option(client, "-", "all on client", (), model.timing(client, wire), "client")
    kind = "cloud" if client == graph.minimal_cut() else "split"
    crossing = tuple(graph.crossing(client))
    return Option(client, wire, graph.describe(client), crossing, model.timing(client, wire), kind)


def rank_key(objective: str):
    other = "throughput" if objective == "latency" else "latency"
    return lambda o: (o.objective(objective), o.timing.sent_bytes, o.objective(other), len(o.client))


def pareto_front(options: Sequence[Option], objective: str) -> list[Option]:
    """Options no other option beats on both objective time and bytes sent (fewest bytes first)."""
    front: list[Option] = []
    best = float("inf")
    for o in sorted(options, key=lambda o: (o.timing.sent_bytes, o.objective(objective))):
        if o.objective(objective) < best:
            front.append(o)
            best = o.objective(objective)
    return front


def exact_best(model: CostModel, wire: str, objective: str, start=()) -> ExactBest:
    """The best option for one wire by min-cut (latency) or branch and bound (throughput)."""
    if objective == "latency":
        split = best_latency_cut(model, wire)
        candidates = [split, model.graph.all_groups]
        best = min((make_option(model, c, wire) for c in candidates), key=rank_key(objective))
        return ExactBest(wire, "min-cut", best, True)
    result = best_cut(model, wire, objective, start=start)
    return ExactBest(wire, "branch-and-bound", make_option(model, result.client, wire), result.proven, result.nodes)


def make_plan(graph: CutGraph, model: CostModel, objective: str = "latency",
              wires: Sequence[str] = ("float32",), max_enumerate: int = 10_000) -> Plan:
    """Price every cut (or the exact best and the prefixes, when there are too many) and rank them."""
    if objective not in OBJECTIVES:
        raise PlanError(f"unknown objective {objective!r} (use {' or '.join(OBJECTIVES)})")
    wires = tuple(dict.fromkeys(check_wire(w) for w in wires))
    if not wires:
        raise PlanError("give at least one wire dtype")
    n_cuts = graph.count_cuts(max_enumerate)
    if n_cuts is not None:
        cuts = [c for c in graph.enumerate_cuts() if model.is_valid(c)]
    else:
        cuts = [c for c in graph.prefixes() if model.is_valid(c)]
        cuts += [graph.minimal_cut()] if model.is_valid(graph.minimal_cut()) else []
        cuts += [graph.all_groups]
    options: dict[tuple[frozenset[int], str], Option] = {}
    for c in cuts:
        for w in wires:
            o = make_option(model, c, w)
            options.setdefault((c, o.wire), o)
    exact = []
    for w in wires:
        e = exact_best(model, w, objective, start=[c for c in cuts if c != graph.all_groups][:200])
        exact.append(e)
        key = (e.option.client, e.option.wire)
        if n_cuts is not None:
            # The listing holds every cut: the exact method must agree with its best for this wire.
            listed = min((o for o in options.values() if o.wire in (w, "-")), key=rank_key(objective))
            a, b = listed.objective(objective), e.option.objective(objective)
            if abs(a - b) > 1e-9 * max(abs(a), 1e-9) + 1e-12:
                raise PlanError(f"internal error: {e.method} found {b:.9g} s but the listing's best is {a:.9g} s "
                                f"(wire {w})")
        options.setdefault(key, e.option)
    ranked = sorted(options.values(), key=rank_key(objective))
    return Plan(graph, model, objective, wires, ranked, pareto_front(ranked, objective), n_cuts, exact)


def with_accuracy(plan: Plan, measured: dict[tuple[frozenset[int], str], Accuracy]) -> Plan:
    """The plan with measured accuracies attached to the options they belong to."""
    def attach(o: Option) -> Option:
        acc = measured.get((o.client, o.wire))
        return replace(o, accuracy=acc) if acc is not None else o

    plan.options = [attach(o) for o in plan.options]
    plan.pareto = [attach(o) for o in plan.pareto]
    return plan
