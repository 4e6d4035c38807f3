"""The re-cut client's decision: choose_cut and the throughput estimate, on hand-made numbers."""
from __future__ import annotations

import pytest

from tinycaffe.plan.errors import PlanError
from tinycaffe.plan.recut import CutCost, ThroughputEstimate, candidate_costs, choose_cut

from .helpers import cost_model

# Worked by hand (seconds, bytes): at bandwidth B and rtt 0.01 s,
#   cloud:  0     + 0.01 + (1_000_000 + 100)/B + 0.010
#   mid:    0.050 + 0.01 + (  100_000 + 100)/B + 0.005
#   local:  0.100
COSTS = [
    CutCost("all in cloud", "", False, 0.0, 0.010, 1_000_000, 100),
    CutCost("after mid", "mid", False, 0.050, 0.005, 100_000, 100),
    CutCost("all on client", "", True, 0.100, 0.0, 0, 0),
]


def test_predict_by_hand():
    assert COSTS[0].predict(1e7, 0.01) == pytest.approx(0.01 + 1_000_100 / 1e7 + 0.010)  # 0.12001
    assert COSTS[1].predict(1e7, 0.01) == pytest.approx(0.050 + 0.01 + 100_100 / 1e7 + 0.005)  # 0.07501
    assert COSTS[2].predict(1.0, 5.0) == 0.100  # nothing sent: the link does not matter


def test_fast_link_picks_the_cheapest():
    # 100 MB/s: cloud 0.030 s, mid 0.066 s, local 0.100 s.
    assert choose_cut(COSTS, "all on client", 1e8, 0.01, 0.2) == "all in cloud"
    assert choose_cut(COSTS, "after mid", 1e8, 0.01, 0.2) == "all in cloud"  # 0.030 < 0.8 * 0.066


def test_slow_link_moves_to_the_client():
    # 1 MB/s: cloud 1.02 s, mid 0.165 s, local 0.100 s.
    assert choose_cut(COSTS, "all in cloud", 1e6, 0.01, 0.2) == "all on client"
    # 0.100 < 0.8 * 0.165 = 0.132: from mid too.
    assert choose_cut(COSTS, "after mid", 1e6, 0.01, 0.2) == "all on client"


def test_margin_prevents_a_small_switch():
    # 5 MB/s: mid 0.085 s, local 0.100 s, cloud 0.220 s. From local, mid is 15% faster: below a 20%
    # margin it stays, above a 10% margin it moves.
    assert choose_cut(COSTS, "all on client", 5e6, 0.01, 0.2) == "all on client"
    assert choose_cut(COSTS, "all on client", 5e6, 0.01, 0.1) == "after mid"
    # Already on the best: stays whatever the margin.
    assert choose_cut(COSTS, "after mid", 5e6, 0.01, 0.0) == "after mid"


def test_unknown_current_cut_is_an_error():
    with pytest.raises(PlanError, match="not a candidate"):
        choose_cut(COSTS, "after nothing", 1e6, 0.0, 0.2)


def test_estimate_takes_off_the_rtt_and_averages():
    e = ThroughputEstimate(bandwidth=1e7, rtt=0.01, alpha=0.5, jump=4.0)
    assert e.add(1_000_000, 0.11) == pytest.approx(1e7)  # 1 MB in 0.1 s after the rtt
    assert e.add(1_000_000, 0.21) == pytest.approx(0.5 * 5e6 + 0.5 * 1e7)
    assert e.add(1_000_000, 0.005) == pytest.approx(7.5e6)  # shorter than the rtt: ignored
    assert e.samples == 2


def test_first_sample_replaces_the_starting_guess():
    e = ThroughputEstimate(bandwidth=1e9, rtt=0.0, alpha=0.25)
    assert e.add(500_000, 1.0) == pytest.approx(5e5)


NET = """
name: "chain"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1000 } } }
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a" inner_product_param { num_output: 100 } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "b" top: "prob" }
"""
SHAPES = {"data": (1, 1000), "a": (1, 100), "b": (1, 10), "prob": (1, 10)}


def test_candidates_from_the_cost_model():
    _, model = cost_model(NET, {"data": 0, "a": 10, "b": 1, "prob": 1}, {"data": 0, "a": 2, "b": 1, "prob": 1},
                          SHAPES, 1e6, 1.0, return_top=["prob"])
    costs = {c.name: c for c in candidate_costs(model)}
    # "after b" leaves prob in the cloud; "after prob" would be all on client (no cloud layer).
    assert set(costs) == {"all in cloud", "after a", "after b", "all on client"}
    assert costs["all in cloud"].after == "" and costs["after a"].after == "a"
    assert costs["all on client"].local and costs["all on client"].client_s == pytest.approx(0.012)
    assert costs["after a"].client_s == pytest.approx(0.010) and costs["after a"].cloud_s == pytest.approx(0.002)
    assert costs["after a"].sent_bytes < costs["all in cloud"].sent_bytes


def test_a_level_shift_replaces_the_estimate():
    e = ThroughputEstimate(bandwidth=1.25e7, rtt=0.0, alpha=0.5, jump=4.0)
    e.add(1_250_000, 0.1)  # 12.5 MB/s: the first sample
    # 100 -> 5 Mbit/s: a sample 20x below is taken as it is, not averaged in.
    assert e.add(625_000, 1.0) == pytest.approx(6.25e5)
    # Within the factor: averaged.
    assert e.add(1_250_000, 1.0) == pytest.approx(0.5 * 1.25e6 + 0.5 * 6.25e5)


def test_a_lower_bound_sample_only_raises_the_estimate():
    e = ThroughputEstimate(bandwidth=6.25e5, rtt=0.001, alpha=0.5, jump=4.0)
    # 4 kB in 9 ms after the rtt: 455 kB/s, below the estimate, from a frame too small to tell: ignored.
    assert e.add(4096, 0.010, lower_bound=True) == pytest.approx(6.25e5) and e.samples == 0
    # 4 kB in 1 ms: 4.1 MB/s, above it (more than 4x): the link is at least that fast.
    assert e.add(4096, 0.002, lower_bound=True) == pytest.approx(4.096e6)
    # A large frame may lower it: 1 MB in 0.5 s (2 MB/s, within 4x: averaged).
    assert e.add(1_000_000, 0.501) == pytest.approx(0.5 * 2e6 + 0.5 * 4.096e6)
