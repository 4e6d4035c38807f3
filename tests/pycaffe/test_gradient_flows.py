"""Gradient scripts: saliency maps (a class score's gradient with respect to the image,
``force_backward: true``), the deep-dream step (a blob's diff set by hand, backward
from its layer), and filter visualisation from ``net.params``.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe as caffe

from .conftest import DEPLOY, STUDY_WEIGHTS, read_sample

SMALL = """
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [2, 3, 8, 8] } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
          weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "TanH" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def _deploy(batch: int, force: bool) -> str:
    text = DEPLOY.read_text().replace("dim: [ 100, 3, 32, 32 ]", f"dim: [ {batch}, 3, 32, 32 ]")
    return ("force_backward: true\n" if force else "") + text


def test_saliency_needs_force_backward_as_in_caffe():
    x = np.random.default_rng(0).uniform(-60, 60, (2, 3, 32, 32)).astype(np.float32)
    plain = caffe.Net(_deploy(2, force=False), str(STUDY_WEIGHTS), caffe.TEST)
    plain.forward(data=x)
    grads = plain.backward(prob=np.ones((2, 10), np.float32))
    assert list(grads) == ["data"]
    assert not grads["data"].any()  # no loss, no force_backward: Caffe back-propagates nothing


def test_saliency_map_is_the_gradient_of_the_class_score():
    images, labels = read_sample(2)
    net = caffe.Net(_deploy(2, force=True), str(STUDY_WEIGHTS), caffe.TEST)
    mean = np.full((3, 1, 1), 120.0, np.float32)
    x = np.stack([im.transpose(2, 0, 1) * 255 for im in images]).astype(np.float32) - mean
    prob = net.forward(data=x)["prob"]
    onehot = np.zeros_like(prob)
    onehot[np.arange(2), labels] = 1.0
    grads = net.backward(prob=onehot)
    saliency = np.abs(grads["data"]).max(axis=1)  # the notebook's map: max |gradient| over channels
    assert saliency.shape == (2, 32, 32) and saliency.max() > 0
    # Check against the score's change along a random direction (one finite difference).
    d = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    # Small enough to stay off ReLU / max-pool kinks, large enough for float32 scores.
    eps = 0.01
    up = net.forward(data=x + eps * d)["prob"][np.arange(2), labels].astype(np.float64)
    down = net.forward(data=x - eps * d)["prob"][np.arange(2), labels].astype(np.float64)
    numeric = (up - down) / (2 * eps)
    analytic = (grads["data"] * d).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(analytic, numeric, rtol=0.06)


def test_small_net_input_gradient_matches_central_differences():
    net = caffe.Net(SMALL, caffe.TEST, seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    top = rng.standard_normal((2, 5)).astype(np.float32)
    net.forward(data=x)
    grad = net.backward(prob=top)["data"].copy()

    def score(xx):
        return float((net.forward(data=xx)["prob"].astype(np.float64) * top).sum())

    for idx in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 7, 7), (1, 0, 4, 2)]:
        step = np.zeros_like(x)
        step[idx] = 1e-2
        numeric = (score(x + step) - score(x - step)) / 2e-2
        assert grad[idx] == pytest.approx(numeric, rel=2e-2, abs=1e-4), idx


def test_deep_dream_step_backward_from_a_layer():
    """Set a blob's diff to its data (the L2 objective) and back-propagate from its layer."""
    net = caffe.Net(SMALL, caffe.TEST, seed=3)
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    end = "pool1"
    net.forward(data=x, end=end)
    net.blobs[end].diff[:] = net.blobs[end].data
    grads = net.backward(start=end)
    g = grads["data"].copy()

    def objective(xx):
        net.forward(data=xx, end=end)
        return 0.5 * float((net.blobs[end].data.astype(np.float64) ** 2).sum())

    for idx in [(0, 0, 1, 1), (1, 2, 6, 3)]:
        step = np.zeros_like(x)
        step[idx] = 1e-2
        numeric = (objective(x + step) - objective(x - step)) / 2e-2
        assert g[idx] == pytest.approx(numeric, rel=2e-2, abs=1e-4), idx
    # The dream's ascent step makes the objective grow.
    before = objective(x)
    assert objective(x + 1e-2 / np.abs(g).mean() * g) > before


def test_filter_visualisation_reads_the_real_caffe_weights(reference_full):
    h5 = pytest.importorskip("h5py")
    folder = reference_full.parent / "BXuan694_Caffe__cifar10_full_iter_60000"
    weights = folder / "cifar10_full_iter_60000.caffemodel.h5"
    if not weights.exists():
        pytest.skip(f"{weights} not found")
    net = caffe.Net(str(folder / "deploy.prototxt"), str(weights), caffe.TEST)
    filters = net.params["conv1"][0].data
    with h5.File(weights, "r") as f:
        np.testing.assert_array_equal(filters, f["data/conv1/0"][()])
    assert net.params["conv1"][0].num == 32 and net.params["conv1"][0].channels == 3
    # The notebook's vis_square: normalise to [0, 1], tile n x n with a 1-pixel border.
    data = filters.transpose(0, 2, 3, 1)
    data = (data - data.min()) / (data.max() - data.min())
    n = int(np.ceil(np.sqrt(data.shape[0])))
    padding = ((0, n ** 2 - data.shape[0]), (0, 1), (0, 1), (0, 0))
    tiled = np.pad(data, padding, mode="constant", constant_values=1)
    tiled = tiled.reshape((n, n) + tiled.shape[1:]).transpose(0, 2, 1, 3, 4)
    tiled = tiled.reshape((n * tiled.shape[1], n * tiled.shape[3]) + tiled.shape[4:])
    assert tiled.shape == (36, 36, 3) and tiled.min() == 0.0 and tiled.max() == 1.0
    # The feature maps of the first image are real Caffe's.
    ref = np.load(folder / "reference.npz")
    net.forward(data=ref["input"])
    np.testing.assert_allclose(net.blobs["conv1"].data[:8], ref["blob/conv1"], rtol=1e-4,
                               atol=1e-4 * float(np.abs(ref["blob/conv1"]).max()))
