"""Net.backward: whole-net gradients against central differences, sharing and pruning."""
from __future__ import annotations

import numpy as np

import tinycaffe

NET = """
layer { name: "d" type: "Input" top: "data" top: "label"
        input_param { shape { dim: [3, 2, 6, 6] } shape { dim: [3] } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
          weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "tanh" type: "TanH" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def _loss(net, x, labels):
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = labels
    net.forward()
    return net.loss


def test_whole_net_gradient_matches_central_differences():
    net = tinycaffe.Net(NET, phase="train", seed=4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    labels = np.array([0, 3, 1], np.float32)
    _loss(net, x, labels)
    net.clear_param_diffs()
    net.backward()
    step = 1e-2
    for p in net.learnable_params:
        flat = p.blob.data.reshape(-1)
        analytic = p.blob.diff.reshape(-1).copy()
        for k in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            old = flat[k]
            flat[k] = old + step
            up = _loss(net, x, labels)
            flat[k] = old - step
            down = _loss(net, x, labels)
            flat[k] = old
            numeric = (up - down) / (2 * step)
            scale = max(abs(numeric), abs(analytic[k]), 1.0)
            assert abs(numeric - analytic[k]) <= 2e-2 * scale, (p.name, k, numeric, analytic[k])


def test_shared_params_are_one_blob_and_frozen_layers_get_no_backward():
    text = """
    layer { name: "d" type: "Input" top: "a" top: "b" top: "label"
            input_param { shape { dim: [2, 5] } shape { dim: [2, 5] } shape { dim: [2] } } }
    layer { name: "ip_a" type: "InnerProduct" bottom: "a" top: "fa" param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
    layer { name: "ip_b" type: "InnerProduct" bottom: "b" top: "fb" param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 3 } }
    layer { name: "sum" type: "Eltwise" bottom: "fa" bottom: "fb" top: "s" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }
    layer { name: "side" type: "InnerProduct" bottom: "a" top: "side" inner_product_param { num_output: 2 } }
    """
    net = tinycaffe.Net(text, phase="train")
    assert net.params["ip_a"][0] is net.params["ip_b"][0]
    assert [p.name for p in net.learnable_params] == ["w", "bias", "side.0", "side.1"]
    i_side = net.layer_names.index("side")
    assert not net._need_backward[i_side]  # no loss depends on it
    net.blobs["a"].data[...] = 1.0
    net.blobs["b"].data[...] = 2.0
    net.blobs["label"].data[...] = [0, 1]
    net.forward()
    net.clear_param_diffs()
    net.backward()
    assert np.abs(net.params["ip_a"][0].diff).sum() > 0
    assert np.abs(net.params["side"][0].diff).sum() == 0


def test_force_backward_turns_on_every_layer_but_not_into_labels():
    forced = tinycaffe.Net("force_backward: true\n" + NET, phase="train", seed=4)
    plain = tinycaffe.Net(NET, phase="train", seed=4)
    i_loss = forced.layer_names.index("loss")
    i_conv = forced.layer_names.index("conv")
    # Caffe's LossLayer::AllowForceBackward: the prediction yes, the labels (bottom 1) no.
    assert forced._propagate_down[i_loss] == [True, False]
    assert plain._propagate_down[i_conv] == [False]  # nothing upstream learns: no data gradient
    assert forced._propagate_down[i_conv] == [True]
    assert not forced._need_backward[forced.layer_names.index("d")]  # data layers have nothing to do
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    labels = np.array([0, 3, 1], np.float32)
    _loss(forced, x, labels)
    forced.clear_param_diffs()
    grads = forced.backward()
    assert set(grads) == {"data", "label"} and grads["data"].any() and not grads["label"].any()
    # The input gradient against central differences on a few entries.
    for idx in [(0, 0, 0, 0), (2, 1, 5, 3), (1, 1, 2, 4)]:
        step = np.zeros_like(x)
        step[idx] = 1e-2
        numeric = (_loss(forced, x + step, labels) - _loss(forced, x - step, labels)) / 2e-2
        assert abs(numeric - grads["data"][idx]) <= 2e-2 * max(abs(numeric), 1e-3), idx


def test_force_backward_reaches_layers_no_loss_depends_on():
    text = """
    force_backward: true
    layer { name: "d" type: "Input" top: "a" input_param { shape { dim: [2, 5] } } }
    layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b"
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    layer { name: "sig" type: "Sigmoid" bottom: "b" top: "c" }
    """
    net = tinycaffe.Net(text, seed=0)
    x = np.random.default_rng(2).standard_normal((2, 5)).astype(np.float32)
    net.forward(a=x)
    top = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    grads = net.backward(c=top)
    s = 1 / (1 + np.exp(-(x @ net.params["ip"][0].data.T + net.params["ip"][1].data)))
    expected = (top * s * (1 - s)) @ net.params["ip"][0].data
    np.testing.assert_allclose(grads["a"], expected, rtol=1e-4, atol=1e-6)
    # The weight gradient accumulated too, as Caffe's does.
    np.testing.assert_allclose(net.params["ip"][0].diff, (top * s * (1 - s)).T @ x, rtol=1e-4, atol=1e-6)
