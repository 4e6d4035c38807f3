"""Exact branch-and-bound search over every cut, for either objective.

Groups are decided in net order (a topological order), each put on the client
or in the cloud; a group whose predecessor went to the cloud must go there too,
input layers stay on the client. Every down-set is reached exactly once.

A branch is dropped when a lower bound on every cut below it is no better than
the best cut found so far. Bounds come from what is already decided:

* client time >= the client times of groups put on the client (it only grows);
* cloud time  >= the cloud times of groups put in the cloud;
* client + cloud >= both of those plus, for each undecided group, the smaller
  of its two times;
* sent bytes >= the blobs already known to cross (producer on the client and a
  reader in the cloud), plus the frame overhead once anything is in the cloud;
  each side's CPU cost of the frames (fixed + per byte) grows with them.

For the pipelined objective (the slowest stage) the bound is the largest of
client, cloud, link and (client + cloud) / 2; for stop-and-wait it is their sum
(with rtt). These bounds never exceed the true time of any cut below the
branch, so the search is exact: it returns an optimal cut (to within 1e-12
relative, the slack left for float rounding), unless it stops at
``max_nodes`` branches, which it reports (``proven`` is False).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .cost import CostModel, Timing
from .cuts import recursion_for


@dataclass(frozen=True)
class SearchResult:
    client: frozenset[int]
    timing: Timing
    nodes: int  # branches visited
    proven: bool  # False when the search stopped at max_nodes


def best_cut(model: CostModel, wire: str, objective: str, *,
             start: Iterable[frozenset[int]] = (), max_nodes: int = 2_000_000) -> SearchResult:
    """The cut of least ``objective`` ("latency" or "throughput") for ``wire``.

    ``start`` gives cuts to try first (a good incumbent prunes more).
    """
    graph = model.graph
    n = len(graph.groups)
    c_t, k_t = model.client_time, model.cloud_time
    bw = model.link.bandwidth
    over_sent, over_ret = model.cut_overhead_bytes(wire)
    blob_bytes = {u.name: model.blob_bytes(u.name, wire) for u in graph.read_blobs}
    # For each group: the blobs it reads, with their producers (checked when the group goes to the cloud).
    reads: list[list[tuple[str, int]]] = [[] for _ in range(n)]
    for u in graph.read_blobs:
        for r in u.readers:
            reads[r].append((u.name, u.producer))
    suffix_min = [0.0] * (n + 1)
    for g in range(n - 1, -1, -1):
        suffix_min[g] = suffix_min[g + 1] + min(c_t[g], k_t[g])
    latency = objective == "latency"

    best_client: frozenset[int] | None = None
    best_time = float("inf")
    best_timing: Timing | None = None

    def consider(client: frozenset[int]) -> None:
        nonlocal best_client, best_time, best_timing
        if not model.is_valid(client):
            return
        tm = model.timing(client, wire)
        v = tm.objective(objective)
        if v < best_time:
            best_client, best_time, best_timing = client, v, tm

    consider(graph.all_groups)
    consider(graph.minimal_cut())
    for c in start:
        consider(c)

    on_client = [False] * n
    counted: set[str] = set()
    nodes = 0
    stopped = False

    def bound(i: int, c: float, k: float, sent: int, any_cloud: bool) -> float:
        rest = suffix_min[i]
        if any_cloud:
            cw, kw = model.wire_cpu(over_sent + sent, over_ret)
            c, k = c + cw, k + kw
        if latency:
            link = (model.link.rtt + (over_sent + sent + over_ret) / bw) if any_cloud else 0.0
            return c + k + rest + link
        link = max(over_sent + sent, over_ret) / bw if any_cloud else 0.0
        return max(c, k, (c + k + rest) / 2, link)

    def walk(i: int, c: float, k: float, sent: int, any_cloud: bool) -> None:
        nonlocal nodes, stopped
        nodes += 1
        if nodes > max_nodes:
            stopped = True
            return
        if bound(i, c, k, sent, any_cloud) >= best_time * (1 - 1e-12):
            return
        if i == n:
            consider(frozenset(g for g in range(n) if on_client[g]))
            return
        may_client = all(on_client[p] for p in graph.preds[i]) and i not in model.forced_cloud
        must_client = i in graph.sources
        if may_client:
            on_client[i] = True
            walk(i + 1, c + c_t[i], k, sent, any_cloud)
            on_client[i] = False
            if stopped:
                return
        if not must_client:
            # In the cloud: the blobs it reads from client groups cross.
            added = [b for b, p in reads[i] if on_client[p] and b not in counted]
            counted.update(added)
            walk(i + 1, c, k + k_t[i], sent + sum(blob_bytes[b] for b in added), True)
            counted.difference_update(added)

    with recursion_for(n):
        walk(0, 0.0, 0.0, 0, False)
    assert best_client is not None and best_timing is not None  # all-on-client is always valid
    return SearchResult(best_client, best_timing, nodes, not stopped)
