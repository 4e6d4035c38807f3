"""A net whose batch size changes between forwards gives the answers of a fresh net.

Blobs keep their buffers while a new shape fits (Caffe's capacity rule,
tinycaffe/blob.py), so after batch 32 a forward at batch 8 runs on buffers
that hold batch 32's values. Forward and backward at 8, then 32, then 8
again must equal a fresh net's at 8: outputs, the loss, the input's gradient
and every parameter gradient.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinycaffe

REPO = Path(__file__).resolve().parents[2]


def _training_text(deploy: str) -> str:
    """The deploy net at batch 8 with a label input and a SoftmaxWithLoss beside its Softmax
    (its last InnerProduct then feeds two layers: a Split is inserted)."""
    text = (REPO / "prototxt" / deploy).read_text()
    text = text.replace('top: "data"\n  input_param { shape { dim: [ 100, 3, 32, 32 ] } }',
                        'top: "data"\n  top: "label"\n'
                        '  input_param { shape { dim: [ 8, 3, 32, 32 ] } shape { dim: [ 8 ] } }', 1)
    assert 'top: "label"' in text, "the Input layer of the deploy prototxt changed; update this test"
    last_ip = [line.split('"')[1] for line in text.splitlines() if line.strip().startswith("top:")][-2]
    return ("force_backward: true\n" + text
            + f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{last_ip}" bottom: "label" top: "loss" }}\n')


def _step(net, x, labels):
    out = net.forward(data=x, label=labels)
    out = {k: np.array(v) for k, v in out.items()}
    net.clear_param_diffs()
    grads = net.backward()
    result = dict(out)
    result["data.diff"] = np.array(grads["data"])
    for layer_name, layer in zip(net.layer_names, net.layers):
        for j, b in enumerate(layer.blobs):
            result[f"{layer_name}.{j}.diff"] = np.array(b.diff)
    return result


@pytest.mark.parametrize("deploy", ["cifar10_quick.prototxt", "cifar10_full.prototxt"])
def test_batch_8_then_32_then_8_equals_a_fresh_net(tmp_path, deploy):
    model = tmp_path / "train.prototxt"
    model.write_text(_training_text(deploy))
    rng = np.random.default_rng(0)
    x8 = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    l8 = rng.integers(0, 10, 8).astype(np.float32)
    x32 = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    l32 = rng.integers(0, 10, 32).astype(np.float32)

    fresh = tinycaffe.Net(str(model), phase="train", seed=5)
    expected = _step(fresh, x8, l8)

    net = tinycaffe.Net(str(model), phase="train", seed=5)
    first = _step(net, x8, l8)
    _step(net, x32, l32)
    again = _step(net, x8, l8)

    assert set(again) == set(expected) and "loss" in expected and "prob" in expected
    for name, want in expected.items():
        np.testing.assert_array_equal(first[name], want, err_msg=f"{deploy}: {name}, first batch of 8")
        np.testing.assert_array_equal(again[name], want, err_msg=f"{deploy}: {name}, batch 8 after batch 32")
    # The buffers really were reused: the blobs kept batch 32's capacity.
    assert net.blobs["conv1"].capacity == 32 * 32 * 32 * 32 and net.blobs["conv1"].shape == (8, 32, 32, 32)
    assert net.blobs["data"].capacity == 32 * 3 * 32 * 32 and net.blobs["data"].shape == (8, 3, 32, 32)
    assert net.blobs["prob"].capacity == 32 * 10
