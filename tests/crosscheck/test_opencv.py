"""Cross-check against OpenCV's DNN module, an independent reader of Caffe models.

Dev-only (``-m crosscheck``); needs ``pip install "opencv-python-headless<5"``
(OpenCV 5 dropped its Caffe importer).

- the real-Caffe CIFAR-10 models of ../shared/data/caffe-reference whose
  weights are binary caffemodels (OpenCV does not read the ``.h5`` ones):
  OpenCV and tinycaffe load the same deploy.prototxt + caffemodel and must
  agree on the reference input;
- a small conv/pool/LRN/InnerProduct net with filler weights, saved by
  tinycaffe (``Net.save``), must read back into OpenCV with the same outputs:
  this checks the caffemodel writer and the Caffe quirks (ceil pooling with a
  clipped last window, AVE divisor over the padded window, LRN alpha / size)
  against a second implementation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinycaffe

from tests.conftest import SHARED, shared_path

pytestmark = pytest.mark.crosscheck
cv2 = pytest.importorskip("cv2")

REFERENCE = SHARED / "data" / "caffe-reference"
RTOL = 1e-4


def _binary_models() -> list[str]:
    if not REFERENCE.is_dir():
        return []
    return sorted(p.name for p in REFERENCE.iterdir() if p.is_dir() and any(p.glob("*.caffemodel")))


def assert_close(ours, theirs, what: str) -> None:
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs OpenCV {theirs.shape}"
    scale = max(float(np.abs(theirs).max()), 1e-12)
    err = float(np.abs(ours - theirs).max()) / scale
    assert err <= RTOL, f"{what}: max difference {err:.2e} of the blob's scale {scale:.3g}"


def opencv_forward(prototxt: Path, caffemodel: Path, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableFusion(False)  # keep every named layer's own output
    net.setInput(np.ascontiguousarray(x, dtype=np.float32))
    return [np.array(o) for o in net.forward(names)]


def test_opencv_reads_caffe_models():
    assert hasattr(cv2.dnn, "readNetFromCaffe"), f"OpenCV {cv2.__version__} has no Caffe importer"


@pytest.mark.parametrize("model", _binary_models())
def test_reference_model_matches_opencv(model):
    folder = shared_path("data", "caffe-reference", model)
    deploy = folder / "deploy.prototxt"
    weights = sorted(folder.glob("*.caffemodel"))[0]
    x = np.load(folder / "reference.npz")["input"]
    assert x.shape == (100, 3, 32, 32)

    net = tinycaffe.Net(str(deploy), weights=str(weights))
    out = net.forward(data=x)
    logits = [name for name, layer in zip(net.layer_names, net.layers) if layer.type == "InnerProduct"][-1]
    cv_prob, cv_logits = opencv_forward(deploy, weights, x, ["prob", logits])
    assert_close(out["prob"], cv_prob, f"{model} prob")
    assert_close(net.blobs[logits].data, cv_logits, f"{model} {logits}")
    assert (np.asarray(out["prob"]).argmax(1) == cv_prob.argmax(1)).all()


# -- a generated net, written by tinycaffe ---------------------------------------

SMALL = """
name: "crosscheck_small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [4, 3, 20, 20] } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 5 pad: 2
    weight_filler { type: "gaussian" std: 0.2 } bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
  lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2
    weight_filler { type: "xavier" } bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "norm2" type: "LRN" bottom: "pool2" top: "norm2"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 beta: 0.75 } }
layer { name: "pool3" type: "Pooling" bottom: "norm2" top: "pool3"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1"
  inner_product_param { num_output: 10
    weight_filler { type: "xavier" } bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def last_writer(net: tinycaffe.Net, blob: str) -> str:
    """The layer whose output a blob holds after forward (in-place layers overwrite it).

    OpenCV names outputs by layer: tinycaffe's ``conv2`` (ReLU applied in
    place) is OpenCV's ``relu2``.
    """
    return [name for name, tops in zip(net.layer_names, net.top_names) if blob in tops][-1]


def test_generated_net_saved_by_tinycaffe_matches_opencv(tmp_path):
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(SMALL)
    model = tmp_path / "small.caffemodel"
    net = tinycaffe.Net(SMALL, seed=3)
    net.save(model)

    x = np.random.default_rng(5).uniform(-1, 1, (4, 3, 20, 20)).astype(np.float32)
    net.forward(data=x)
    # Ceil-mode pooling: pool1's last window (rows 18..20) hangs over the edge of
    # the 20 rows; pool2 (2/2 pad 1 on 5) would give 4, Caffe drops the window
    # that starts in the padding and keeps 3.
    assert net.blobs["pool1"].shape == (4, 8, 10, 10)
    assert net.blobs["pool2"].shape == (4, 6, 3, 3)
    # pool3 (3/2 pad 1 on 3): the last window covers rows 1, 2 and a padding row,
    # and Caffe divides by 3 per axis there, padding included.
    assert net.blobs["pool3"].shape == (4, 6, 2, 2)
    blobs = [name for name in net.blobs if name != "data"]
    theirs = opencv_forward(prototxt, model, x, [last_writer(net, b) for b in blobs])
    for name, blob in zip(blobs, theirs):
        assert_close(net.blobs[name].data, blob, f"small {name} (OpenCV layer {last_writer(net, name)})")

    # The saved caffemodel also loads back into tinycaffe with the same outputs.
    again = tinycaffe.Net(str(prototxt), weights=str(model))
    np.testing.assert_array_equal(again.forward(data=x)["prob"], net.blobs["prob"].data)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("deploy, weights", [
    ("prototxt/cifar10_quick.prototxt", "weights/cifar10_quick_iter_5000.caffemodel"),
    ("prototxt/cifar10_full.prototxt", "weights/study/full_iter_5000.caffemodel"),
])
def test_weights_trained_by_tinycaffe_match_opencv(deploy, weights):
    # The caffemodels tinycaffe's solver wrote, read by a second implementation.
    net = tinycaffe.Net(str(REPO / deploy), weights=str(REPO / weights), phase="test")
    x = np.random.default_rng(2).uniform(-128, 128, net.blobs["data"].shape).astype(np.float32)
    ours = net.forward(data=x)["prob"]
    (theirs,) = opencv_forward(REPO / deploy, REPO / weights, x, ["prob"])
    assert_close(ours, theirs, f"{weights} prob")
    assert (ours.argmax(1) == theirs.argmax(1)).all()
