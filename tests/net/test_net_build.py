"""Building nets: phases, in-place layers, splits, shapes and the errors users see."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe
from tinycaffe.errors import FormatError, NetError, ShapeError

TINY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [2, 3, 8, 8] } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_shapes_inputs_outputs_and_params():
    net = tinycaffe.Net(TINY)
    assert net.inputs == ["data"]
    assert net.outputs == ["prob"]
    assert net.blobs["conv"].shape == (2, 4, 8, 8)
    assert net.blobs["pool"].shape == (2, 4, 4, 4)
    assert net.blobs["prob"].shape == (2, 5)
    assert [b.shape for b in net.params["conv"]] == [(4, 3, 3, 3), (4,)]
    assert list(net.params) == ["conv", "ip"]


def test_forward_matches_numpy_and_in_place_relu():
    net = tinycaffe.Net(TINY)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = net.forward(data=x)
    assert set(out) == {"prob"}
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, rtol=1e-5)
    # The in-place ReLU leaves the conv blob non-negative.
    assert net.blobs["conv"].data.min() >= 0
    # Recompute the head by hand from the pooled blob.
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    logits = net.blobs["pool"].data.reshape(2, -1) @ w.T + b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out["prob"], e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_partial_forward_start_end():
    net = tinycaffe.Net(TINY)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    full = net.forward(data=x)["prob"].copy()
    part = net.forward(data=x, end="pool")
    assert list(part) == ["pool"]
    pool = part["pool"].copy()
    net.blobs["pool"].data[...] = pool
    rest = net.forward(start="ip")
    np.testing.assert_array_equal(rest["prob"], full)
    with pytest.raises(NetError, match="no layer named 'nope'"):
        net.forward(end="nope")


def test_reshape_changes_batch_and_keeps_buffers():
    net = tinycaffe.Net(TINY)
    before = net.blobs["conv"].data
    net.forward()
    assert net.blobs["conv"].data is before  # same shape: buffer reused
    net.blobs["data"].reshape(5, 3, 8, 8)
    net.reshape()
    assert net.blobs["prob"].shape == (5, 5)
    # An input of a new shape reshapes the net on forward, as Caffe does.
    assert net.forward(data=np.zeros((2, 3, 8, 8), np.float32))["prob"].shape == (2, 5)


def test_phase_filtering_and_splits():
    text = """
    layer { name: "d" type: "Input" top: "data" top: "label"
            input_param { shape { dim: [4, 6] } shape { dim: [4] } } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
            include { phase: TEST } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    """
    test_net = tinycaffe.Net(text, phase="test")
    train_net = tinycaffe.Net(text, phase="train")
    assert "acc" in test_net.layer_names and "acc" not in train_net.layer_names
    # ip and label feed two layers in TEST: Caffe's split layers appear with Caffe's names.
    assert "ip_ip_0_split" in test_net.layer_names
    assert "label_d_1_split" in test_net.layer_names
    assert "ip_ip_0_split_1" in test_net.blobs
    assert "ip_ip_0_split" not in train_net.layer_names
    assert test_net.outputs == ["acc", "loss"]
    test_net.blobs["label"].data[...] = [0, 1, 2, 0]
    out = test_net.forward()
    assert 0.0 <= float(out["acc"]) <= 1.0
    assert test_net.loss == pytest.approx(float(out["loss"]))


@pytest.mark.parametrize(
    "text, error, pattern",
    [
        ('layer { name: "x" type: "Bogus" top: "x" }', NetError, r"unknown layer type 'Bogus'.*known types: .*Convolution"),
        ('layer { name: "r" type: "ReLU" bottom: "missing" top: "r" }', NetError, "unknown bottom blob 'missing'"),
        ('layer { name: "a" type: "ReLU" bottom: "b" top: "a" }\n'
         'layer { name: "b" type: "ReLU" bottom: "a" top: "b" }', NetError, "cycle"),
        ('layer { name: "d" type: "Input" top: "d" input_param { shape { dim: [1, 3, 4, 4] } } }\n'
         'layer { name: "c" type: "Convolution" bottom: "d" top: "c" convolution_param { num_output: 2 kernel_size: 7 } }',
         ShapeError, r"layer 'c'.*does not fit input 4x4"),
        ('layer { name: "d" type: "Input" top: "d" input_param { shape { dim: [1, 3, 4, 4] } } }\n'
         'layer { name: "c" type: "Convolution" bottom: "d" top: "c" convolution_param { num_output: 2 kernel_size: 1 group: 2 } }',
         ShapeError, r"layer 'c'.*not divisible by group 2"),
        ('layer { name: "d" type: "Input" top: "d" input_param { shape { dim: [1, 3] } } }\n'
         'layer { name: "d" type: "ReLU" bottom: "d" top: "d" }', NetError, "two layers are named 'd'"),
        ('layer { name: "d" type: "Input" top: "d" input_param { shape { dim: [1, 3] } } }\n'
         'layer { name: "r" type: "ReLU" bottom: "d" bottom: "d" top: "r" }', NetError, "takes exactly 1 bottom"),
    ],
)
def test_bad_nets_give_clear_errors(text, error, pattern):
    with pytest.raises(error, match=pattern):
        tinycaffe.Net(text)


def test_missing_and_malformed_prototxt(tmp_path):
    with pytest.raises(FormatError, match="no such model file"):
        tinycaffe.Net(str(tmp_path / "nope.prototxt"))
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n  bogus_field: 3\n}\n')
    with pytest.raises(FormatError, match=r"bad\.prototxt:5:"):
        tinycaffe.Net(str(bad))


def test_caffemodel_round_trip(tmp_path):
    net = tinycaffe.Net(TINY)
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    expected = net.forward(data=x)["prob"].copy()
    path = tmp_path / "tiny.caffemodel"
    net.save(path)
    fresh = tinycaffe.Net(TINY, seed=123)  # different filler values
    assert not np.array_equal(fresh.params["conv"][0].data, net.params["conv"][0].data)
    fresh.copy_from(path)
    np.testing.assert_array_equal(fresh.forward(data=x)["prob"], expected)
    again = tinycaffe.Net(TINY, weights=str(path))
    np.testing.assert_array_equal(again.forward(data=x)["prob"], expected)


def test_weight_shape_mismatch_names_layer_blob_and_shapes(tmp_path):
    net = tinycaffe.Net(TINY)
    path = tmp_path / "tiny.caffemodel"
    net.save(path)
    wider = TINY.replace("num_output: 4", "num_output: 6")
    with pytest.raises(ShapeError, match=r"layer 'conv' blob 0: the file has shape \(4, 3, 3, 3\), the net expects \(6, 3, 3, 3\)"):
        tinycaffe.Net(wider, weights=str(path))


@pytest.mark.parametrize("phase", ["test", "TEST", tinycaffe.TEST, 1])
def test_pycaffe_phase_spellings(phase):
    assert tinycaffe.Net(TINY, phase=phase).phase == "test"


def test_unknown_phase():
    with pytest.raises(NetError, match="unknown phase 'deploy'"):
        tinycaffe.Net(TINY, phase="deploy")


def test_in_place_only_where_the_layer_allows_it():
    text = ('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: [1, 2, 4, 4] } } }\n'
            'layer { name: "c" type: "Convolution" bottom: "x" top: "x" convolution_param { num_output: 2 kernel_size: 1 } }')
    with pytest.raises(NetError, match="layer 'c' \\(type Convolution\\) cannot compute in place"):
        tinycaffe.Net(text)


def _count_fills(monkeypatch) -> list[str]:
    """Record which blobs a filler runs for (the ``where`` text names layer and blob)."""
    import tinycaffe.fillers

    calls: list[str] = []
    real = tinycaffe.fillers.fill

    def counting(shape, param, rng, where=""):
        calls.append(where)
        return real(shape, param, rng, where)

    monkeypatch.setattr(tinycaffe.fillers, "fill", counting)
    return calls


def test_weights_given_skip_the_fillers_of_the_layers_they_cover(tmp_path, monkeypatch):
    from tinycaffe.proto.caffemodel import write_caffemodel

    source = tinycaffe.Net(TINY, seed=1)
    path = tmp_path / "tiny.caffemodel"
    source.save(path)
    only_conv = tmp_path / "conv_only.caffemodel"
    write_caffemodel(only_conv, source.param, {"conv": [b.data for b in source.params["conv"]]})
    calls = _count_fills(monkeypatch)
    tinycaffe.Net(TINY)
    assert calls == ["layer 'conv' weight", "layer 'conv' bias", "layer 'ip' weight", "layer 'ip' bias"]
    calls.clear()
    net = tinycaffe.Net(TINY, weights=str(path))
    assert calls == []
    np.testing.assert_array_equal(net.params["ip"][0].data, source.params["ip"][0].data)
    calls.clear()
    partly = tinycaffe.Net(TINY, weights=str(only_conv))
    assert calls == ["layer 'ip' weight", "layer 'ip' bias"]  # the layer the file lacks is filled as usual
    np.testing.assert_array_equal(partly.params["conv"][0].data, source.params["conv"][0].data)
    assert partly.params["ip"][0].data.any()


def test_every_weights_reader_gives_the_same_blobs(tmp_path):
    """Span reader (packed floats), general reader (doubles), HDF5, and a map of arrays."""
    from tinycaffe.proto import caffe_pb2

    source = tinycaffe.Net(TINY, seed=2)
    packed = tmp_path / "packed.caffemodel"
    source.save(packed)
    doubles = caffe_pb2.NetParameter()
    doubles.CopyFrom(source.param)
    for lp in doubles.layer:
        for blob in source.params.get(lp.name, []):
            bp = lp.blobs.add()
            bp.shape.dim.extend(blob.shape)
            bp.double_data.extend(blob.data.astype(np.float64).ravel().tolist())
    as_doubles = tmp_path / "doubles.caffemodel"
    as_doubles.write_bytes(doubles.SerializeToString())
    given = {name: [b.data.copy() for b in blobs] for name, blobs in source.params.items()}
    nets = [tinycaffe.Net(TINY, weights=str(packed)), tinycaffe.Net(TINY, weights=str(as_doubles)),
            tinycaffe.Net(TINY, weights=given)]
    pytest.importorskip("h5py")
    h5 = tmp_path / "tiny.caffemodel.h5"
    source.save_hdf5(str(h5))
    nets.append(tinycaffe.Net(TINY, weights=str(h5)))
    for net in nets:
        for name, blobs in source.params.items():
            for a, b in zip(net.params[name], blobs):
                np.testing.assert_array_equal(a.data, b.data)
    # A caller's arrays are copied: training the net must not change them.
    nets[2].params["conv"][0].data[...] = 0
    assert given["conv"][0].any()


def test_truncated_caffemodel_names_the_file(tmp_path):
    path = tmp_path / "tiny.caffemodel"
    tinycaffe.Net(TINY).save(path)
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(FormatError, match="cut.caffemodel: malformed caffemodel"):
        tinycaffe.Net(TINY, weights=str(cut))
    with pytest.raises(FormatError, match="nope.caffemodel: no such weights file"):
        tinycaffe.Net(TINY, weights=str(tmp_path / "nope.caffemodel"))


def test_loading_weights_holds_them_in_memory_once(tmp_path):
    """Net(model, weights) allocates the parameters once: no parsed copy, no filled copy."""
    import tracemalloc

    text = """
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 2000] } } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            inner_product_param { num_output: 1000 weight_filler { type: "gaussian" std: 0.1 } } }
    """
    path = tmp_path / "big.caffemodel"
    tinycaffe.Net(text).save(path)
    weight_bytes = 1000 * 2000 * 4
    tracemalloc.start()
    try:
        net = tinycaffe.Net(text, weights=str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert net.params["ip"][0].data.any()
    assert peak < 1.25 * weight_bytes, f"peak {peak / 1e6:.1f} MB for {weight_bytes / 1e6:.1f} MB of weights"
    # copy_from into a built net writes in place; the general reader (HDF5, doubles...)
    # holds a second copy, which shows the measurement sees one.
    from tinycaffe.net.weights import copy_weights
    from tinycaffe.proto.caffemodel import load_weights

    built = tinycaffe.Net(text)
    peaks = []
    for load in (lambda: built.copy_from(str(path)), lambda: copy_weights(built, load_weights(path))):
        tracemalloc.start()
        try:
            load()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(built.params["ip"][0].data, net.params["ip"][0].data)
    assert peaks[0] < 0.1 * weight_bytes < weight_bytes <= peaks[1], peaks


@pytest.mark.parametrize("step", ["setup", "reshape"])
def test_a_foreign_error_while_setting_up_names_the_layer_step_and_shapes(monkeypatch, step):
    # Layer.set_up runs the life cycle for the Net: a bug inside it must still say where.
    from tinycaffe.layers.inner_product import InnerProduct

    def broken(self, bottoms, tops):
        raise ValueError("boom")

    monkeypatch.setattr(InnerProduct, step, broken)
    with pytest.raises(NetError, match=rf"layer 'ip' \(type InnerProduct\) failed in {step} with bottoms .*ValueError: boom"):
        tinycaffe.Net(TINY)


def test_set_up_checks_counts_before_setup():
    from tests.layers.util import layer_param
    from tinycaffe.blob import Blob
    from tinycaffe.layers import create_layer

    layer = create_layer(layer_param('name: "r" type: "ReLU"'))
    with pytest.raises(NetError, match=r"layer 'r' \(type ReLU\) takes exactly 1 bottom blob\(s\), got 2"):
        layer.set_up([Blob("a"), Blob("b")], [Blob("t")])


def test_layers_get_the_nets_rng_and_the_given_bottom_names():
    # A Split layer renames the bottoms of conv's two consumers; the layers keep the prototxt's names.
    text = TINY.replace('layer { name: "prob"', 'layer { name: "ip2" type: "InnerProduct" bottom: "pool" top: "ip2" '
                        'inner_product_param { num_output: 2 } }\nlayer { name: "prob"')
    net = tinycaffe.Net(text, seed=3)
    ip = net.layers[net.layer_names.index("ip")]
    assert ip.rng is net.rng
    assert ip.bottom_names == ["pool"] and net.bottom_names["ip"] != ["pool"]
