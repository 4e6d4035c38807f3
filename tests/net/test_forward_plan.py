"""Planned forwards (tinycaffe/net/plan.py): same answers as running the layers one by one,
reshape on forward as Caffe does, partial forwards, fusion of a ReLU into the layer before it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinycaffe
from tinycaffe.errors import NetError, ShapeError

REPO = Path(__file__).resolve().parents[2]
FULL = REPO / "prototxt" / "cifar10_full.prototxt"
FULL_WEIGHTS = REPO / "weights" / "study" / "full_iter_5000.caffemodel"

# A Split (data feeds two layers), a Concat, a not-in-place ReLU and a loss layer.
BRANCHY = """
name: "branchy"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: [3, 2, 6, 6] } shape { dim: [3] } } }
layer { name: "a" type: "Convolution" bottom: "data" top: "a"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "a_relu" type: "ReLU" bottom: "a" top: "a_pos" }
layer { name: "b" type: "Convolution" bottom: "data" top: "b"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "b_relu" type: "ReLU" bottom: "b" top: "b" }
layer { name: "cat" type: "Concat" bottom: "a_pos" bottom: "b" top: "cat" }
layer { name: "pool" type: "Pooling" bottom: "cat" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "pool_relu" type: "ReLU" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def _full_net() -> tinycaffe.Net:
    weights = str(FULL_WEIGHTS) if FULL_WEIGHTS.is_file() else None
    return tinycaffe.Net(str(FULL), weights=weights, phase="test", seed=3)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-128, 128, (n, 3, 32, 32)).astype(np.float32)


def _layer_by_layer(net: tinycaffe.Net) -> dict[str, np.ndarray]:
    """Every layer's forward called directly, in order: what the plan must reproduce."""
    for layer, bottoms, tops in zip(net.layers, net._bottoms, net._tops):
        layer.forward(bottoms, tops)
    return {name: blob.data.copy() for name, blob in net.blobs.items()}


@pytest.mark.parametrize("model", ["full", "branchy"])
def test_planned_forward_equals_layer_by_layer(model):
    if model == "full":
        planned, stepped = _full_net(), _full_net()
        feeds = {"data": _images(2)}
        for net in (planned, stepped):
            net.blobs["data"].reshape(2, 3, 32, 32)
            net.reshape()
    else:
        planned, stepped = tinycaffe.Net(BRANCHY, seed=5), tinycaffe.Net(BRANCHY, seed=5)
        rng = np.random.default_rng(1)
        feeds = {"data": rng.standard_normal((3, 2, 6, 6)).astype(np.float32),
                 "label": np.array([0, 3, 1], np.float32)}
    for name, value in feeds.items():
        stepped.blobs[name].data[...] = value
    expected = _layer_by_layer(stepped)
    for _ in range(2):  # the second forward replays the cached plan
        planned.forward(**feeds)
        for name, blob in planned.blobs.items():
            np.testing.assert_array_equal(blob.data, expected[name], err_msg=name)
    if model == "branchy":
        lp = stepped.layer_names.index("loss")
        assert planned.loss == pytest.approx(float(expected["loss"]))
        assert stepped._loss_weights[lp] == [1.0]


def test_steady_state_forward_replays_the_plan_and_keeps_buffers():
    net = _full_net()
    x = _images(100)
    net.forward(data=x)
    plan = net._planner.plans[0, len(net.layers) - 1]
    buffers = {name: blob.data for name, blob in net.blobs.items()}
    net.forward(data=x)
    assert net._planner.plans[0, len(net.layers) - 1] is plan
    assert all(net.blobs[name].data is arr for name, arr in buffers.items())


def test_reshape_on_forward_batch_100_1_100():
    net = _full_net()
    x = _images(100)
    first = net.forward(data=x)["prob"].copy()
    one = np.stack([net.forward(data=x[i:i + 1])["prob"][0].copy() for i in (0, 57, 99)])
    assert net.blobs["conv1"].shape == (1, 32, 32, 32)
    # Summation order may differ between batch sizes: float32 tolerance, same answers.
    np.testing.assert_allclose(one, first[[0, 57, 99]], rtol=1e-4, atol=1e-6)
    assert (one.argmax(1) == first[[0, 57, 99]].argmax(1)).all()
    again = net.forward(data=x)["prob"]
    np.testing.assert_array_equal(again, first)


def test_blob_reshape_then_forward_reshapes_the_net_as_caffe_does():
    net = _full_net()
    x = _images(4)
    net.blobs["data"].reshape(4, 3, 32, 32)
    net.blobs["data"].data[...] = x
    out = net.forward()["prob"]  # no net.reshape() call
    assert out.shape == (4, 10)
    assert net.blobs["ip1"].shape == (4, 10)
    ref = _full_net()
    ref.blobs["data"].reshape(4, 3, 32, 32)
    ref.reshape()
    np.testing.assert_array_equal(out, ref.forward(data=x)["prob"])


def test_partial_forwards_and_reshape_inside_a_range():
    net = _full_net()
    x = _images(3, seed=2)
    full = net.forward(data=x)["prob"].copy()
    conv2_post = net.blobs["conv2"].data.copy()
    pool1 = net.forward(data=x, end="pool1")["pool1"].copy()
    assert pool1.min() < 0  # relu1 (in place on pool1) has not run
    net.blobs["pool1"].data[...] = pool1
    rest = net.forward(start="relu1")["prob"]
    np.testing.assert_array_equal(rest, full)
    # A forward that ends at conv2 keeps conv2's pre-ReLU output.
    pre = net.forward(data=x, end="conv2")["conv2"]
    assert pre.min() < 0
    np.testing.assert_array_equal(np.maximum(pre, 0), conv2_post)
    # A new batch size through the first part reshapes only that part; the rest follows
    # when it runs.
    one = net.forward(data=x[:1], end="norm1")["norm1"]
    assert one.shape == (1, 32, 16, 16) and net.blobs["conv2"].shape == (3, 32, 16, 16)
    tail = net.forward(start="conv2")["prob"]
    assert tail.shape == (1, 10)
    np.testing.assert_allclose(tail[0], full[0], rtol=1e-4, atol=1e-6)


def test_wrong_shape_for_a_blob_the_range_does_not_read_is_refused():
    net = _full_net()
    with pytest.raises(ShapeError, match=r"'conv1' has shape \(1, 2\).*not an input of the layers"):
        net.forward(conv1=np.zeros((1, 2), np.float32))


def test_a_failing_layer_is_named(monkeypatch):
    net = tinycaffe.Net(BRANCHY)

    def broken(bottoms, tops):
        raise ValueError("boom")

    monkeypatch.setattr(net.layers[net.layer_names.index("cat")], "forward", broken)
    with pytest.raises(NetError, match=r"layer 'cat' \(type Concat\) failed in forward .*ValueError: boom"):
        net.forward()
    with pytest.raises(NetError, match=r"layer 'cat' \(type Concat\) failed in forward"):
        net.forward_timed()


def test_relu_fused_into_conv_and_pool():
    net, ref = _full_net(), _full_net()
    x = _images(2, seed=4)
    for n in (net, ref):
        n.blobs["data"].reshape(2, 3, 32, 32)
        n.reshape()
    ref.blobs["data"].data[...] = x
    expected = _layer_by_layer(ref)
    net.forward(data=x)
    plan = net._planner.plans[0, len(net.layers) - 1]
    assert plan.fused == ["pool1+relu1", "conv2+relu2", "conv3+relu3"]
    for name, blob in net.blobs.items():
        np.testing.assert_array_equal(blob.data, expected[name], err_msg=name)
    # A range ending at the conv runs it without the ReLU.
    pre = net.forward(data=x, end="conv2")["conv2"]
    assert pre.min() < 0
    # Per-layer times: the fused ReLU records 0.0, its time is in the layer before it.
    net.layer_times.clear()
    net.forward_timed()
    assert net.layer_times["relu2"] == [0.0] and net.layer_times["conv2"][0] > 0
    # The flag is set for the fused call only.
    assert not any(getattr(layer, "fused_relu", False) for layer in net.layers)


def test_branchy_net_fuses_only_in_place_relus():
    net = tinycaffe.Net(BRANCHY)
    net.forward()
    # a -> a_relu writes a new blob (a keeps its pre-ReLU values): not fused.
    assert net._planner.plans[0, len(net.layers) - 1].fused == ["b+b_relu", "pool+pool_relu"]
    assert net.blobs["a"].data.min() < 0


@pytest.mark.parametrize("pool", ["AVE", "MAX"])
def test_training_with_fused_relus_gives_the_layer_by_layer_gradients(pool):
    text = BRANCHY.replace("pool: AVE", f"pool: {pool}")
    planned, stepped = (tinycaffe.Net(text, phase="train", seed=7) for _ in range(2))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    label = np.array([2, 0, 1], np.float32)
    for net in (planned, stepped):
        net.clear_param_diffs()
    planned.forward(data=x, label=label)
    assert planned._planner.plans[0, len(planned.layers) - 1].fused == ["b+b_relu", "pool+pool_relu"]
    stepped.blobs["data"].data[...] = x
    stepped.blobs["label"].data[...] = label
    _layer_by_layer(stepped)
    planned.backward()
    stepped.backward()
    for name in planned.params:
        for a, b in zip(planned.params[name], stepped.params[name]):
            np.testing.assert_array_equal(a.diff, b.diff, err_msg=name)


def test_a_new_buffer_of_the_same_shape_repoints_the_views_that_read_it():
    # data feeds a Split, whose tops are views of data's buffer: a buffer swapped in
    # behind the net's back (set_view) must reach the layers through a reshape.
    net = tinycaffe.Net(BRANCHY, seed=1)
    x = np.random.default_rng(3).standard_normal((3, 2, 6, 6)).astype(np.float32)
    net.forward(data=np.zeros_like(x))
    net.blobs["data"].set_view(x.copy())
    net.forward()
    ref = tinycaffe.Net(BRANCHY, seed=1)
    ref.forward(data=x)
    np.testing.assert_array_equal(net.blobs["ip"].data, ref.blobs["ip"].data)
