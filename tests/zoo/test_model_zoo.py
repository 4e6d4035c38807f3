"""Well-known ImageNet deploy nets (generated in zoo_nets.py) build and run.

Build checks (shape inference and parameter counts) and a forward of one
image on filler weights, for VGG-16, ResNet-50 and SqueezeNet v1.1. Measured
on the 2-core dev machine: building VGG-16 takes about 3 s (filling its 138M
weights), its forward about 1 s; ResNet-50 builds in about 1 s and runs in
0.1-0.4 s; SqueezeNet is instant. None passes the 15 s mark for ``slow``, so
all run by default; each net is built once per module and freed afterwards.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe

from .zoo_nets import resnet50, squeezenet11, vgg16

# Blob shapes after shape inference, batch 1 (checked against the published nets).
EXPECTED_SHAPES = {
    "vgg16": {
        "conv1_2": (1, 64, 224, 224), "pool1": (1, 64, 112, 112), "pool2": (1, 128, 56, 56),
        "pool3": (1, 256, 28, 28), "pool4": (1, 512, 14, 14), "pool5": (1, 512, 7, 7),
        "fc6": (1, 4096), "fc7": (1, 4096), "fc8": (1, 1000), "prob": (1, 1000),
    },
    "resnet50": {
        "conv1": (1, 64, 112, 112), "pool1": (1, 64, 56, 56),
        "res2a_branch2a": (1, 64, 56, 56), "res2c": (1, 256, 56, 56),
        "res3a_branch1": (1, 512, 28, 28), "res3a_branch2a": (1, 128, 28, 28), "res3d": (1, 512, 28, 28),
        "res4f": (1, 1024, 14, 14), "res5a_branch2b": (1, 512, 7, 7), "res5c": (1, 2048, 7, 7),
        "pool5": (1, 2048, 1, 1), "fc1000": (1, 1000), "prob": (1, 1000),
    },
    "squeezenet11": {
        "conv1": (1, 64, 113, 113), "pool1": (1, 64, 56, 56), "fire2/squeeze1x1": (1, 16, 56, 56),
        "fire2/concat": (1, 128, 56, 56), "pool3": (1, 128, 28, 28), "fire5/concat": (1, 256, 28, 28),
        "pool5": (1, 256, 14, 14), "fire9/concat": (1, 512, 14, 14), "conv10": (1, 1000, 14, 14),
        "pool10": (1, 1000, 1, 1), "prob": (1, 1000, 1, 1),
    },
}

# Learnable parameters (Caffe's BatchNorm statistics excluded, Scale counted):
# the sizes usually quoted for these nets.
EXPECTED_PARAMS = {"vgg16": 138_357_544, "resnet50": 25_557_032, "squeezenet11": 1_235_496}

GENERATORS = {"vgg16": vgg16, "resnet50": resnet50, "squeezenet11": squeezenet11}


@pytest.fixture(scope="module")
def zoo():
    """Build each net once for the module (VGG-16's weights take seconds to fill)."""
    cache: dict[str, tinycaffe.Net] = {}

    def get(name: str) -> tinycaffe.Net:
        if name not in cache:
            cache[name] = tinycaffe.Net(GENERATORS[name](batch=1), phase="test", seed=0)
        return cache[name]

    yield get
    cache.clear()  # about 0.6 GB of VGG-16 parameters


def learnable_count(net: tinycaffe.Net) -> int:
    total = 0
    for layer_name, blobs in net.params.items():
        layer = net.layers[net.layer_names.index(layer_name)]
        if layer.type == "BatchNorm":  # running mean/variance/factor, not learned
            continue
        total += sum(int(np.prod(b.shape)) for b in blobs)
    return total


@pytest.mark.parametrize("name", list(GENERATORS))
def test_builds_with_the_published_shapes(zoo, name):
    net = zoo(name)
    assert net.inputs == ["data"]
    assert net.outputs == ["prob"]
    for blob, shape in EXPECTED_SHAPES[name].items():
        assert net.blobs[blob].shape == shape, f"{name}: blob {blob}"
    assert learnable_count(net) == EXPECTED_PARAMS[name]


def test_resnet50_layer_structure(zoo):
    net = zoo("resnet50")
    types = [layer.type for layer in net.layers]
    assert types.count("BatchNorm") == types.count("Scale") == 53
    assert types.count("Eltwise") == 16
    # Projection shortcuts only at the first block of each stage.
    assert [n for n in net.layer_names if n.endswith("_branch1") and n.startswith("res")] == [
        "res2a_branch1", "res3a_branch1", "res4a_branch1", "res5a_branch1",
    ]
    # The identity shortcut reads res2a through the Split Caffe inserts after the
    # in-place res2a_relu (split 0 feeds res2b_branch2a, split 1 the sum).
    assert net.bottom_names[net.layer_names.index("res2b")] == [
        "res2a_res2a_relu_0_split_1", "res2b_branch2c",
    ]


def _forward_one_image(net: tinycaffe.Net, name: str) -> dict:
    if name == "resnet50":
        # Caffe starts BatchNorm's statistics at zero, i.e. dividing by sqrt(eps):
        # give every BatchNorm unit variance so filler weights keep values finite.
        for layer_name, layer in zip(net.layer_names, net.layers):
            if layer.type == "BatchNorm":
                mean, var, factor = net.params[layer_name]
                mean.data[...] = 0
                var.data[...] = 1
                factor.data[...] = 1
    x = np.random.default_rng(7).uniform(-1, 1, net.blobs["data"].shape).astype(np.float32)
    return net.forward(data=x)


def _check_probabilities(name: str, out: dict) -> None:
    prob = np.asarray(out["prob"])
    assert prob.shape == EXPECTED_SHAPES[name]["prob"]
    flat = prob.reshape(1, -1)
    assert flat.shape == (1, 1000)
    assert np.isfinite(flat).all()
    assert (flat >= 0).all()
    np.testing.assert_allclose(flat.sum(axis=1), 1.0, rtol=1e-5)
    assert np.ptp(flat) > 0, "every class got the same probability: the weights did nothing"


@pytest.mark.parametrize("name", list(GENERATORS))
def test_forward_one_image(zoo, name):
    _check_probabilities(name, _forward_one_image(zoo(name), name))
