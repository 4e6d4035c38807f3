"""Real Caffe's caffemodels (V1, V2, HDF5) load and give real Caffe's numbers.

Ground truth: ../shared/data/caffe-reference (see its README): per model, the
outputs for the first 100 test images, every blob for the first 8, and the
accuracy/loss of a real `caffe test` over all 10,000 test images.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinycaffe
from tinycaffe.cli import main as cli_main

from .conftest import MODELS, REFERENCE, weights_file

pytestmark = pytest.mark.skipif(
    not MODELS, reason=f"../shared not found ({REFERENCE}): the real-Caffe reference checks need it"
)

RTOL = 1e-4


def assert_close(ours, theirs, what):
    # Relative to the blob's scale: a single tiny value can't be held to 1e-4 of itself.
    scale = max(float(np.abs(theirs).max()), 1e-12)
    err = float(np.abs(ours - theirs).max()) / scale
    assert err <= RTOL, f"{what}: max error {err:.2e} of the blob's scale {scale:.3g}"


@pytest.mark.parametrize("model", MODELS)
def test_outputs_match_real_caffe(model):
    folder = REFERENCE / model
    ref = np.load(folder / "reference.npz")
    net = tinycaffe.Net(str(folder / "deploy.prototxt"), weights=str(weights_file(folder)))
    out = net.forward(data=ref["input"])
    assert_close(out["prob"], ref["prob"], f"{model} prob")
    logits_name = [n for n in net.blobs if n.startswith("ip")][-1]
    assert_close(net.blobs[logits_name].data, ref["logits"], f"{model} {logits_name}")
    assert (out["prob"].argmax(1) == ref["prob"].argmax(1)).all()
    blob_keys = [k for k in ref.files if k.startswith("blob/")]
    assert blob_keys
    for key in blob_keys:
        name = key[len("blob/"):]
        assert name in net.blobs, f"{model}: reference blob {name} missing from our net"
        assert_close(net.blobs[name].data[:8], ref[key], f"{model} blob {name}")


def _caffe_scores(folder):
    text = (folder / "caffe_test.txt").read_text()
    acc = re.search(r"^accuracy = ([0-9.]+)", text, re.M).group(1)
    loss = re.search(r"^loss = ([0-9.]+)", text, re.M).group(1)
    return acc, loss


def _test_net_for(folder, lmdb_path, mean_file) -> str:
    """The model's deploy net with Caffe's CIFAR-10 test data, accuracy and loss layers."""
    from tinycaffe.net.build import load_net_param
    from tinycaffe.proto import caffe_pb2
    from tinycaffe.proto.prototxt import to_text

    net = load_net_param(str(folder / "deploy.prototxt"))
    layers = [l for l in net.layer if l.type not in ("Input", "Softmax")]
    logits = layers[-1].top[0]
    out = caffe_pb2.NetParameter(name=net.name)
    data = out.layer.add(name="cifar", type="Data")
    data.top.extend(["data", "label"])
    data.transform_param.mean_file = str(mean_file)
    data.data_param.source = str(lmdb_path)
    data.data_param.batch_size = 100
    data.data_param.backend = caffe_pb2.DataParameter.LMDB
    for l in layers:
        out.layer.add().CopyFrom(l)
    acc = out.layer.add(name="accuracy", type="Accuracy")
    acc.bottom.extend([logits, "label"])
    acc.top.append("accuracy")
    loss = out.layer.add(name="loss", type="SoftmaxWithLoss")
    loss.bottom.extend([logits, "label"])
    loss.top.append("loss")
    return to_text(out)


@pytest.mark.parametrize("model", MODELS)
def test_caffe_test_accuracy_on_10000_images(model, cifar10_test_lmdb, tmp_path, capsys):
    folder = REFERENCE / model
    prototxt = tmp_path / "test.prototxt"
    prototxt.write_text(_test_net_for(folder, cifar10_test_lmdb, REFERENCE / "mean.binaryproto"))
    code = cli_main(["test", str(prototxt), "--weights", str(weights_file(folder)),
                     "--iterations", "100", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    ours_acc = float(re.search(r"^accuracy = ([0-9.e-]+)", printed, re.M).group(1))
    ours_loss = float(re.search(r"^loss = ([0-9.e-]+)", printed, re.M).group(1))
    acc, loss = _caffe_scores(folder)
    digits = len(acc.split(".")[1])
    assert f"{ours_acc:.{digits}f}" == acc, f"{model}: accuracy {ours_acc} vs real Caffe's {acc}"
    assert ours_loss == pytest.approx(float(loss), rel=2e-5), f"{model}: loss {ours_loss} vs {loss}"
