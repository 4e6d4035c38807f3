"""Every net definition shipped with BVLC Caffe parses, and builds or fails cleanly.

Corpus: ../shared/data/bvlc-prototxt (the examples/ and models/ prototxt files
of BVLC Caffe, unchanged; see its README). Solver files are not nets and are
left out, except for one solver that embeds a V1 net.

- every net parses and upgrades to modern ``layer`` syntax;
- nets that take their input from Input layers / ``input_dim`` build in TEST
  phase, run one forward on filler weights with the batch cut to 1, and give
  the outputs the model is known for;
- nets whose layers read files (Data, ImageData, WindowData, HDF5Data, Python)
  fail to build with a tinycaffe error that names the layer or the file, never
  with a stray Python exception. They are built from an empty working directory
  so that their relative paths (``examples/...``) never resolve.
"""
from __future__ import annotations


import numpy as np
import pytest

import tinycaffe
from tinycaffe.errors import DataError, NetError, TinyCaffeError

from tests.conftest import SHARED, shared_path

CORPUS = SHARED / "data" / "bvlc-prototxt"


def _net_files() -> list[str]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.prototxt") if "solver" not in p.name
    )


NETS = _net_files()
_MISSING = pytest.param(
    None, id="no-corpus",
    marks=pytest.mark.skip(reason=f"../shared not found ({CORPUS}): the BVLC prototxt corpus is needed"),
)


def _or_skip(params: list) -> list:
    """The parameters, or one skipped case saying why when ../shared is absent."""
    return params if CORPUS.is_dir() else [_MISSING]

# Nets that build on their own. Value: the outputs after one forward with batch 1.
DEPLOY = {
    "examples/cifar10/cifar10_full.prototxt": {"prob": (1, 10)},
    "examples/cifar10/cifar10_quick.prototxt": {"prob": (1, 10)},
    "examples/mnist/lenet.prototxt": {"prob": (1, 10)},
    # CaffeNet with fc6-8 cast as convolutions, on a 451x451 image: an 8x8 score map.
    "examples/net_surgery/bvlc_caffenet_full_conv.prototxt": {"prob": (1, 1000, 8, 8)},
    "examples/net_surgery/conv.prototxt": {"conv": (1, 3, 96, 96)},
    "examples/siamese/mnist_siamese.prototxt": {"feat": (1, 2)},
    "models/bvlc_alexnet/deploy.prototxt": {"prob": (1, 1000)},
    "models/bvlc_googlenet/deploy.prototxt": {"prob": (1, 1000)},
    "models/bvlc_reference_caffenet/deploy.prototxt": {"prob": (1, 1000)},
    "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt": {"fc-rcnn": (1, 200)},
    "models/finetune_flickr_style/deploy.prototxt": {"prob": (1, 20)},
}

# Nets that read files in TEST phase. Value: (layer that reads, the path it names
# or None, stages to build with).
_CIFAR_LMDB = "examples/cifar10/cifar10_test_lmdb"
_IMAGENET_LMDB = "examples/imagenet/ilsvrc12_val_lmdb"
_HDF5_TEST = "examples/hdf5_classification/data/test.txt"
READS_FILES = {
    "examples/cifar10/cifar10_full_sigmoid_train_test.prototxt": ("cifar", _CIFAR_LMDB, ()),
    "examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt": ("cifar", _CIFAR_LMDB, ()),
    "examples/cifar10/cifar10_full_train_test.prototxt": ("cifar", _CIFAR_LMDB, ()),
    "examples/cifar10/cifar10_quick_train_test.prototxt": ("cifar", _CIFAR_LMDB, ()),
    "examples/feature_extraction/imagenet_val.prototxt": ("data", "examples/_temp/file_list.txt", ()),
    "examples/finetune_pascal_detection/pascal_finetune_trainval_test.prototxt": (
        "data", "examples/finetune_pascal_detection/window_file_2007_test.txt", ()),
    "examples/hdf5_classification/nonlinear_auto_test.prototxt": ("data", _HDF5_TEST, ()),
    "examples/hdf5_classification/nonlinear_auto_train.prototxt": (
        "data", "examples/hdf5_classification/data/train.txt", ()),
    "examples/hdf5_classification/nonlinear_train_val.prototxt": ("data", _HDF5_TEST, ()),
    "examples/hdf5_classification/train_val.prototxt": ("data", _HDF5_TEST, ()),
    "examples/mnist/lenet_train_test.prototxt": ("mnist", "examples/mnist/mnist_test_lmdb", ()),
    # Its TEST data layers are chosen by stage ("test-on-train" / "test-on-test").
    "examples/mnist/mnist_autoencoder.prototxt": (
        "data", "examples/mnist/mnist_test_lmdb", ("test-on-test",)),
    # DummyData inputs, but the loss is a Python layer.
    "examples/pycaffe/linreg.prototxt": ("loss", None, ()),
    # LEVELDB backend.
    "examples/siamese/mnist_siamese_train_test.prototxt": (
        "pair_data", "examples/siamese/mnist_siamese_test_leveldb", ()),
    "models/bvlc_alexnet/train_val.prototxt": ("data", _IMAGENET_LMDB, ()),
    "models/bvlc_googlenet/train_val.prototxt": ("data", _IMAGENET_LMDB, ()),
    "models/bvlc_reference_caffenet/train_val.prototxt": ("data", _IMAGENET_LMDB, ()),
    "models/finetune_flickr_style/train_val.prototxt": ("data", "data/flickr_style/test.txt", ()),
}

# Forward passes that take more than a few seconds on a 2-core CPU (none so far;
# see the module docstring of tests/zoo/test_model_zoo.py for the big zoo nets).
SLOW: set[str] = set()


def _param(rel: str):
    marks = [pytest.mark.slow] if rel in SLOW else []
    return pytest.param(rel, id=rel, marks=marks)


def test_corpus_is_classified():
    """Each net of the corpus is listed once, as deploy or as reading files."""
    shared_path("data", "bvlc-prototxt")
    assert not set(DEPLOY) & set(READS_FILES)
    assert sorted(set(DEPLOY) | set(READS_FILES)) == NETS


# -- parsing --------------------------------------------------------------------

@pytest.mark.parametrize("rel", _or_skip(NETS))
def test_parses_and_upgrades(rel):
    from tinycaffe.net.build import load_net_param

    net = load_net_param(CORPUS / rel)
    assert len(net.layer) > 0
    assert len(net.layers) == 0, "V1 'layers' entries left after the upgrade"
    assert not net.input and not net.input_dim and not net.input_shape, "net-level inputs not upgraded"
    names = [layer.name for layer in net.layer]
    assert all(names) and all(layer.type for layer in net.layer)
    # Every bottom is produced by some layer (phase filtering is not applied here).
    tops = {t for layer in net.layer for t in layer.top}
    for layer in net.layer:
        for b in layer.bottom:
            assert b in tops, f"{rel}: layer {layer.name} reads {b}, which nothing produces"


def test_consolidated_solver_embeds_a_v1_net():
    """lenet_consolidated_solver.prototxt carries its net inline, in V1 syntax."""
    from tinycaffe.net.build import load_net_param
    from tinycaffe.proto.prototxt import read_solver

    path = shared_path("data", "bvlc-prototxt", "examples/mnist/lenet_consolidated_solver.prototxt")
    solver = read_solver(path)
    assert solver.HasField("net_param") and len(solver.net_param.layers) > 0
    net = load_net_param(solver.net_param)
    assert len(net.layers) == 0
    types = [layer.type for layer in net.layer]
    expected = {"Data", "Convolution", "Pooling", "InnerProduct", "ReLU", "SoftmaxWithLoss", "Accuracy"}
    assert expected <= set(types)


# -- deploy nets: build, reshape to batch 1, forward ------------------------------

@pytest.mark.parametrize("rel", _or_skip([_param(r) for r in NETS if r in DEPLOY]))
def test_deploy_net_builds_and_runs(rel):
    net = tinycaffe.Net(str(CORPUS / rel), phase="test")
    assert net.inputs, f"{rel}: no input blobs"
    rng = np.random.default_rng(0)
    inputs = {}
    for name in net.inputs:
        shape = net.blobs[name].shape
        net.blobs[name].reshape(1, *shape[1:])
    net.reshape()
    for name in net.inputs:
        inputs[name] = rng.uniform(-1, 1, net.blobs[name].shape).astype(np.float32)
    out = net.forward(**inputs)
    expected = DEPLOY[rel]
    assert {k: tuple(np.shape(v)) for k, v in out.items()} == expected
    for name, value in out.items():
        value = np.asarray(value)
        assert np.isfinite(value).all(), f"{rel}: output {name} has non-finite values"
        producer = net.layers[max(i for i, tops in enumerate(net.top_names) if name in tops)]
        if producer.type == "Softmax":
            np.testing.assert_allclose(value.sum(axis=1), 1.0, rtol=1e-5)
    for name, blob in net.blobs.items():
        assert blob.shape[0] == 1, f"{rel}: blob {name} kept batch {blob.shape[0]} after reshape"


# -- nets that read files --------------------------------------------------------

@pytest.mark.parametrize("rel", _or_skip([r for r in NETS if r in READS_FILES]))
def test_file_reading_net_fails_clearly(rel, tmp_path, monkeypatch):
    layer, path, stages = READS_FILES[rel]
    monkeypatch.chdir(tmp_path)  # relative data paths must not resolve
    with pytest.raises(TinyCaffeError) as info:
        tinycaffe.Net(str(CORPUS / rel), phase="test", stages=stages)
    exc = info.value
    message = str(exc)
    assert isinstance(exc, (DataError, NetError)), f"{type(exc).__name__}: {message}"
    cause = exc.__cause__
    assert not (type(exc) is NetError and cause is not None and not isinstance(cause, TinyCaffeError)), (
        f"a bug surfaced as a NetError instead of a data error: {message}"
    )
    named = f"'{layer}'" in message or (path is not None and path in message)
    assert named, f"the error names neither layer '{layer}' nor {path}: {message}"


def test_autoencoder_without_stage_lacks_its_data():
    """In TEST phase with no stage no data layer is kept, as in Caffe: 'data' is unknown."""
    with pytest.raises(NetError, match="'data'"):
        tinycaffe.Net(str(shared_path("data", "bvlc-prototxt", "examples/mnist/mnist_autoencoder.prototxt")))


def test_linreg_without_its_python_loss_builds():
    """linreg's DummyData -> InnerProduct part runs once the Python layer is dropped."""
    from tinycaffe.net.build import load_net_param

    param = load_net_param(shared_path("data", "bvlc-prototxt", "examples/pycaffe/linreg.prototxt"))
    kept = [layer for layer in param.layer if layer.type != "Python"]
    del param.layer[:]
    param.layer.extend(kept)
    net = tinycaffe.Net(param)
    out = net.forward()
    assert sorted(out) == ["ipx", "ipy"]
    assert out["ipx"].shape == (10, 10) and out["ipy"].shape == (10, 10)
    assert np.asarray(net.blobs["x"].data).std() > 0  # gaussian filler ran
