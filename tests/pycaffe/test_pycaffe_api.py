"""pycaffe's Net and Blob surface, the constructor's forms, modes, and HDF5 weights."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe as caffe
from tinycaffe.errors import NetError, ShapeError, TinyCaffeError

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [4, 2, 5, 5] } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

TRAIN_NET = """
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: [3, 4] } shape { dim: [3] } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" loss_weight: 2 }
"""


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "tiny.caffemodel"
    caffe.Net(NET, caffe.TEST, seed=5).save(path)
    return str(path)


def test_phases_are_caffes_enum_values():
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    assert (caffe.TRAIN, caffe.TEST) == (caffe.caffe_pb2.TRAIN, caffe.caffe_pb2.TEST)


def test_every_constructor_form_gives_the_same_net(weights):
    reference = caffe.Net(NET, weights=weights, phase="test")  # tinycaffe's own form
    forms = [
        caffe.Net(NET, weights, caffe.TEST),             # pycaffe's (deprecated) positional form
        caffe.Net(NET, caffe.TEST, weights=weights),     # pycaffe's current form
        caffe.Net(NET, weights),                         # tinycaffe's positional weights
        caffe.Net(NET, weights, "TEST"),
    ]
    for net in forms:
        assert net.phase == "test"
        np.testing.assert_array_equal(net.params["conv"][0].data, reference.params["conv"][0].data)
    assert caffe.Net(NET, caffe.TRAIN).phase == "train"
    assert caffe.Net(NET, phase=caffe.TRAIN).phase == "train"
    assert caffe.Net(NET, "train").phase == "train"


def test_constructor_refuses_ambiguous_arguments(weights):
    with pytest.raises(NetError, match="weights are given twice"):
        caffe.Net(NET, weights, caffe.TEST, weights=weights)
    with pytest.raises(NetError, match="phase is given twice"):
        caffe.Net(NET, caffe.TEST, phase=caffe.TRAIN)
    with pytest.raises(NetError, match="unknown phase 7"):
        caffe.Net(NET, weights, 7)
    with pytest.raises(NetError, match="at most a weights file and a phase"):
        caffe.Net(NET, weights, caffe.TEST, "extra")


def test_blob_legacy_accessors():
    net = caffe.Net(NET, caffe.TEST)
    data = net.blobs["data"]
    assert (data.num, data.channels, data.height, data.width, data.count) == (4, 2, 5, 5, 200)
    ip = net.blobs["ip"]
    assert (ip.num, ip.channels, ip.height, ip.width) == (4, 2, 1, 1)  # missing axes read as 1
    assert net.params["ip"][1].num == 2 and net.params["ip"][1].channels == 1
    big = caffe.Blob("b", shape=(1, 2, 3, 4, 5))
    with pytest.raises(ShapeError, match="at most 4 axes"):
        big.num


def test_pycaffe_names_dicts_and_layers():
    net = caffe.Net(NET, caffe.TEST)
    assert net._layer_names == ["data", "conv", "relu", "ip", "prob"]
    assert list(net.layer_dict) == net._layer_names
    assert net.layer_dict["conv"].type == "Convolution"
    assert [b.shape for b in net.layers[1].blobs] == [(3, 2, 3, 3), (3,)]
    assert net._blob_names == ["data", "conv", "ip", "prob"]
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    # pycaffe's dicts by layer name, tinycaffe's lists by index: both.
    assert net.top_names["relu"] == ["conv"] and net.bottom_names["ip"] == ["conv"]
    assert net.top_names[3] == ["ip"]
    assert list(net.top_names.keys()) == net._layer_names
    assert dict(net.bottom_names.items())["prob"] == ["ip"]
    assert "conv" in net.top_names
    with pytest.raises(KeyError):
        net.top_names["nope"]


def test_blob_loss_weights_and_index_forward_backward():
    net = caffe.Net(TRAIN_NET, caffe.TRAIN)
    assert dict(net.blob_loss_weights) == {"data": 0.0, "label": 0.0, "ip": 0.0, "loss": 2.0}
    assert net._blob_loss_weights == [0.0, 0.0, 0.0, 2.0]
    net.blobs["data"].data[...] = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    net.blobs["label"].data[...] = [0, 1, 2]
    loss = net._forward(0, len(net.layers) - 1)  # pycaffe's by-index forward returns the loss
    assert loss == pytest.approx(2.0 * float(net.blobs["loss"].data))
    net.clear_param_diffs()
    net._backward(len(net.layers) - 1, 0)
    assert net.params["ip"][0].diff.any()
    deploy = caffe.Net(NET, caffe.TEST)
    assert not any(deploy.blob_loss_weights.values())


def test_forward_all_batches_pads_and_trims():
    net = caffe.Net(NET, caffe.TEST, seed=1)
    x = np.random.default_rng(0).standard_normal((10, 2, 5, 5)).astype(np.float32)
    out = net.forward_all(data=x, blobs=["ip"])
    assert out["prob"].shape == (10, 2) and out["ip"].shape == (10, 2)
    for i in range(0, 8, 4):  # whole batches agree with plain forwards
        np.testing.assert_allclose(out["prob"][i:i + 4], net.forward(data=x[i:i + 4])["prob"], rtol=1e-6)
    last = np.concatenate([x[8:], np.zeros((2, 2, 5, 5), np.float32)])
    np.testing.assert_allclose(out["prob"][8:], net.forward(data=last)["prob"][:2], rtol=1e-6)


def test_backward_with_top_diffs_returns_input_diffs_and_extra_diffs():
    net = caffe.Net("force_backward: true\n" + NET, caffe.TEST, seed=2)
    x = np.random.default_rng(3).standard_normal((4, 2, 5, 5)).astype(np.float32)
    net.forward(data=x)
    top = np.random.default_rng(4).standard_normal((4, 2)).astype(np.float32)
    grads = net.backward(prob=top, diffs=["ip"])
    assert set(grads) == {"data", "ip"} and grads["data"].shape == (4, 2, 5, 5)
    # The softmax's backward of the given top diff lands in ip's diff.
    p = net.blobs["prob"].data
    np.testing.assert_allclose(grads["ip"], p * (top - (top * p).sum(1, keepdims=True)), rtol=1e-5, atol=1e-7)
    # end= gives the bottoms of that layer; start= starts lower down.
    part = net.backward(start="ip", end="ip")
    assert list(part) == ["conv"]
    with pytest.raises(ShapeError, match="diff for 'prob' has shape \\(3, 2\\)"):
        net.backward(prob=np.zeros((3, 2)))
    with pytest.raises(NetError, match="'nope' is not a blob"):
        net.backward(nope=np.zeros(1))
    with pytest.raises(NetError, match="comes before end layer"):
        net.backward(start="conv", end="ip")


def test_forward_backward_all():
    net = caffe.Net("force_backward: true\n" + NET, caffe.TEST, seed=2)
    x = np.random.default_rng(5).standard_normal((6, 2, 5, 5)).astype(np.float32)
    top = np.ones((6, 2), np.float32)
    outs, diffs = net.forward_backward_all(data=x, prob=top)
    assert outs["prob"].shape == (6, 2) and diffs["data"].shape == (6, 2, 5, 5)
    # d(sum of softmax)/dx = 0: a ones top diff gives (almost) no input gradient.
    assert np.abs(diffs["data"]).max() < 1e-5


def test_hdf5_weights_round_trip_and_share_with(tmp_path):
    pytest.importorskip("h5py")
    net = caffe.Net(NET, caffe.TEST, seed=7)
    path = tmp_path / "tiny.caffemodel.h5"
    net.save_hdf5(str(path))
    other = caffe.Net(NET, caffe.TEST, seed=8)
    assert not np.array_equal(other.params["ip"][0].data, net.params["ip"][0].data)
    assert other.load_hdf5(str(path)) == ["conv", "ip"]
    np.testing.assert_array_equal(other.params["ip"][0].data, net.params["ip"][0].data)
    third = caffe.Net(NET, caffe.TEST, seed=9)
    third.share_with(net)
    assert third.params["conv"][0] is net.params["conv"][0]


def test_modes_device_and_seed():
    caffe.set_mode_cpu()
    caffe.set_device(0)
    assert caffe.Net(NET, caffe.TEST).device == "cpu"
    from tinycaffe.backend import gpu_available

    if not gpu_available():
        with pytest.raises(TinyCaffeError, match="set_mode_gpu\\(\\): CuPy with a CUDA device is not available"):
            caffe.set_mode_gpu()
    with pytest.raises(TinyCaffeError, match="device id must be an int"):
        caffe.set_device(-1)
    try:
        caffe.set_random_seed(11)
        a = caffe.Net(NET, caffe.TEST).params["conv"][0].data.copy()
        b = caffe.Net(NET, caffe.TEST).params["conv"][0].data.copy()
        caffe.set_random_seed(12)
        c = caffe.Net(NET, caffe.TEST).params["conv"][0].data.copy()
    finally:
        from tinycaffe import pycaffe

        pycaffe._settings["seed"] = None
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(caffe.Net(NET, caffe.TEST, seed=11).params["conv"][0].data, a)


def test_threads_are_exported():
    n = caffe.get_num_threads()
    assert isinstance(n, int) and n >= 1


def test_layer_type_list():
    types = caffe.layer_type_list()
    assert "Convolution" in types and "SoftmaxWithLoss" in types and types == sorted(types)


def test_caffe_layers_stays_the_net_spec_factory_after_a_net_is_built():
    # The first import of the tinycaffe.layers subpackage would rebind caffe.layers to it.
    import subprocess
    import sys

    code = ("import tinycaffe as caffe\n"
            "net = caffe.Net('layer { name: \"d\" type: \"Input\" top: \"d\" "
            "input_param { shape { dim: 1 } } }', caffe.TEST)\n"
            "assert callable(caffe.layers.Input), caffe.layers\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
