"""The planner on hand-made profiles, with every answer worked out by hand in the comments.

Bytes on the wire (float32): a DATA frame is 28 (frame header) + 12 (payload
prefix) + per blob 2 + len(name) + 6 + 4 * ndim + 8 (table entry) + 4 * elements;
the ACK that answers it is 32 bytes. All blobs here are 2-D, so a blob named
``n`` with E elements adds 24 + len(n) + 4E bytes.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycaffe.plan.errors import PlanError
from tinycaffe.plan.mincut import best_latency_cut
from tinycaffe.plan.planner import make_plan, pareto_front
from tinycaffe.plan.search import best_cut

from .helpers import cost_model, cut_of, wire_doc

CHAIN = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 2000] } } }
layer { name: "l1" type: "InnerProduct" bottom: "data" top: "l1" inner_product_param { num_output: 4000 } }
layer { name: "l2" type: "InnerProduct" bottom: "l1" top: "l2" inner_product_param { num_output: 100 } }
layer { name: "l3" type: "InnerProduct" bottom: "l2" top: "l3" inner_product_param { num_output: 10 } }
"""
CHAIN_SHAPES = {"data": (1, 2000), "l1": (1, 4000), "l2": (1, 100), "l3": (1, 10)}


def chain(rtt_ms=30.0):
    # Client 20 ms per layer, cloud 1 ms per layer; 100 kB/s link.
    return cost_model(CHAIN, {"data": 0, "l1": 20, "l2": 20, "l3": 20}, {"data": 0, "l1": 1, "l2": 1, "l3": 1},
                      CHAIN_SHAPES, bandwidth=100_000, rtt_ms=rtt_ms)


def test_chain_times_worked_by_hand():
    graph, model = chain()
    ms = lambda c: round(1000 * model.timing(c, "float32").stop_and_wait_s, 6)  # noqa: E731
    pipe = lambda c: round(1000 * model.timing(c, "float32").pipelined_s, 6)  # noqa: E731
    # All on the client: 20 + 20 + 20 = 60 ms, nothing sent.
    assert ms(graph.all_groups) == pipe(graph.all_groups) == 60.0
    # All in the cloud: send data = 40 + (24 + 4 + 8000) = 8068 B, ACK 32 B:
    # 30 ms rtt + 8100 B / 100 kB/s = 30 + 81 = 111 ms link, + 3 ms cloud = 114 ms;
    # pipelined: the link's busier direction, 8068 B -> 80.68 ms.
    assert ms(cut_of(graph, "data")) == 114.0
    assert pipe(cut_of(graph, "data")) == 80.68
    # After l1: 40 + (24 + 2 + 16000) = 16066 B: 20 + 30 + 160.98 + 2 = 212.98 ms; pipelined 160.66 ms.
    assert ms(cut_of(graph, "data", "l1")) == 212.98
    assert pipe(cut_of(graph, "data", "l1")) == 160.66
    # After l2: 40 + (24 + 2 + 400) = 466 B: 40 + 30 + 4.98 + 1 = 75.98 ms; pipelined max(40, 4.66, 1) = 40 ms.
    assert ms(cut_of(graph, "data", "l1", "l2")) == 75.98
    assert pipe(cut_of(graph, "data", "l1", "l2")) == 40.0


def test_chain_best_depends_on_the_objective():
    # From the times above: latency -> all on client (60 < 75.98 < 114 < 212.98);
    # throughput -> after l2 (40 < 60 < 80.68 < 160.66).
    graph, model = chain()
    lat = make_plan(graph, model, "latency")
    assert lat.n_cuts == 4  # {data}, {data,l1}, {data,l1,l2}, all
    assert [o.label for o in lat.options] == ["all on client", "after l2", "all in cloud", "after l1"]
    thr = make_plan(graph, model, "throughput")
    assert [o.label for o in thr.options] == ["after l2", "all on client", "all in cloud", "after l1"]
    assert thr.options[0].crossing == ("l2",)
    # Without the 30 ms round trip, after l2 also wins on latency: 40 + 4.98 + 1 = 45.98 ms < 60.
    graph, model = chain(rtt_ms=0.0)
    assert make_plan(graph, model, "latency").options[0].label == "after l2"


def test_wire_dtypes_shrink_the_payload_as_worked_by_hand():
    graph, model = chain()
    cut = cut_of(graph, "data", "l1", "l2")
    # l2 as float16: 40 + (24 + 2 + 200) = 266 B; as uint8: 40 + (24 + 2 + 16 + 100) = 182 B.
    assert model.timing(cut, "float32").sent_bytes == 466
    assert model.timing(cut, "float16").sent_bytes == 266
    assert model.timing(cut, "uint8").sent_bytes == 182
    plan = make_plan(graph, model, "throughput", ["float32", "float16", "uint8"])
    # All in the cloud with data as uint8: 40 + (24 + 4 + 16 + 2000) = 2084 B -> 20.84 ms, the best;
    # (as float16: 40 + 28 + 4000 = 4068 B -> 40.68 ms, just behind). After l2 the three wires tie
    # at 40 ms (client-bound) and fewer bytes rank first.
    assert [(o.label, o.wire) for o in plan.options[:4]] == [
        ("all in cloud", "uint8"), ("after l2", "uint8"), ("after l2", "float16"), ("after l2", "float32")]
    assert round(1000 * plan.options[0].timing.pipelined_s, 6) == 20.84


# data -> conv -> c; c -> pool -> P -> right -> R; c -> left -> L; concat(R, L).
# 'right' is listed before 'left', so {data, conv, pool, left} is not a prefix of net order.
BRANCH = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 1000] } } }
layer { name: "conv" type: "InnerProduct" bottom: "data" top: "c" inner_product_param { num_output: 1000 } }
layer { name: "pool" type: "InnerProduct" bottom: "c" top: "P" inner_product_param { num_output: 10 } }
layer { name: "right" type: "InnerProduct" bottom: "P" top: "R" inner_product_param { num_output: 10 } }
layer { name: "left" type: "InnerProduct" bottom: "c" top: "L" inner_product_param { num_output: 10 } }
layer { name: "concat" type: "Concat" bottom: "R" bottom: "L" top: "cat" }
"""
BRANCH_SHAPES = {"data": (1, 1000), "c": (1, 1000), "P": (1, 10), "R": (1, 10), "L": (1, 10), "cat": (1, 20)}


def branch():
    # Client: conv, pool, left, concat 1 ms, right 50 ms. Cloud: 0.5 ms each. 100 kB/s, no rtt.
    client = {"data": 0, "conv": 1, "pool": 1, "right": 50, "left": 1, "concat": 1}
    cloud = {"data": 0, "conv": 0.5, "pool": 0.5, "right": 0.5, "left": 0.5, "concat": 0.5}
    return cost_model(BRANCH, client, cloud, BRANCH_SHAPES, bandwidth=100_000, rtt_ms=0.0)


def test_a_dag_with_a_branch_worked_by_hand():
    # Entries: data 28 + 4000, c 25 + 4000, P / R / L 25 + 40; frame 40 B, ACK 32 B.
    # Cut                      client  link (B -> ms)                         cloud  stop-and-wait
    # {d}                      0       40+4028+32 = 4100 -> 41.00             2.5    43.50
    # {d,conv}                 1       40+4025+32 = 4097 -> 40.97             2.0    43.97
    # {d,conv,pool}            2       c (left), P: 40+4025+65+32 -> 41.62    1.5    45.12
    # {d,conv,left}            2       c (pool), L: same bytes -> 41.62       1.5    45.12
    # {d,conv,pool,left}       3       P, L: 40+65+65+32 = 202 -> 2.02        1.0     6.02  <- best
    # {d,conv,pool,right}      52      c (left), R: 41.62                     1.0    94.62
    # {d,conv,pool,right,left} 53      R, L: 2.02                             0.5    55.52
    # all on client            54      -                                      -      54.00
    graph, model = branch()
    plan = make_plan(graph, model, "latency")
    assert plan.n_cuts == 8
    got = {o.label: round(1000 * o.timing.stop_and_wait_s, 6) for o in plan.options}
    assert got == {
        "all in cloud": 43.5, "after conv": 43.97, "after pool": 45.12, "after left": 45.12,
        "after pool, left": 6.02, "after right": 94.62, "after right, left": 55.52, "all on client": 54.0,
    }
    best = plan.options[0]
    assert best.client == cut_of(graph, "data", "conv", "pool", "left")
    assert not graph.is_prefix(best.client)
    # The best cut must cross two blobs: P (for right) and L (for concat).
    assert set(best.crossing) == {"P", "L"}
    # Pipelined: max(3 client, 170 B -> 1.70 ms link, 1.0 cloud) = 3 ms, also the best.
    assert round(1000 * best.timing.pipelined_s, 6) == 3.0
    assert make_plan(graph, model, "throughput").options[0].client == best.client


def test_exact_methods_find_the_branch_cut():
    graph, model = branch()
    best = cut_of(graph, "data", "conv", "pool", "left")
    assert best_latency_cut(model, "float32") == best
    for objective in ("latency", "throughput"):
        result = best_cut(model, "float32", objective)
        assert result.proven and result.client == best


def test_a_search_stopped_early_says_it_is_not_proven():
    graph, model = branch()
    result = best_cut(model, "float32", "throughput", max_nodes=1)
    assert not result.proven and graph.is_cut(result.client)


def test_when_cuts_are_too_many_to_list_the_exact_best_is_still_found():
    graph, model = branch()
    plan = make_plan(graph, model, "latency", max_enumerate=3)
    assert not plan.enumerated
    assert plan.options[0].client == cut_of(graph, "data", "conv", "pool", "left")
    # The listing then holds the prefixes, all-in-cloud, all-on-client and the exact best.
    assert len(plan.options) == len(list(graph.prefixes())) + 1


def test_pareto_front_keeps_only_undominated_options():
    graph, model = branch()
    plan = make_plan(graph, model, "latency")
    # By bytes sent: all on client (0 B, 54 ms), then {d,conv,pool,left} (202 B, 6.02 ms) beats everything else.
    assert [o.label for o in plan.pareto] == ["all on client", "after pool, left"]
    assert pareto_front(plan.options, "latency") == plan.pareto


def test_return_top_must_be_made_in_the_cloud():
    # Returning R: right must run in the cloud. Each split pays the RESULT frame back:
    # 40 + (24 + 1 + 40) = 105 B instead of the 32 B ACK.
    client = {"data": 0, "conv": 1, "pool": 1, "right": 50, "left": 1, "concat": 1}
    cloud = {k: 0.5 for k in client}
    graph, model = cost_model(BRANCH, client, cloud, BRANCH_SHAPES, 100_000, 0.0, return_top=["R"])
    plan = make_plan(graph, model, "latency")
    assert all(graph.group_of_layer["right"] not in o.client for o in plan.options if o.kind != "client")
    best = plan.options[0]
    # {d,conv,pool,left}: 3 + (40 + 130 + 105) B -> 2.75 ms + 1.0 = 6.75 ms.
    assert best.client == cut_of(graph, "data", "conv", "pool", "left")
    assert round(1000 * best.timing.stop_and_wait_s, 6) == 6.75
    assert best_latency_cut(model, "float32") == best.client


def test_profiles_of_another_batch_or_net_are_refused():
    with pytest.raises(PlanError, match="no time for layer 'l3'"):
        cost_model(CHAIN, {"data": 0, "l1": 1, "l2": 1}, {"data": 0, "l1": 1, "l2": 1, "l3": 1}, CHAIN_SHAPES,
                   1e5, 0)
    with pytest.raises(PlanError, match="unknown objective"):
        graph, model = chain()
        make_plan(graph, model, "speed")


# -- exactness on random DAGs, against brute force --------------------------------
@st.composite
def random_dags(draw):
    """A random net: an Input, then layers reading one or two earlier blobs, some in-place ReLUs."""
    n = draw(st.integers(2, 9))
    lines = ['layer { name: "in" type: "Input" top: "b0" input_param { shape { dim: [1, 4] } } }']
    blobs = ["b0"]
    for i in range(1, n + 1):
        k = draw(st.integers(1, min(2, len(blobs))))
        bottoms = draw(st.lists(st.sampled_from(blobs), min_size=k, max_size=k, unique=True))
        lines.append(f'layer {{ name: "l{i}" type: "Eltwise" {" ".join(f"bottom: {b!r}" for b in bottoms)} '
                     f'top: "b{i}" }}'.replace("'", '"'))
        blobs.append(f"b{i}")
        if draw(st.booleans()):
            lines.append(f'layer {{ name: "r{i}" type: "ReLU" bottom: "b{i}" top: "b{i}" }}')
    text = "\n".join(lines)
    names = ["in"] + [f"l{i}" for i in range(1, n + 1)] + [f"r{i}" for i in range(1, n + 1)]
    times = st.floats(0, 50, allow_nan=False)
    client = {nm: draw(times) for nm in names}
    cloud = {nm: draw(times) for nm in names}
    shapes = {f"b{i}": (1, draw(st.integers(1, 5000))) for i in range(n + 1)}
    bandwidth = draw(st.sampled_from([1e4, 1e5, 1e6, 1e8]))
    rtt = draw(st.sampled_from([0.0, 5.0, 40.0]))
    # Each side's own CPU cost of frames: none, or per frame (ms) and per byte (us) drawn.
    wires = [None if draw(st.booleans()) else
             wire_doc(*(draw(st.sampled_from([0.0, 0.01, 0.5, 3.0])) for _ in range(4))) for _ in range(2)]
    return cost_model(text, client, cloud, shapes, bandwidth, rtt, client_wire=wires[0], cloud_wire=wires[1])


@settings(max_examples=60, deadline=None)
@given(random_dags(), st.sampled_from(["float32", "uint8"]))
def test_min_cut_and_branch_and_bound_match_brute_force(dag, wire):
    graph, model = dag
    cuts = list(graph.enumerate_cuts())
    assert all(graph.crossing(c) == graph.crossing_reference(c) for c in cuts)
    for objective in ("latency", "throughput"):
        brute = min(model.timing(c, wire).objective(objective) for c in cuts)
        found = best_cut(model, wire, objective)
        assert found.proven
        assert found.timing.objective(objective) == pytest.approx(brute, rel=1e-9, abs=1e-12)
    # The min-cut leaves out the constant every split pays (rtt, headers, ACK), so it returns
    # either "all on client" (then the best of all) or the best split; exact up to picosecond rounding.
    found = best_latency_cut(model, wire)
    assert graph.is_cut(found)
    sw = lambda c: model.timing(c, wire).stop_and_wait_s  # noqa: E731
    best_all = min(sw(c) for c in cuts)
    assert min(sw(found), sw(graph.all_groups)) == pytest.approx(best_all, abs=1e-9)
    if found != graph.all_groups:
        assert sw(found) == pytest.approx(min(sw(c) for c in cuts if c != graph.all_groups), abs=1e-9)


def test_googlenet_exact_methods_agree_with_listing_every_cut():
    # 499 cuts of GoogLeNet's deploy net (inception branches); random but fixed profiles.
    import numpy as np

    from tinycaffe.plan.cost import CostModel
    from tinycaffe.plan.cuts import CutGraph
    from tinycaffe.plan.profile import profile_from_dict
    from tests.conftest import shared_path

    from .helpers import link, profile_doc

    graph = CutGraph.from_model(shared_path("data", "bvlc-prototxt", "models", "bvlc_googlenet", "deploy.prototxt"))
    rng = np.random.default_rng(7)
    names = [l.name for l in graph.layers]
    shapes = {b: (1, int(rng.integers(1, 50_000))) for l in graph.layers for b in l.top}
    client = profile_from_dict(profile_doc({n: float(rng.uniform(0, 10)) for n in names}, shapes))
    cloud = profile_from_dict(profile_doc({n: float(rng.uniform(0, 1)) for n in names}, shapes))
    for bandwidth in (1e6, 1e8):
        model = CostModel(graph, client, cloud, link(bandwidth, 10.0))
        for objective in ("latency", "throughput"):
            # make_plan raises if the exact method disagrees with the listing's best.
            listed = make_plan(graph, model, objective, ["float32", "uint8"])
            assert listed.n_cuts == 499
            exact_only = make_plan(graph, model, objective, ["float32", "uint8"], max_enumerate=10)
            assert not exact_only.enumerated
            assert exact_only.options[0].objective(objective) == pytest.approx(
                listed.options[0].objective(objective), rel=1e-12)
