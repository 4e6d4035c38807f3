"""The BVLC net-surgery notebook's flow: cast a fully-connected layer into a convolution.

cifar10_full's ``ip1`` (InnerProduct over pool3's 64 x 4 x 4) becomes ``ip1-conv``
(Convolution, 10 outputs, kernel 4): the same weights, reshaped, give the
same scores on 32 x 32 images, and a score map on larger ones.
"""
from __future__ import annotations

import numpy as np

import tinycaffe as caffe

from .conftest import DEPLOY, STUDY_WEIGHTS


def full_conv_text(batch: int, size: int) -> str:
    """cifar10_full with ip1 as a 4 x 4 convolution, for ``batch`` images of size x size."""
    text = DEPLOY.read_text()
    start = text.index('layer {\n  name: "ip1"')
    end = text.index('layer {\n  name: "prob"')
    conv = ('layer {\n  name: "ip1-conv"\n  type: "Convolution"\n  bottom: "pool3"\n  top: "ip1-conv"\n'
            '  convolution_param { num_output: 10 kernel_size: 4 }\n}\n')
    text = text[:start] + conv + text[end:].replace('bottom: "ip1"', 'bottom: "ip1-conv"')
    return text.replace("dim: [ 100, 3, 32, 32 ]", f"dim: [ {batch}, 3, {size}, {size} ]")


def transplant(net, net_full_conv) -> None:
    # The notebook's loop: same values, the conv blob's 4-d shape.
    for fc, conv in [("ip1", "ip1-conv")]:
        net_full_conv.params[conv][0].data.flat = net.params[fc][0].data.flat  # weights
        net_full_conv.params[conv][1].data[...] = net.params[fc][1].data       # biases


def test_fc_cast_into_conv_gives_identical_scores():
    net = caffe.Net(str(DEPLOY), str(STUDY_WEIGHTS), caffe.TEST)
    net_full_conv = caffe.Net(full_conv_text(4, 32), str(STUDY_WEIGHTS), caffe.TEST)
    assert "ip1" not in net_full_conv.params  # the caffemodel's ip1 has no layer to go to
    assert net_full_conv.params["ip1-conv"][0].data.shape == (10, 64, 4, 4)
    assert net.params["ip1"][0].data.shape == (10, 1024)
    transplant(net, net_full_conv)

    x = np.random.default_rng(0).uniform(-100, 100, (4, 3, 32, 32)).astype(np.float32)
    net.blobs["data"].reshape(4, 3, 32, 32)
    fc_prob = net.forward(data=x)["prob"]
    conv_prob = net_full_conv.forward(data=x)["prob"]
    assert conv_prob.shape == (4, 10, 1, 1)
    np.testing.assert_allclose(conv_prob[:, :, 0, 0], fc_prob, rtol=1e-5, atol=1e-6)


def test_full_conv_net_gives_a_score_map_on_larger_images():
    net = caffe.Net(str(DEPLOY), str(STUDY_WEIGHTS), caffe.TEST)
    net_full_conv = caffe.Net(full_conv_text(1, 40), str(STUDY_WEIGHTS), caffe.TEST)
    transplant(net, net_full_conv)
    x = np.random.default_rng(1).uniform(-100, 100, (1, 3, 40, 40)).astype(np.float32)
    prob = net_full_conv.forward(data=x)["prob"]
    # 40 -> pool1 20 -> pool2 10 -> pool3 5 -> 4 x 4 kernel: a 2 x 2 map of class scores.
    assert prob.shape == (1, 10, 2, 2)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)


def test_surgery_on_real_caffe_weights_matches_real_caffe(reference_full):
    ref = np.load(reference_full / "reference.npz")
    weights = str(reference_full / "cifar10_full_iter_70000.caffemodel")  # a V1 caffemodel
    net = caffe.Net(str(reference_full / "deploy.prototxt"), weights, caffe.TEST)
    net_full_conv = caffe.Net(full_conv_text(100, 32), weights, caffe.TEST)
    transplant(net, net_full_conv)
    prob = net_full_conv.forward(data=ref["input"])["prob"]
    np.testing.assert_allclose(prob[:, :, 0, 0], ref["prob"], rtol=1e-4, atol=1e-6)
