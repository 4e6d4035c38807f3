"""Upgrading V1 nets and net-level inputs as Caffe does on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.prototxt import parse_net, read_net
from tinycaffe.proto.upgrade import V1_TYPE_NAMES, net_needs_upgrade, upgrade_net

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "data" / "caffe-reference"


@pytest.fixture
def proto_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: {SHARED}")
    return SHARED


@pytest.mark.parametrize(
    "folder",
    [
        "everpeace_caffe__cifar10_quick_iter_4000",
        "everpeace_caffe__cifar10_full_iter_70000",
        "ikkiChung_Prediction-Example-With-Caffe__cifar10_quick_iter_5000",
    ],
)
def test_v1_deploy_nets(folder: str, proto_shared: Path) -> None:
    path = REFERENCE / folder / "deploy.prototxt"
    original = read_net(path)
    assert original.layers and not original.layer
    net = upgrade_net(original, str(path))
    assert not net.layers and not net.input and not net.input_dim
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert [list(s.dim) for s in first.input_param.shape] == [[100, 3, 32, 32]]
    types = {layer.type for layer in net.layer[1:]}
    assert {"Convolution", "Pooling", "ReLU", "InnerProduct", "Softmax"} <= types
    if "full" in folder:
        assert "LRN" in types
    assert types <= {"Convolution", "Pooling", "ReLU", "LRN", "InnerProduct", "Softmax"}
    # Names, wiring and parameters survive.
    assert [l.name for l in net.layer[1:]] == [l.name for l in original.layers]
    conv1 = net.layer[1]
    assert conv1.convolution_param.num_output == 32 and list(conv1.convolution_param.kernel_size) == [5]
    assert list(conv1.bottom) == ["data"]
    assert original.layers, "upgrade_net must not modify its argument"


def test_input_shape_form(proto_shared: Path) -> None:
    path = REFERENCE / "jwcom79_caffe__cifar10_full_iter_70000" / "deploy.prototxt"
    net = upgrade_net(read_net(path), str(path))
    assert net.layer[0].type == "Input"
    assert list(net.layer[0].input_param.shape[0].dim) == [100, 3, 32, 32]
    assert sum(layer.type == "Input" for layer in net.layer) == 1


def test_whole_corpus_upgrades(proto_shared: Path) -> None:
    corpus = SHARED / "data" / "bvlc-prototxt"
    count = 0
    for path in sorted(corpus.rglob("*.prototxt")):
        if "solver" in path.name:
            continue
        net = upgrade_net(read_net(path), str(path))
        assert not net.layers and not net.input, path
        assert all(layer.type for layer in net.layer), path
        assert upgrade_net(net) == net, path  # idempotent
        count += 1
    assert count >= 29


V1_TRAIN = """
name: "old"
layers {
  name: "mnist" type: DATA top: "data" top: "label"
  data_param { source: "db" batch_size: 64 scale: 0.00390625 mean_file: "m.binaryproto"
               crop_size: 24 mirror: true }
  include { phase: TRAIN }
}
layers {
  name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "w_shared" param: "b_shared" blob_share_mode: PERMISSIVE
  convolution_param { num_output: 8 kernel_size: 3 }
  exclude { phase: TEST stage: "x" }
}
layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv" bottom: "label" top: "loss"
         loss_weight: 2 loss_param { ignore_label: 3 } }
"""


def test_v1_fields_move_to_current_places() -> None:
    net = upgrade_net(parse_net(V1_TRAIN))
    data, conv, loss = net.layer
    assert data.type == "Data" and data.include[0].phase == caffe_pb2.TRAIN
    assert data.transform_param.scale == pytest.approx(0.00390625)
    assert data.transform_param.mean_file == "m.binaryproto"
    assert data.transform_param.crop_size == 24 and data.transform_param.mirror
    for field in ("scale", "mean_file", "crop_size", "mirror"):
        assert not data.data_param.HasField(field)
    assert data.data_param.source == "db" and data.data_param.batch_size == 64

    assert conv.type == "Convolution"
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv.param] == [("w_shared", 1, 1), ("b_shared", 2, 0)]
    assert conv.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert not conv.param[1].HasField("share_mode")
    assert conv.exclude[0].phase == caffe_pb2.TEST and list(conv.exclude[0].stage) == ["x"]
    assert conv.convolution_param.num_output == 8

    assert loss.type == "SoftmaxWithLoss" and list(loss.loss_weight) == [2]
    assert loss.loss_param.ignore_label == 3


def test_every_v1_type_has_a_name() -> None:
    enum = caffe_pb2.V1LayerParameter.LayerType
    assert set(V1_TYPE_NAMES) == set(enum.values())
    assert V1_TYPE_NAMES[enum.Value("SOFTMAX_LOSS")] == "SoftmaxWithLoss"
    assert V1_TYPE_NAMES[enum.Value("TANH")] == "TanH"
    assert V1_TYPE_NAMES[enum.Value("IM2COL")] == "Im2col"


def test_input_forms() -> None:
    dims = upgrade_net(parse_net('input: "a" input: "b" input_dim: [1, 2, 3, 4, 5, 6, 7, 8] layer { name: "x" }'))
    assert [l.name for l in dims.layer] == ["input", "x"]
    assert list(dims.layer[0].top) == ["a", "b"]
    assert [list(s.dim) for s in dims.layer[0].input_param.shape] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    shaped = upgrade_net(parse_net('input: "a" input_shape { dim: [2, 5] }'))
    assert list(shaped.layer[0].input_param.shape[0].dim) == [2, 5]
    bare = upgrade_net(parse_net('input: "a" layer { name: "x" }'))
    assert [l.name for l in bare.layer] == ["x"] and not bare.input
    with pytest.raises(FormatError, match="n.prototxt: .*input_dim"):
        upgrade_net(parse_net('input: "a" input_dim: [1, 2]'), "n.prototxt")
    with pytest.raises(FormatError, match="input_shape"):
        upgrade_net(parse_net('input: "a" input: "b" input_shape { dim: 1 }'))


def test_batch_norm_param_specs() -> None:
    old = parse_net('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 name: "s" } }')
    assert net_needs_upgrade(old)
    bn = upgrade_net(old).layer[0]
    assert [(p.lr_mult, p.decay_mult) for p in bn.param] == [(0, 0)] * 3
    assert bn.param[2].name == "s"
    fine = parse_net('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } }')
    assert upgrade_net(fine) == fine


def test_refused_nets() -> None:
    with pytest.raises(FormatError, match="V0"):
        upgrade_net(parse_net('layers { layer { name: "c" type: "conv" } }'), "v0.prototxt")
    with pytest.raises(FormatError, match="mixes"):
        upgrade_net(parse_net('layers { name: "a" type: RELU } layer { name: "b" }'))


def test_current_net_is_unchanged() -> None:
    net = parse_net('name: "n" layer { name: "a" type: "ReLU" bottom: "x" top: "x" }')
    assert not net_needs_upgrade(net)
    assert upgrade_net(net) == net
