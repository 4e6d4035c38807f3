"""Net.backward folds an in-place ReLU's backward into the next layer's kernel (Pooling,
LRN): the gradients equal those of running every layer's own backward in turn, bit for bit;
the ReLU records 0.0 when timed; a range that stops between the two layers does not fold;
a ReLU whose blob also goes elsewhere (a Split) or a leaky one is not folded."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe

NET = """
layer { name: "d" type: "Input" top: "data" top: "label"
        input_param { shape { dim: [3, 2, 10, 10] } shape { dim: [3] } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
          weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "pool1" top: "pool1" %(slope)s }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
          weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool2" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
%(extra)s
"""


def build(slope="", extra=""):
    net = tinycaffe.Net(NET % {"slope": slope, "extra": extra}, phase="train", seed=5)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.standard_normal((3, 2, 10, 10)).astype(np.float32)
    net.blobs["label"].data[...] = [0, 4, 2]
    net.forward()
    return net


def layer_by_layer(net, lo=0):
    """The unfolded backward: every layer's own backward from the top down to ``lo``."""
    net.clear_param_diffs()
    for i, ws in enumerate(net._loss_weights):
        for w, top in zip(ws, net._tops[i]):
            if w:
                top.diff[...] = w
    for i in range(len(net.layers) - 1, lo - 1, -1):
        if net._need_backward[i]:
            net.layers[i].backward(net._tops[i], net._propagate_down[i], net._bottoms[i])
    return snapshot(net)


def snapshot(net):
    return ({n: np.array(b.diff) for n, b in net.blobs.items()},
            [np.array(p.blob.diff) for p in net.learnable_params])


def assert_same(a, b):
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name], err_msg=name)
    for x, y in zip(a[1], b[1]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_folded_backward_equals_layer_by_layer(kernels, monkeypatch):
    if kernels == "numpy":
        monkeypatch.setenv("TINYCAFFE_KERNELS", "numpy")
    net = build()
    expected = layer_by_layer(net)
    net.clear_param_diffs()
    net.backward(timed=True)
    assert_same(snapshot(net), expected)
    # relu1 (before pool1), relu2 (before norm1) and relu3 (before pool2) were folded ...
    for relu in ("relu1", "relu2", "relu3"):
        assert net.backward_times[relu] == [0.0]
    # ... and the flags are down again afterwards.
    assert not any(getattr(layer, "fused_relu_backward", False) for layer in net.layers)
    # Some gradient really was masked: the ReLU zeroed part of pool1.
    assert (net.blobs["pool1"].data == 0).any() and (net.blobs["pool1"].diff[net.blobs["pool1"].data == 0] == 0).all()


def test_a_range_ending_between_relu_and_its_consumer_does_not_fold():
    net = build()
    expected = layer_by_layer(net, lo=net.layer_names.index("norm1"))
    net.clear_param_diffs()
    net.backward(end="norm1")
    got = snapshot(net)
    np.testing.assert_array_equal(got[0]["pool1"], expected[0]["pool1"])  # not masked by relu2
    assert (got[0]["pool1"][net.blobs["pool1"].data == 0] != 0).any()


def test_leaky_or_shared_relus_are_not_folded():
    leaky = build(slope="relu_param { negative_slope: 0.1 }")
    expected = layer_by_layer(leaky)
    leaky.clear_param_diffs()
    leaky.backward(timed=True)
    assert_same(snapshot(leaky), expected)
    assert leaky.backward_times["relu2"][0] > 0.0  # ran on its own
    # pool1 also feeds a second consumer: a Split sits between relu2 and norm1.
    shared = build(extra='layer { name: "pool1_sum" type: "Reduction" bottom: "pool1" top: "pool1_sum" }')
    expected = layer_by_layer(shared)
    shared.clear_param_diffs()
    shared.backward(timed=True)
    assert_same(snapshot(shared), expected)
    assert shared.backward_times["relu2"][0] > 0.0
