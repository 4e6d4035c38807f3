"""caffe.NetSpec / caffe.layers / caffe.params write nets that build; caffe.draw draws them."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import tinycaffe as caffe
from tinycaffe import layers as L
from tinycaffe import params as P
from tinycaffe.errors import NetError, TinyCaffeError


def lenet(batch: int):
    """The BVLC LeNet example's net, as the net_spec notebook writes it (Input instead of an LMDB)."""
    n = caffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[batch, 1, 28, 28]), dict(dim=[batch])], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_weight=1)
    n.acc = L.Accuracy(n.score, n.label, include=dict(phase=caffe.TEST))
    return n.to_proto()


def test_lenet_spec_gives_caffes_layers_and_fields():
    net = lenet(8)
    assert [l.name for l in net.layer] == ["data", "conv1", "pool1", "conv2", "pool2", "fc1", "relu1",
                                            "score", "loss", "acc"]
    conv2 = net.layer[3]
    assert conv2.type == "Convolution" and list(conv2.bottom) == ["pool1"] and list(conv2.top) == ["conv2"]
    assert list(conv2.convolution_param.kernel_size) == [5] and conv2.convolution_param.num_output == 50
    assert conv2.convolution_param.weight_filler.type == "xavier"
    assert [p.lr_mult for p in conv2.param] == [1, 2]                  # a LayerParameter field
    assert net.layer[2].pooling_param.pool == caffe.caffe_pb2.PoolingParameter.MAX
    assert list(net.layer[6].top) == ["fc1"] == list(net.layer[6].bottom)  # in place
    assert list(net.layer[8].loss_weight) == [1.0]
    assert net.layer[9].include[0].phase == caffe.TEST
    assert list(net.layer[0].input_param.shape[1].dim) == [8]


def test_spec_text_builds_and_runs_in_both_phases():
    text = str(lenet(4))
    assert 'type: "Convolution"' in text and "kernel_size: 5" in text
    train = caffe.Net(text, caffe.TRAIN, seed=0)
    assert "acc" not in train._layer_names
    test = caffe.Net(text, caffe.TEST, seed=0)
    out = test.forward(data=np.zeros((4, 1, 28, 28), np.float32), label=np.arange(4, dtype=np.float32))
    assert set(out) == {"acc", "loss"}
    assert out["loss"] == pytest.approx(np.log(10), abs=0.5)


def test_unnamed_tops_get_type_numbered_names_and_to_proto_of_tops():
    data = L.Input(shape=dict(dim=[1, 3]))
    a = L.ReLU(data)
    b = L.ReLU(a)
    net = caffe.to_proto(b)
    assert [l.name for l in net.layer] == ["Input1", "ReLU1", "ReLU2"]
    assert list(net.layer[2].bottom) == ["ReLU1"]
    assert str(b.to_proto()) == str(net)


def test_net_spec_errors_name_the_problem():
    with pytest.raises(NetError, match="bottom 0 of a ReLU layer is a int"):
        L.ReLU(3)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.bad = L.InnerProduct(n.data, no_such_field=3)
    with pytest.raises(NetError, match="LayerParameter has no field 'no_such_field'"):
        n.to_proto()
    with pytest.raises(AttributeError, match="no top named 'nope'"):
        n.nope
    with pytest.raises(AttributeError, match="PoolingParameter has no value 'BEST'"):
        P.Pooling.BEST


def test_draw_without_pydot_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydot", None)  # import pydot now fails
    with pytest.raises(TinyCaffeError, match="pip install pydot"):
        caffe.draw.get_pydot_graph(lenet(1))


def test_draw_net_as_dot(tmp_path):
    pytest.importorskip("pydot")
    graph = caffe.draw.get_pydot_graph(lenet(1), rankdir="TB", phase=caffe.TRAIN)
    layer_nodes = [n for n in graph.get_nodes() if not n.get_name().strip('"').endswith("_blob")]
    assert len(layer_nodes) == 9  # "acc" is TEST only
    out = tmp_path / "lenet.dot"
    caffe.draw.draw_net_to_file(lenet(1), str(out), phase=caffe.TEST)
    text = out.read_text()
    assert text.startswith("digraph") and "conv1" in text and "acc" in text
