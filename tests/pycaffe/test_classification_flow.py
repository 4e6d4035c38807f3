"""The BVLC classification notebook's flow, written with ``import tinycaffe as caffe``.

Load a deploy net with its weights, set up a Transformer (transpose, raw
scale, mean), reshape the input to one image, forward, read the top class;
then a batch through ``forward_all`` and ``caffe.Classifier``. Checked against
real Caffe's outputs where ../shared has them, else against our own Data-layer
pipeline on the bundled sample.
"""
from __future__ import annotations

import numpy as np

import tinycaffe as caffe

from tests.conftest import REPO

from .conftest import DEPLOY, SAMPLE_MEAN, STUDY_WEIGHTS, read_sample


def _transformer(net, mean):
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    transformer.set_transpose("data", (2, 0, 1))  # H x W x C -> C x H x W
    transformer.set_raw_scale("data", 255)        # [0, 1] -> [0, 255], as the net was trained
    transformer.set_mean("data", mean)            # CIFAR-10 images stay RGB: no channel swap
    return transformer


def test_one_image_after_reshape_to_batch_1_matches_real_caffe(reference_full):
    ref = np.load(reference_full / "reference.npz")
    mean_blob = caffe.caffe_pb2.BlobProto()
    mean_blob.ParseFromString((reference_full.parent / "mean.binaryproto").read_bytes())
    mean = caffe.io.blobproto_to_array(mean_blob)[0]
    net = caffe.Net(str(reference_full / "deploy.prototxt"),
                    str(reference_full / "cifar10_full_iter_70000.caffemodel"), caffe.TEST)
    transformer = _transformer(net, mean)
    # The notebook's image: a float H x W x C picture in [0, 1] (here the reference's image 0).
    image = ((ref["input"][0] + mean) / 255.0).transpose(1, 2, 0)

    net.blobs["data"].reshape(1, 3, 32, 32)      # Caffe reshapes the rest on forward
    net.blobs["data"].data[...] = transformer.preprocess("data", image)
    prob = net.forward()["prob"]

    assert prob.shape == (1, 10)
    np.testing.assert_allclose(prob[0], ref["prob"][0], rtol=1e-4, atol=1e-6)
    assert prob[0].argmax() == ref["prob"][0].argmax()
    # deprocess undoes preprocess (all but the resize)
    np.testing.assert_allclose(transformer.deprocess("data", net.blobs["data"].data[0]), image, atol=1e-5)


def test_forward_all_pads_the_last_batch_and_matches_real_caffe(reference_full):
    ref = np.load(reference_full / "reference.npz")
    net = caffe.Net(str(reference_full / "deploy.prototxt"), caffe.TEST,
                    weights=str(reference_full / "cifar10_full_iter_70000.caffemodel"))
    net.blobs["data"].reshape(16, 3, 32, 32)
    net.reshape()
    out = net.forward_all(data=ref["input"][:40])  # 16 + 16 + 8 (padded with zeros to 16)
    assert out["prob"].shape == (40, 10)
    np.testing.assert_allclose(out["prob"], ref["prob"][:40], rtol=1e-4, atol=1e-6)


def test_sample_images_through_transformer_agree_with_the_data_layer(monkeypatch):
    """The notebook's preprocessing gives what the Data layer (mean_file) gives on the same records."""
    images, labels = read_sample(100)
    mean_blob = caffe.caffe_pb2.BlobProto()
    mean_blob.ParseFromString(SAMPLE_MEAN.read_bytes())
    mean = caffe.io.blobproto_to_array(mean_blob)[0]
    net = caffe.Net(str(DEPLOY), str(STUDY_WEIGHTS), caffe.TEST)
    transformer = _transformer(net, mean)
    batch = np.stack([transformer.preprocess("data", im) for im in images])
    out = net.forward_all(data=batch, blobs=["ip1"])

    monkeypatch.chdir(REPO)  # the sample prototxt names its LMDB relative to the repository
    data_net = caffe.Net(str(REPO / "prototxt" / "cifar10_full_sample.prototxt"), str(STUDY_WEIGHTS), caffe.TEST)
    data_net.forward()
    np.testing.assert_array_equal(data_net.blobs["label"].data, labels)
    np.testing.assert_allclose(out["ip1"], data_net.blobs["ip1"].data, rtol=1e-4, atol=1e-4)
    # The study net is a working classifier on these images (0.717 over the 1,000 sample images).
    assert (out["prob"].argmax(1) == labels).mean() >= 0.5
    data_net.close()


def test_classifier_center_crop_and_oversampling(reference_full):
    ref = np.load(reference_full / "reference.npz")
    mean_blob = caffe.caffe_pb2.BlobProto()
    mean_blob.ParseFromString((reference_full.parent / "mean.binaryproto").read_bytes())
    mean = caffe.io.blobproto_to_array(mean_blob)[0]
    images = [((ref["input"][i] + mean) / 255.0).transpose(1, 2, 0) for i in range(4)]
    clf = caffe.Classifier(str(reference_full / "deploy.prototxt"),
                           str(reference_full / "cifar10_full_iter_70000.caffemodel"),
                           mean=mean, raw_scale=255)
    # image_dims = the net's input: the centre crop is the whole image, as in real Caffe.
    centre = clf.predict(images, oversample=False)
    np.testing.assert_allclose(centre, ref["prob"][:4], rtol=1e-4, atol=1e-6)

    clf = caffe.Classifier(str(reference_full / "deploy.prototxt"),
                           str(reference_full / "cifar10_full_iter_70000.caffemodel"),
                           image_dims=(36, 36), mean=mean, raw_scale=255)
    averaged = clf.predict(images, oversample=True)
    # The same ten crops by hand: corners, centre, mirrors, each through the net.
    crops = caffe.io.oversample([caffe.io.resize_image(im, (36, 36)) for im in images], (32, 32))
    by_hand = clf.forward_all(data=np.stack([clf.transformer.preprocess("data", c) for c in crops]))["prob"]
    np.testing.assert_allclose(averaged, by_hand.reshape(4, 10, 10).mean(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(averaged.sum(1), 1.0, rtol=1e-5)
