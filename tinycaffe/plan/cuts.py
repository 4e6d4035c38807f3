"""The net as a DAG of layer groups, and its cuts (down-sets).

A *group* is a layer plus the in-place layers that follow it at once and work
on its tops -- the rule of :func:`tinycaffe.net.cut.cut_point`, so every cut
proposed here is one ``split`` can write (the in-place ``relu1`` right after
``pool1`` always goes with ``pool1``).

A *cut* is the set of groups kept on the client. It must be closed under
predecessors (a down-set): a group on the client needs every group it reads
from on the client too. Groups without bottoms (Input, Data, ...) read the
client's data, so they are always on the client; the smallest cut is "all in
the cloud" (the input is sent), the largest "all on the client".

A blob *crosses* a cut when its producer is on the client and some reader is
in the cloud; :meth:`CutGraph.crossing_set` gives exactly the blobs that
:func:`tinycaffe.net.cut.crossing_blobs` finds for the same layers (tested).

Dependencies: a group depends on the group that last wrote each blob it reads
(in net order), and an in-place writer that is not glued to its producer also
depends on every earlier reader of the version it overwrites -- otherwise that
reader could sit in the cloud while the writer's new version is sent.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

from ..net.build import PHASES, load_net_param
from ..net.cut import crossing_blobs, cut_point
from ..net.filter import filter_layers
from .errors import PlanError


@contextlib.contextmanager
def recursion_for(depth: int) -> Iterator[None]:
    """Let a depth-first walk recurse once per group (nets of a few thousand layers)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 3 * depth + 500))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


@dataclass(frozen=True)
class Group:
    """Layers that always stay together: a head layer and its in-place followers."""

    index: int
    name: str  # the head layer's name (what ``split --after`` takes)
    layers: tuple[str, ...]
    type: str


@dataclass(frozen=True)
class BlobUse:
    """One blob name: the group that first produces it and every group that reads it."""

    name: str
    producer: int
    readers: tuple[int, ...]


class CutGraph:
    """Groups of one net in one phase, their dependencies and their blobs.

    Build with :meth:`from_model`. ``layers`` holds the phase-filtered
    LayerParameters in net order (no Split layers: those are added when a Net
    is built and cost nothing forward).
    """

    def __init__(self, net_param, layers: Sequence, phase: str):
        self.net_param = net_param
        self.name: str = net_param.name
        self.phase = phase
        self.layers = list(layers)
        if not self.layers:
            raise PlanError(f"net '{self.name}' has no layers in phase {phase}")
        self.groups: list[Group] = []
        group_of_layer: dict[str, int] = {}
        i = 0
        while i < len(self.layers):
            j = cut_point(self.layers, self.layers[i].name) if self.layers[i].top else i
            members = self.layers[i:j + 1]
            g = len(self.groups)
            self.groups.append(Group(g, self.layers[i].name, tuple(l.name for l in members), self.layers[i].type))
            for l in members:
                group_of_layer[l.name] = g
            i = j + 1
        self.group_of_layer = group_of_layer

        preds: list[set[int]] = [set() for _ in self.groups]
        last_writer: dict[str, int] = {}
        readers_of_version: dict[str, set[int]] = {}
        producer: dict[str, int] = {}
        readers: dict[str, list[int]] = {}
        for layer in self.layers:
            g = group_of_layer[layer.name]
            for b in layer.bottom:
                if b not in last_writer:
                    raise PlanError(f"layer '{layer.name}': bottom blob '{b}' is produced by no earlier layer")
                w = last_writer[b]
                if w != g:
                    preds[g].add(w)
                    readers_of_version.setdefault(b, set()).add(g)
                    if g not in readers.setdefault(b, []):
                        readers[b].append(g)
            for t in layer.top:
                if t in last_writer and last_writer[t] != g:
                    # Overwriting a version others read: they must not be cloud-side while we are client-side.
                    preds[g].update(r for r in readers_of_version.get(t, ()) if r != g)
                if t not in last_writer:
                    producer[t] = g
                last_writer[t] = g
                readers_of_version[t] = set()
        self.preds: list[frozenset[int]] = [frozenset(p) for p in preds]
        succs: list[set[int]] = [set() for _ in self.groups]
        for g, ps in enumerate(self.preds):
            for p in ps:
                succs[p].add(g)
        self.succs: list[frozenset[int]] = [frozenset(s) for s in succs]
        self.blobs: dict[str, BlobUse] = {
            b: BlobUse(b, producer[b], tuple(readers.get(b, ()))) for b in producer
        }
        # Only blobs someone reads can cross.
        self.read_blobs: list[BlobUse] = [u for u in self.blobs.values() if u.readers]
        # Every read of each blob as ((layer index, bottom position), group), in net order.
        self._reads: dict[str, list[tuple[tuple[int, int], int]]] = {}
        for li, layer in enumerate(self.layers):
            for pos, b in enumerate(layer.bottom):
                self._reads.setdefault(b, []).append(((li, pos), group_of_layer[layer.name]))
        self.sources: frozenset[int] = frozenset(
            g.index for g in self.groups if not self.layers[self._layer_index(g.name)].bottom
        )
        if not self.sources:
            raise PlanError(f"net '{self.name}' has no input layer (Input, Data, ...): nothing starts on the client")

    def _layer_index(self, name: str) -> int:
        for i, l in enumerate(self.layers):
            if l.name == name:
                return i
        raise PlanError(f"no layer named '{name}' in net '{self.name}'")

    @classmethod
    def from_model(cls, model, phase: str = "test") -> "CutGraph":
        """The cut graph of a prototxt path, text or NetParameter, in ``phase``."""
        if phase not in PHASES:
            raise PlanError(f"unknown phase {phase!r}: use 'train' or 'test'")
        net_param = load_net_param(model)
        filtered = filter_layers(net_param, PHASES[phase])
        names = [l.name for l in filtered.layer]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PlanError(f"net '{net_param.name}': layer names must be unique ({', '.join(dup)} repeat)")
        return cls(net_param, list(filtered.layer), phase)

    # -- cuts -----------------------------------------------------------------
    @property
    def all_groups(self) -> frozenset[int]:
        return frozenset(range(len(self.groups)))

    def closure(self, groups) -> frozenset[int]:
        """The smallest down-set holding ``groups`` and the sources."""
        out = set(self.sources) | set(groups)
        stack = list(out)
        while stack:
            g = stack.pop()
            for p in self.preds[g]:
                if p not in out:
                    out.add(p)
                    stack.append(p)
        return frozenset(out)

    def minimal_cut(self) -> frozenset[int]:
        """"All in the cloud": only the input layers (and what they need) on the client."""
        return self.closure(())

    def is_cut(self, client) -> bool:
        """Whether ``client`` (group indices) holds the sources and is closed under predecessors."""
        client = frozenset(client)
        return self.sources <= client and all(self.preds[g] <= client for g in client)

    def cut_for_names(self, layer_names) -> frozenset[int]:
        """The down-set of the groups holding ``layer_names`` (unknown names are an error)."""
        groups = set()
        for n in layer_names:
            if n not in self.group_of_layer:
                raise PlanError(f"no layer named '{n}' in net '{self.name}' (phase {self.phase})")
            groups.add(self.group_of_layer[n])
        return self.closure(groups)

    def crossing_set(self, client) -> frozenset[str]:
        """Blobs produced on the client and read in the cloud (fast; no order)."""
        client = frozenset(client)
        return frozenset(
            u.name for u in self.read_blobs
            if u.producer in client and any(r not in client for r in u.readers)
        )

    def crossing(self, client) -> list[str]:
        """The crossing blobs in the order ``split`` lists them: by the cloud's first read of each."""
        client = frozenset(client)

        def first_cloud_read(name: str) -> tuple[int, int]:
            return next(pos for pos, g in self._reads[name] if g not in client)

        return sorted(self.crossing_set(client), key=first_cloud_read)

    def crossing_reference(self, client) -> list[str]:
        """The crossing blobs as ``tinycaffe.net.cut.crossing_blobs`` computes them."""
        client_layers, cloud_layers = self.partition_layers(client)
        if not cloud_layers:
            return []
        return crossing_blobs(client_layers, cloud_layers)

    def partition_layers(self, client) -> tuple[list, list]:
        """(client layers, cloud layers), each in net order."""
        client = frozenset(client)
        names_in = {n for g in client for n in self.groups[g].layers}
        c = [l for l in self.layers if l.name in names_in]
        k = [l for l in self.layers if l.name not in names_in]
        return c, k

    def describe(self, client) -> str:
        """A short name for a cut: "all in the cloud", "all on the client" or "after X[, Y]"."""
        client = frozenset(client)
        if client == self.all_groups:
            return "all on client"
        if client == self.minimal_cut():
            return "all in cloud"
        # A down-set is fixed by its maximal groups: those with no successor on the client.
        frontier = [g for g in sorted(client) if not (self.succs[g] & client)]
        return "after " + ", ".join(self.groups[g].name for g in frontier)

    def is_prefix(self, client) -> bool:
        """Whether the cut is a prefix of net order (what ``split --after`` can express directly)."""
        client = frozenset(client)
        return client == frozenset(range(len(client)))

    def prefixes(self) -> Iterator[frozenset[int]]:
        """Every net-order prefix that is a cut (each one holds the sources), smallest first."""
        seen = set()
        for k in range(1, len(self.groups) + 1):
            c = frozenset(range(k))
            if self.is_cut(c) and c not in seen:
                seen.add(c)
                yield c

    def count_cuts(self, limit: int) -> int | None:
        """How many cuts there are, or None when more than ``limit``."""
        n = 0
        for _ in self.enumerate_cuts():
            n += 1
            if n > limit:
                return None
        return n

    def enumerate_cuts(self) -> Iterator[frozenset[int]]:
        """Every down-set holding the sources, each once (depth-first over groups in net order)."""
        n = len(self.groups)
        chosen: list[bool] = [False] * n

        def walk(i: int) -> Iterator[frozenset[int]]:
            if i == n:
                yield frozenset(g for g in range(n) if chosen[g])
                return
            can_take = all(chosen[p] for p in self.preds[i])
            must_take = i in self.sources
            if can_take:
                chosen[i] = True
                yield from walk(i + 1)
                chosen[i] = False
            if not must_take:
                yield from walk(i + 1)

        # Net order is a topological order, so deciding groups in it sees every predecessor first.
        with recursion_for(n):
            yield from walk(0)
