"""`tinycaffe profile`, `probe` and `plan` end to end on the study net, with a tiny batch."""
from __future__ import annotations

import json

import pytest

from tinycaffe.plan.cuts import CutGraph
from tinycaffe.plan.errors import PlanError
from tinycaffe.plan.profile import measure_profile
from tinycaffe.plan.write import cut_params
from tests.conftest import REPO
from tests.test_cli import run

from .test_planner import BRANCH

FULL = str(REPO / "prototxt" / "cifar10_full.prototxt")
SAMPLE = str(REPO / "prototxt" / "cifar10_full_sample.prototxt")
WEIGHTS = str(REPO / "weights" / "study" / "full_iter_5000.caffemodel")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan")
    code, out, err = run(["profile", FULL, "--batch", "2", "--threads", "1", "--repeats", "2",
                          "-o", str(d / "client.json")])
    assert code == 0, err
    assert "conv1" in out and "wrote" in out and "wire cost: sending" in out
    code, out, err = run(["probe", "--bandwidth", "10Mbps", "--rtt", "20ms", "-o", str(d / "link.json")])
    assert code == 0, err
    assert "10 Mbit/s" in out and "rtt 20 ms" in out
    return d


def test_profile_writes_the_documented_format(files):
    doc = json.loads((files / "client.json").read_text())
    assert doc["format"] == "tinycaffe-profile/2" and doc["batch"] == 2 and doc["machine"]["threads"] == 1
    assert doc["blobs"]["pool1"]["shape"] == [2, 32, 16, 16]
    wire = doc["wire"]
    assert [s["bytes"] > 0 for s in wire["samples"]] == [True] * 3
    assert wire["send_per_byte_s"] + wire["send_fixed_s"] > 0 and wire["recv_per_byte_s"] + wire["recv_fixed_s"] > 0
    assert wire["cpu_to_wall"] > 0
    assert [l["name"] for l in doc["layers"]][:3] == ["data", "conv1", "pool1"]


def test_plan_prints_a_ranked_table_and_the_pareto_front(files):
    c = str(files / "client.json")
    code, out, err = run(["plan", FULL, "--client", c, "--cloud", c, "--link", str(files / "link.json"),
                          "--wire", "float32,uint8", "--top", "5"])
    assert code == 0, err
    assert "11 valid cuts x 2 wire dtype(s)" in out
    assert "exact best for uint8 (min-cut agrees with the listing)" in out
    table = out.split("Pareto front")[0]
    assert len([ln for ln in table.splitlines() if ln[:4].strip().isdigit()]) == 5
    assert "not measured" in out  # uint8 without --val


def test_plan_measures_the_wire_accuracy_with_val(files):
    c = str(files / "client.json")
    code, out, err = run(["plan", FULL, "--client", c, "--cloud", c, "--link", str(files / "link.json"),
                          "--wire", "uint8", "--top", "3", "--val", SAMPLE, "--weights", WEIGHTS,
                          "--val-iterations", "1"])
    assert code == 0, err
    assert "not measured" not in out
    assert "accuracy: 'accuracy' of" in out and "over 1 batches" in out


def _forced_profile(path, cheap_until: str):
    """Client times 0 up to ``cheap_until``, 100 ms after; cloud free except conv1 (1 s)."""
    doc = measure_profile(FULL, batch=1, repeats=1, warmup=0)
    names = [l["name"] for l in doc["layers"]]
    client = json.loads(json.dumps(doc))
    cloud = json.loads(json.dumps(doc))
    for k, (a, b) in enumerate(zip(client["layers"], cloud["layers"])):
        a["forward_s"] = 0.0 if k <= names.index(cheap_until) + 1 else 0.1  # + 1: relu1 in place
        b["forward_s"] = 1.0 if b["name"] == "conv1" else 0.0
    (path / "fc.json").write_text(json.dumps(client))
    (path / "fk.json").write_text(json.dumps(cloud))


def test_write_gives_exactly_what_split_writes(tmp_path, files):
    # conv1 costs 1 s in the cloud, so it stays on the client; every layer after relu1 costs 100 ms
    # on the client: the best cut is after pool1 (pool1 is the smallest blob after conv1).
    _forced_profile(tmp_path, "pool1")
    code, out, err = run(["plan", FULL, "--client", str(tmp_path / "fc.json"), "--cloud", str(tmp_path / "fk.json"),
                          "--link", str(files / "link.json"), "--write", str(tmp_path / "a.prototxt"),
                          str(tmp_path / "b.prototxt"), "--port", "3111"])
    assert code == 0, err
    assert "wrote rank 1 (after pool1, wire float32)" in out
    code, _, err = run(["split", FULL, "--after", "pool1", "--port", "3111",
                        "-o", str(tmp_path / "c.prototxt"), str(tmp_path / "d.prototxt")])
    assert code == 0, err
    assert (tmp_path / "a.prototxt").read_text() == (tmp_path / "c.prototxt").read_text()
    assert (tmp_path / "b.prototxt").read_text() == (tmp_path / "d.prototxt").read_text()


def test_a_branch_cut_is_written_with_both_crossing_blobs():
    graph = CutGraph.from_model(BRANCH)
    cut = graph.cut_for_names(["pool", "left"])
    client, cloud = cut_params(BRANCH, graph, cut, wire="uint8")
    assert [l.name for l in client.layer] == ["data", "conv", "pool", "left", "sink"]
    assert set(client.layer[-1].bottom) == {"P", "L"}
    assert client.layer[-1].sink_param.wire_dtype == 2  # UINT8
    assert [l.name for l in cloud.layer] == ["source", "right", "concat"]
    assert set(cloud.layer[0].top) == {"P", "L"}
    with pytest.raises(PlanError, match="nothing to split"):
        cut_params(BRANCH, graph, graph.all_groups)
    with pytest.raises(PlanError, match="not a valid cut"):
        cut_params(BRANCH, graph, frozenset({graph.group_of_layer["data"], graph.group_of_layer["pool"]}))


def test_plan_errors_are_one_clear_line(tmp_path, files):
    other = tmp_path / "other.json"
    doc = json.loads((files / "client.json").read_text())
    doc["layers"] = [l for l in doc["layers"] if l["name"] != "ip1"]
    other.write_text(json.dumps(doc))
    code, _, err = run(["plan", FULL, "--client", str(other), "--cloud", str(files / "client.json"),
                        "--link", str(files / "link.json")])
    assert code == 1
    assert err.startswith("tinycaffe: error: ") and "no time for layer 'ip1'" in err and "other.json" in err
    code, _, err = run(["probe", "--bandwidth", "10Mbps", "-o", str(tmp_path / "l.json")])
    assert code == 1 and "give both --bandwidth and --rtt" in err
    c = str(files / "client.json")
    code, _, err = run(["plan", FULL, "--client", c, "--cloud", c, "--link", str(files / "link.json"),
                        "--write", str(tmp_path / "x"), str(tmp_path / "y"), "--write-rank", "99"])
    assert code == 1 and "--write-rank 99" in err
