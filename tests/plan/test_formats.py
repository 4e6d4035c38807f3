"""Profile and link JSON: round trips, clear errors, and wire bytes that match the encoder."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinycaffe.plan.cost import ACK_BYTES, data_frame_bytes
from tinycaffe.plan.errors import PlanError
from tinycaffe.plan.link import given_link, parse_duration, read_link, write_link
from tinycaffe.plan.profile import measure_profile, read_profile, with_batch, write_profile
from tinycaffe.wire import encode_ack, encode_data, join, parse_wire

from .helpers import profile_doc

TINY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [7, 3, 8, 8] } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
"""


def test_a_measured_profile_round_trips_through_json(tmp_path):
    doc = measure_profile(TINY, batch=2, repeats=2, warmup=1)
    assert doc["batch"] == 2 and [l["name"] for l in doc["layers"]] == ["data", "conv", "relu", "ip"]
    assert doc["blobs"]["conv"] == {"shape": [2, 2, 6, 6], "bytes": 4 * 2 * 2 * 6 * 6}
    assert all(l["forward_s"] >= 0 for l in doc["layers"])
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["kernels"] in ("numba", "numpy")
    path = tmp_path / "p.json"
    write_profile(doc, path)
    assert json.loads(path.read_text()) == doc
    p = read_profile(path)
    assert p.batch == 2 and p.blob_shapes["ip"] == (2, 3)
    assert p.layer_times == {l["name"]: l["forward_s"] for l in doc["layers"]}


def test_a_data_layer_net_is_profiled_on_its_own_data():
    from tests.conftest import REPO

    doc = measure_profile(str(REPO / "prototxt" / "cifar10_full_sample.prototxt"), batch=3, repeats=1, warmup=0)
    assert doc["blobs"]["data"]["shape"] == [3, 3, 32, 32] and doc["blobs"]["label"]["shape"] == [3]
    assert doc["layers"][0]["type"] == "Data"


def test_with_batch_sets_input_and_data_layers():
    from tinycaffe.net.build import load_net_param

    param = with_batch(load_net_param(TINY), 5)
    assert list(param.layer[0].input_param.shape[0].dim) == [5, 3, 8, 8]


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.pop("layers"), "missing field 'layers'"),
    (lambda d: d.update(format="other/1"), "not a tinycaffe profile"),
    (lambda d: d["layers"][1].update(forward_s=-1), r"layers\[1\] \('b'\): forward_s must be"),
    (lambda d: d["blobs"]["x"].update(shape=[1, "2"]), r"blobs\['x'\]: shape must be"),
    (lambda d: d.update(batch=0), "batch must be positive"),
])
def test_bad_profiles_name_the_file_and_field(tmp_path, breakage, message):
    doc = profile_doc({"a": 1.0, "b": 2.0}, {"x": (1, 2)})
    breakage(doc)
    path = tmp_path / "client.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=f"client.json: .*{message}"):
        read_profile(path)


def test_unreadable_profiles_are_plan_errors(tmp_path):
    with pytest.raises(PlanError, match="cannot read profile"):
        read_profile(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{\n  oops")
    with pytest.raises(PlanError, match=r"bad.json:2: not valid JSON"):
        read_profile(tmp_path / "bad.json")


def test_given_link_round_trips(tmp_path):
    doc = given_link("10Mbps", "20ms")
    assert doc["bandwidth_bytes_per_s"] == 1_250_000 and doc["rtt_s"] == pytest.approx(0.02)
    write_link(doc, tmp_path / "l.json")
    link = read_link(tmp_path / "l.json")
    assert (link.bandwidth, link.rtt, link.source) == (1_250_000, pytest.approx(0.02), "given")
    assert parse_duration("150us") == pytest.approx(150e-6) and parse_duration("0.5") == 0.5
    with pytest.raises(PlanError, match="bad duration"):
        given_link("10Mbps", "soon")
    with pytest.raises(PlanError, match="bad rate"):
        given_link("fast", "1ms")
    (tmp_path / "z.json").write_text(json.dumps({**doc, "bandwidth_bytes_per_s": 0}))
    with pytest.raises(PlanError, match="z.json: bandwidth_bytes_per_s must be"):
        read_link(tmp_path / "z.json")


@pytest.mark.parametrize("wire", ["float32", "float16", "uint8"])
def test_frame_bytes_match_the_wire_encoder(wire):
    blobs = {"pool1": np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32),
             "label": np.arange(2, dtype=np.float32)}
    encoded = join(encode_data(1, blobs, parse_wire(wire)))
    assert data_frame_bytes({n: a.shape for n, a in blobs.items()}, wire) == len(encoded)
    assert ACK_BYTES == len(join(encode_ack(2, 1)))
