"""Each side's own CPU cost of a frame: the profile's "wire" object, the fit, and what the planner charges.

Worked by hand on the chain of test_planner (client 20 ms per layer, cloud 1 ms,
100 kB/s, 30 ms rtt; "all in cloud" sends 8068 B, "after l2" 466 B, the ACK is 32 B).
"""
from __future__ import annotations

import json

import pytest

from tinycaffe.plan.errors import PlanError
from tinycaffe.plan.mincut import best_latency_cut
from tinycaffe.plan.planner import make_plan
from tinycaffe.plan.profile import profile_from_dict, read_profile
from tinycaffe.plan.wirecost import (
    NOT_MEASURED,
    fit_fixed_and_per_byte,
    measure_wire_cost,
)

from .helpers import cost_model, cut_of, profile_doc, wire_doc
from .test_planner import CHAIN, CHAIN_SHAPES

CLIENT_MS = {"data": 0, "l1": 20, "l2": 20, "l3": 20}
CLOUD_MS = {"data": 0, "l1": 1, "l2": 1, "l3": 1}
# Client: 1 ms + 1 us/B to send, 0.5 ms to receive. Cloud: 2 ms + 0.1 us/B to receive, 0.25 ms to send.
CLIENT_WIRE = wire_doc(send_fixed_ms=1.0, send_per_byte_us=1.0, recv_fixed_ms=0.5)
CLOUD_WIRE = wire_doc(recv_fixed_ms=2.0, recv_per_byte_us=0.1, send_fixed_ms=0.25)


def chain(rtt_ms=30.0, client_wire=CLIENT_WIRE, cloud_wire=CLOUD_WIRE):
    return cost_model(CHAIN, CLIENT_MS, CLOUD_MS, CHAIN_SHAPES, bandwidth=100_000, rtt_ms=rtt_ms,
                      client_wire=client_wire, cloud_wire=cloud_wire)


def ms(x: float) -> float:
    return round(1000 * x, 6)


def test_wire_cpu_is_charged_to_each_side_as_worked_by_hand():
    graph, model = chain()
    # All in the cloud, 8068 B sent, 32 B ACK back:
    #   client 0 + (1 + 8068 * 0.001) + 0.5 = 9.568 ms; cloud 3 + (2 + 8068 * 0.0001) + 0.25 = 6.0568 ms;
    #   link 30 + 8100 B / 100 kB/s = 111 ms; stop-and-wait 126.6248 ms; pipelined max(9.568, 80.68, 6.0568).
    t = model.timing(cut_of(graph, "data"), "float32")
    assert (ms(t.client_s), ms(t.link_s), ms(t.cloud_s)) == (9.568, 111.0, 6.0568)
    assert (ms(t.client_wire_s), ms(t.cloud_wire_s)) == (9.568, 3.0568)
    assert ms(t.stop_and_wait_s) == 126.6248 and ms(t.pipelined_s) == 80.68
    # After l2, 466 B: client 40 + 1 + 0.466 + 0.5 = 41.966; cloud 1 + 2 + 0.0466 + 0.25 = 3.2966;
    #   link 30 + 4.98 = 34.98; stop-and-wait 80.2426; pipelined: the client, 41.966.
    t = model.timing(cut_of(graph, "data", "l1", "l2"), "float32")
    assert (ms(t.client_s), ms(t.link_s), ms(t.cloud_s)) == (41.966, 34.98, 3.2966)
    assert ms(t.stop_and_wait_s) == 80.2426 and ms(t.pipelined_s) == 41.966
    # All on the client sends no frame: 60 ms, no wire cost.
    t = model.timing(graph.all_groups, "float32")
    assert (ms(t.stop_and_wait_s), t.client_wire_s, t.cloud_wire_s) == (60.0, 0.0, 0.0)


def test_a_frame_cost_can_change_the_best_cut():
    # Without the rtt and without wire costs "after l2" wins on latency: 40 + 4.98 + 1 = 45.98 ms < 60.
    graph, model = chain(rtt_ms=0.0, client_wire=None, cloud_wire=None)
    assert make_plan(graph, model, "latency").options[0].label == "after l2"
    # A client that spends 15 ms per frame: 40 + 15.966 + 4.98 + 3.2966 = 64.2426 ms > 60: stay local.
    slow = wire_doc(send_fixed_ms=15.0, send_per_byte_us=1.0, recv_fixed_ms=0.5)
    graph, model = chain(rtt_ms=0.0, client_wire=slow)
    plan = make_plan(graph, model, "latency")  # raises if the min-cut disagrees with the listing
    assert [o.label for o in plan.options[:2]] == ["all on client", "after l2"]
    assert ms(plan.options[1].timing.stop_and_wait_s) == 64.2426


def test_per_byte_cost_weighs_in_the_min_cut():
    # Per byte only, big enough to matter: 60 us/B on the client, no rtt. After l2 (466 B) costs
    # 40 + 27.96 + 4.98 + 1 = 73.94 ms (45.98 without it), the input 8068 B x 0.06 ms more still:
    # "all on client" (60 ms) wins. In the min-cut graph l2's edge is 426 B x (10 + 60) us = 29.82 ms,
    # so cutting there costs 40 + 29.82 + 1 = 70.82 > 60 (l2's 40 B share of the frame is a constant).
    heavy = wire_doc(send_per_byte_us=60.0)
    graph, model = chain(rtt_ms=0.0, client_wire=heavy, cloud_wire=None)
    assert ms(model.timing(cut_of(graph, "data", "l1", "l2"), "float32").stop_and_wait_s) == 73.94
    assert best_latency_cut(model, "float32") == graph.all_groups
    assert make_plan(graph, model, "latency").options[0].label == "all on client"
    # At 5 us/B the split is back: 40 + 2.33 + 4.98 + 1 = 48.31 ms < 60, and the min-cut finds it.
    graph, model = chain(rtt_ms=0.0, client_wire=wire_doc(send_per_byte_us=5.0), cloud_wire=None)
    assert best_latency_cut(model, "float32") == cut_of(graph, "data", "l1", "l2")
    assert ms(make_plan(graph, model, "latency").options[0].timing.stop_and_wait_s) == 48.31


def test_old_profiles_load_with_no_wire_cost_and_say_so():
    doc = profile_doc(CLIENT_MS, CHAIN_SHAPES)
    doc["format"] = "tinycaffe-profile/1"
    del doc["wire"]
    p = profile_from_dict(doc, "old.json")
    assert p.wire is NOT_MEASURED and p.wire.send_s(10_000) == 0.0
    assert "wire costs not measured (charged 0)" in p.summary()


def test_bad_wire_objects_are_refused_naming_the_file_and_field(tmp_path):
    doc = profile_doc(CLIENT_MS, CHAIN_SHAPES, wire=wire_doc())
    doc["wire"]["send_per_byte_s"] = -1e-9
    path = tmp_path / "client.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=r"client\.json: wire\.send_per_byte_s must be a finite number >= 0"):
        read_profile(path)
    doc["wire"] = [1, 2]
    with pytest.raises(PlanError, match="'wire' must be an object"):
        profile_from_dict(doc, "c.json")
    doc["format"] = "tinycaffe-profile/3"
    with pytest.raises(PlanError, match="not a tinycaffe profile"):
        profile_from_dict(doc, "c.json")


def test_fit_line_worked_by_hand():
    assert fit_fixed_and_per_byte([(0, 1.0), (10, 21.0), (20, 41.0)]) == pytest.approx((1.0, 2.0))
    # Noise giving a negative slope: a flat line at the mean.
    assert fit_fixed_and_per_byte([(0, 5.0), (10, 3.0)]) == pytest.approx((4.0, 0.0))
    # A negative intercept: through the origin, slope sum(xy) / sum(xx) = (10*5 + 20*15) / 500 = 0.7.
    assert fit_fixed_and_per_byte([(10, 5.0), (20, 15.0)]) == pytest.approx((0.0, 0.7))
    assert fit_fixed_and_per_byte([(7, 2.0)]) == (2.0, 0.0)
    with pytest.raises(PlanError):
        fit_fixed_and_per_byte([])


def test_measured_wire_cost_on_this_machine():
    w = measure_wire_cost(sizes=(4096, 1 << 20), repeats=2)
    assert w["samples"][0]["bytes"] > 4096  # the frame: header, table and payload
    # A MiB frame costs the sender's and the reader's CPU more than a 4 KiB one (a memcpy and a checksum).
    small, big = w["samples"]
    assert big["send_cpu_s"] > small["send_cpu_s"] and big["recv_cpu_s"] > small["recv_cpu_s"]
    assert w["cpu_to_wall"] > 0 and w["checksum"] in ("xxh3", "crc32")
    assert all(w[k] >= 0 for k in ("send_fixed_s", "send_per_byte_s", "recv_fixed_s", "recv_per_byte_s"))
    with pytest.raises(PlanError, match="repeats > 0"):
        measure_wire_cost(repeats=0)


def test_profile_without_wire_cost_is_charged_nothing_and_the_plan_says_so(tmp_path):
    from tests.conftest import REPO
    from tests.test_cli import run

    full = str(REPO / "prototxt" / "cifar10_full.prototxt")
    out_json = tmp_path / "c.json"
    code, out, err = run(["profile", full, "--batch", "1", "--threads", "1", "--repeats", "1", "--warmup", "0",
                          "--no-wire-cost", "-o", str(out_json)])
    assert code == 0, err
    assert "wire cost: not measured (--no-wire-cost)" in out
    doc = json.loads(out_json.read_text())
    assert doc["format"] == "tinycaffe-profile/2" and doc["wire"] is None
    code, out, err = run(["probe", "--bandwidth", "10Mbps", "--rtt", "1ms", "-o", str(tmp_path / "l.json")])
    assert code == 0, err
    code, out, err = run(["plan", full, "--client", str(out_json), "--cloud", str(out_json),
                          "--link", str(tmp_path / "l.json"), "--top", "2"])
    assert code == 0, err
    assert out.count("wire costs not measured (charged 0)") == 2  # the client's and the cloud's line
