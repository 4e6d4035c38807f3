"""The accuracy cost of a lossy wire: the quantisers are the wire's, the measurement is a real run."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinycaffe.plan.cuts import CutGraph
from tinycaffe.plan.wire_accuracy import measure_wire_accuracy, roundtrip, val_cut
from tinycaffe.wire import Decoder, encode_data, join, parse_wire
from tests.conftest import REPO


def through_the_wire(a: np.ndarray, wire: str) -> np.ndarray:
    """``a`` encoded into a DATA frame and decoded again by the wire's own codec."""
    dec = Decoder()
    dec.feed(join(encode_data(1, {"x": a}, parse_wire(wire))))
    return dec.next_event().blobs["x"]


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=6),
                  elements=st.floats(-1e6, 1e6, width=32)),
       st.sampled_from(["float32", "float16", "uint8"]))
def test_roundtrip_is_what_the_wire_delivers(a, wire):
    np.testing.assert_array_equal(roundtrip(a, wire), through_the_wire(a, wire))


VAL = str(REPO / "prototxt" / "cifar10_full_sample.prototxt")
WEIGHTS = str(REPO / "weights" / "study" / "full_iter_5000.caffemodel")


def test_measured_accuracy_matches_an_independent_run_through_the_wire():
    # Cut after ip1 (layer names as a planned deploy net gives them): ip1 and the label cross,
    # Accuracy and the loss run in the cloud. Recompute it by hand with the wire's own codec.
    import tinycaffe

    names = frozenset({"data", "conv1", "pool1", "relu1", "norm1", "conv2", "relu2", "pool2", "norm2",
                       "conv3", "relu3", "pool3", "ip1"})
    got = measure_wire_accuracy(VAL, WEIGHTS, [(names, "uint8"), (names, "float32")], iterations=3)
    uint8, exact = got[(names, "uint8")], got[(names, "float32")]

    net = tinycaffe.Net(VAL, weights=WEIGHTS, phase="test")
    base, by_hand = [], []
    try:
        for _ in range(3):
            net.forward()
            label = net.blobs["label"].data.copy()
            base.append(float(np.mean(np.argmax(net.blobs["ip1"].data, axis=1) == label)))
            ip1 = through_the_wire(net.blobs["ip1"].data.copy(), "uint8")
            sent_label = through_the_wire(label, "uint8")
            by_hand.append(float(np.mean(np.argmax(ip1, axis=1) == sent_label)))
    finally:
        net.close()
    assert exact.value == exact.baseline == uint8.baseline == pytest.approx(np.mean(base))
    assert uint8.value == pytest.approx(np.mean(by_hand))
    # On these 300 sample images uint8 logits do flip some predictions (measured, not assumed).
    assert uint8.value != uint8.baseline
    assert uint8.metric == "accuracy" and uint8.batches == 3


def test_a_planned_cut_maps_onto_the_validation_net_by_layer_name():
    deploy = CutGraph.from_model(REPO / "prototxt" / "cifar10_full.prototxt")
    val = CutGraph.from_model(VAL)
    cut = deploy.cut_for_names(["pool1"])
    names = {n for g in cut for n in deploy.groups[g].layers}
    mapped = val_cut(val, names)
    # The deploy net's Input 'data' is not in the sample net; its Data layer 'cifar' is, and stays client-side.
    assert {n for g in mapped for n in val.groups[g].layers} == {"cifar", "conv1", "pool1", "relu1"}
    assert val.crossing(mapped) == ["pool1", "label"]
