"""The best stop-and-wait cut of a DAG as one minimum s-t cut (the DADS formulation).

For a cut S (the client's groups, a down-set), stop-and-wait time is

    sum(client[g] for g in S) + sum(cloud[g] for g not in S)
      + sum(bytes(b) for b crossing S) * (1/bandwidth + cpu_per_byte)  + a constant per split

(cpu_per_byte: the client's cost of sending a byte plus the cloud's of
receiving it; the constant: rtt, frame headers and the ACK, and each side's
fixed CPU cost of a frame). Build a graph with a source ``s`` (the client
side) and a sink ``t`` (the cloud side):

* ``s -> g`` with capacity ``cloud[g]``: cut when g is in the cloud;
* ``g -> t`` with capacity ``client[g]``: cut when g is on the client;
* ``g -> p`` infinite for each predecessor p of g: a client group's
  predecessors cannot be in the cloud (so the s-side is a down-set);
* a node per read blob b: ``producer -> b`` with capacity ``bytes(b)`` times
  (1/bandwidth + the client's and cloud's CPU seconds per wire byte)
  and ``b -> reader`` infinite: when any reader is in the cloud, b is on the
  t-side, so the edge from a client-side producer is cut and b's bytes paid once;
* input layers are tied to ``s`` and blobs that must come back (``return_top``)
  tie their producers to ``t`` with infinite edges.

Every finite s-t cut is a down-set whose capacity is exactly the sum above, so
the minimum cut is the best cut. Capacities are integer picoseconds, so the
max-flow (Dinic's algorithm) is exact on them; the answer is optimal to within
a picosecond per layer and blob of rounding.
"""
from __future__ import annotations

from collections import deque

from .cost import CostModel
from .errors import PlanError

_PS = 1e12  # capacities in integer picoseconds


class MaxFlow:
    """Dinic's max-flow on integer capacities; :meth:`source_side` gives a minimum cut."""

    def __init__(self, n: int):
        self.n = n
        self.head: list[list[int]] = [[] for _ in range(n)]
        self.to: list[int] = []
        self.cap: list[int] = []

    def add_edge(self, u: int, v: int, cap: int) -> None:
        if cap < 0:
            raise ValueError("capacities must be >= 0")
        self.head[u].append(len(self.to))
        self.to.append(v)
        self.cap.append(cap)
        self.head[v].append(len(self.to))
        self.to.append(u)
        self.cap.append(0)

    def _levels(self, s: int, t: int) -> list[int] | None:
        level = [-1] * self.n
        level[s] = 0
        q = deque([s])
        while q:
            u = q.popleft()
            for e in self.head[u]:
                if self.cap[e] > 0 and level[self.to[e]] < 0:
                    level[self.to[e]] = level[u] + 1
                    q.append(self.to[e])
        return level if level[t] >= 0 else None

    def _push(self, s: int, t: int, level: list[int], it: list[int]) -> int:
        # Iterative DFS along the level graph; returns the flow of one augmenting path.
        path: list[int] = []
        u = s
        while True:
            if u == t:
                f = min(self.cap[e] for e in path)
                for e in path:
                    self.cap[e] -= f
                    self.cap[e ^ 1] += f
                return f
            advanced = False
            while it[u] < len(self.head[u]):
                e = self.head[u][it[u]]
                v = self.to[e]
                if self.cap[e] > 0 and level[v] == level[u] + 1:
                    path.append(e)
                    u = v
                    advanced = True
                    break
                it[u] += 1
            if not advanced:
                if u == s:
                    return 0
                level[u] = -1  # dead end: never try it again in this phase
                e = path.pop()
                u = self.to[e ^ 1]
                it[u] += 1

    def max_flow(self, s: int, t: int) -> int:
        flow = 0
        while True:
            level = self._levels(s, t)
            if level is None:
                return flow
            it = [0] * self.n
            while True:
                f = self._push(s, t, level, it)
                if f == 0:
                    break
                flow += f

    def source_side(self, s: int) -> set[int]:
        """Nodes reachable from ``s`` in the residual graph (after :meth:`max_flow`)."""
        seen = {s}
        q = deque([s])
        while q:
            u = q.popleft()
            for e in self.head[u]:
                v = self.to[e]
                if self.cap[e] > 0 and v not in seen:
                    seen.add(v)
                    q.append(v)
        return seen


def best_latency_cut(model: CostModel, wire: str) -> frozenset[int]:
    """The cut (client groups) minimising stop-and-wait time less the per-split constant.

    That is either "all on the client" -- then it is the best of all cuts -- or
    the best split; compare its time with "all on the client" to get the best.
    """
    graph = model.graph
    n_groups = len(graph.groups)
    blobs = graph.read_blobs
    s, t = 0, 1
    node = lambda g: 2 + g  # noqa: E731 -- tiny local index maps
    blob_node = lambda j: 2 + n_groups + j  # noqa: E731
    per_byte = 1.0 / model.link.bandwidth + model.sent_byte_cpu_s()
    caps: list[tuple[int, int, int | None]] = []  # None: infinite
    for g in range(n_groups):
        caps.append((s, node(g), round(model.cloud_time[g] * _PS)))
        caps.append((node(g), t, round(model.client_time[g] * _PS)))
        for p in graph.preds[g]:
            caps.append((node(g), node(p), None))
        if g in graph.sources:
            caps.append((s, node(g), None))
        if g in model.forced_cloud:
            caps.append((node(g), t, None))
    for j, u in enumerate(blobs):
        caps.append((node(u.producer), blob_node(j), round(model.blob_bytes(u.name, wire) * per_byte * _PS)))
        for r in u.readers:
            caps.append((blob_node(j), node(r), None))
    # "Infinite" must exceed every finite cut: more than all finite capacities together.
    inf = sum(c for _, _, c in caps if c is not None) + 1
    flow = MaxFlow(2 + n_groups + len(blobs))
    for u, v, c in caps:
        flow.add_edge(u, v, inf if c is None else c)
    value = flow.max_flow(s, t)
    if value >= inf:
        raise PlanError(f"net '{graph.name}': no cut can satisfy the constraints (inputs on the client, "
                        "return_top blobs made in the cloud)")
    side = flow.source_side(s)
    client = frozenset(g for g in range(n_groups) if node(g) in side)
    if not model.is_valid(client):  # cannot happen for a finite cut; guard the derivation above
        raise PlanError(f"internal error: min-cut of net '{graph.name}' is not a valid cut")
    return client
