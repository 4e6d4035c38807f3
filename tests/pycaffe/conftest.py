"""Data for the pycaffe-flow tests: the bundled CIFAR-10 sample, our study weights, and
real Caffe's reference outputs (../shared/data/caffe-reference, skipped when absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, shared_path

DEPLOY = REPO / "prototxt" / "cifar10_full.prototxt"
STUDY_WEIGHTS = REPO / "weights" / "study" / "full_iter_5000.caffemodel"
SAMPLE_LMDB = REPO / "tinycaffe" / "sample" / "cifar10_test_lmdb"
SAMPLE_MEAN = REPO / "tinycaffe" / "sample" / "mean.binaryproto"


def read_sample(n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first n sample images as H x W x 3 RGB floats in [0, 1] (what caffe.io.load_image
    gives) and their labels, read the way pycaffe scripts read an LMDB."""
    import lmdb

    import tinycaffe as caffe

    images, labels = [], []
    env = lmdb.open(str(SAMPLE_LMDB), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for i, (_, value) in enumerate(txn.cursor()):
                if i == n:
                    break
                datum = caffe.caffe_pb2.Datum()
                datum.ParseFromString(value)
                chw = caffe.io.datum_to_array(datum)
                images.append(chw.transpose(1, 2, 0).astype(np.float32) / 255.0)
                labels.append(datum.label)
    finally:
        env.close()
    return images, np.array(labels)


@pytest.fixture(scope="session")
def sample_mean() -> np.ndarray:
    """The CIFAR-10 training mean as 3 x 32 x 32 (read from its .binaryproto with caffe.io)."""
    import tinycaffe as caffe

    blob = caffe.caffe_pb2.BlobProto()
    blob.ParseFromString(SAMPLE_MEAN.read_bytes())
    return caffe.io.blobproto_to_array(blob)[0]


@pytest.fixture(scope="session")
def reference_full() -> Path:
    """Real Caffe's cifar10_full (V1 net and weights) with its reference outputs."""
    return shared_path("data", "caffe-reference", "everpeace_caffe__cifar10_full_iter_70000")
