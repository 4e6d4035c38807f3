"""The cut graph: groups, down-sets and crossing blobs, against split's own crossing_blobs."""
from __future__ import annotations

import pytest

from tinycaffe.plan.cuts import CutGraph
from tinycaffe.plan.errors import PlanError
from tests.conftest import REPO, shared_path

from .helpers import cut_of

# data -> conv1 -> pool1 (+ relu1 in place) -> ip -> accuracy(ip, label), loss(ip, label)
LABELLED = """
name: "labelled"
layer { name: "d" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: [2, 3, 8, 8] } shape { dim: [2] } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_in_place_layers_go_with_their_producer():
    g = CutGraph.from_model(LABELLED)
    assert [grp.layers for grp in g.groups] == [
        ("d",), ("conv1",), ("pool1", "relu1"), ("ip",), ("accuracy",), ("loss",)]
    assert g.sources == {0}


def test_a_cut_after_pool1_sends_pool1_and_the_label():
    # Worked by hand: the client keeps d, conv1, pool1(+relu1); ip reads pool1, accuracy and loss read label.
    g = CutGraph.from_model(LABELLED)
    cut = g.cut_for_names(["pool1"])
    assert cut == cut_of(g, "d", "conv1", "pool1")
    assert g.crossing(cut) == ["pool1", "label"]
    assert g.crossing_set(cut) == {"pool1", "label"}
    assert g.describe(cut) == "after pool1"


def test_chain_cuts_are_the_prefixes_and_accuracy_loss_branch():
    # Groups d, conv1, pool1, ip form a chain; accuracy and loss both hang off ip:
    # prefixes {d}..{d,conv1,pool1,ip} (4 cuts) + with ip: {+acc}, {+loss} -> all (3 more) = 7.
    g = CutGraph.from_model(LABELLED)
    cuts = list(g.enumerate_cuts())
    assert len(cuts) == len(set(cuts)) == 7
    assert all(g.is_cut(c) for c in cuts)
    assert g.minimal_cut() == cut_of(g, "d")
    assert g.all_groups in cuts


def test_a_cut_must_be_closed_under_predecessors():
    g = CutGraph.from_model(LABELLED)
    assert not g.is_cut(cut_of(g, "d", "pool1"))  # pool1 without conv1
    assert not g.is_cut(cut_of(g, "conv1"))  # no input layer


@pytest.mark.parametrize("model", ["cifar10_full.prototxt", "cifar10_full_sample.prototxt"])
def test_crossing_matches_split_on_every_cut_of_the_study_net(model):
    g = CutGraph.from_model(REPO / "prototxt" / model)
    cuts = list(g.enumerate_cuts())
    assert len(cuts) >= len(g.groups) - 1
    for c in cuts:
        assert g.crossing(c) == g.crossing_reference(c)


def test_crossing_matches_split_on_googlenet_branches():
    g = CutGraph.from_model(shared_path("data", "bvlc-prototxt", "models", "bvlc_googlenet", "deploy.prototxt"))
    cuts = list(g.enumerate_cuts())
    # Inception branches make far more cuts than the chain's prefixes.
    assert len(cuts) > 3 * len(list(g.prefixes()))
    for c in cuts[::7]:
        assert g.crossing(c) == g.crossing_reference(c)


def test_an_in_place_writer_away_from_its_producer_waits_for_the_old_versions_readers():
    # 'scale' overwrites a in place after 'peek' read the old a: peek must be on the client
    # whenever scale is, or the wire would carry the wrong version of a.
    net = """
    layer { name: "in" type: "Input" top: "a" input_param { shape { dim: [1, 4] } } }
    layer { name: "peek" type: "Power" bottom: "a" top: "p" }
    layer { name: "scale" type: "Power" bottom: "a" top: "a" }
    layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "p" top: "s" }
    """
    g = CutGraph.from_model(net)
    assert [grp.layers for grp in g.groups] == [("in",), ("peek",), ("scale",), ("sum",)]
    assert g.group_of_layer["peek"] in g.preds[g.group_of_layer["scale"]]
    for c in g.enumerate_cuts():
        assert g.crossing(c) == g.crossing_reference(c)


def test_bad_nets_are_plan_errors():
    with pytest.raises(PlanError, match="layer 'x': bottom blob 'a' is produced by no earlier layer"):
        CutGraph.from_model('layer { name: "x" type: "ReLU" bottom: "a" top: "b" }')
    with pytest.raises(PlanError, match="no layer named 'nope'"):
        CutGraph.from_model(LABELLED).cut_for_names(["nope"])
