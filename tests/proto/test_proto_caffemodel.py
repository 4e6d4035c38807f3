"""Binary caffemodel weights: real files, round trips, and broken input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.caffemodel import (
    StoredBlob,
    load_weights,
    parse_weights,
    read_caffemodel,
    read_weights,
    write_caffemodel,
)
from tinycaffe.proto.wire_format import encode_varint, len_header

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "data" / "caffe-reference"

QUICK = {
    "conv1": [(32, 3, 5, 5), (32,)],
    "conv2": [(32, 32, 5, 5), (32,)],
    "conv3": [(64, 32, 5, 5), (64,)],
    "ip1": [(64, 1024), (64,)],
    "ip2": [(10, 64), (10,)],
}
FULL = {
    "conv1": [(32, 3, 5, 5), (32,)],
    "conv2": [(32, 32, 5, 5), (32,)],
    "conv3": [(64, 32, 5, 5), (64,)],
    "ip1": [(10, 1024), (10,)],
}
# folder -> (weights file, expected true shapes, stored as legacy 4-d?)
MODELS = {
    "BXuan694_Caffe__cifar10_quick_iter_4000": ("cifar10_quick_iter_4000.caffemodel", QUICK, False),
    "BXuan694_Caffe__cifar10_quick_iter_5000": ("cifar10_quick_iter_5000.caffemodel.h5", QUICK, False),
    "BXuan694_Caffe__cifar10_full_iter_60000": ("cifar10_full_iter_60000.caffemodel.h5", FULL, False),
    "ICT-CHASE_On-accelerator-training__cifar10_quick_iter_4000": ("cifar10_quick_iter_4000.caffemodel", QUICK, False),
    "ICT-CHASE_On-accelerator-training__cifar10_quick_iter_5000": ("cifar10_quick_iter_5000.caffemodel.h5", QUICK, False),
    "everpeace_caffe__cifar10_quick_iter_4000": ("cifar10_quick_iter_4000.caffemodel", QUICK, True),
    "everpeace_caffe__cifar10_quick_iter_5000": ("cifar10_quick_iter_5000.caffemodel", QUICK, True),
    "everpeace_caffe__cifar10_full_iter_70000": ("cifar10_full_iter_70000.caffemodel", FULL, True),
    "ikkiChung_Prediction-Example-With-Caffe__cifar10_quick_iter_5000": ("cifar10_quick_iter_5000.caffemodel", QUICK, True),
    "jwcom79_caffe__cifar10_full_iter_70000": ("cifar10_full_iter_70000.caffemodel.h5", FULL, False),
}


@pytest.fixture
def proto_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: {SHARED}")
    return SHARED


def slow_read(path: Path) -> dict[str, list[StoredBlob]]:
    """The obvious protobuf-based reader, to check the fast one against."""
    out: dict[str, list[StoredBlob]] = {}
    net = read_caffemodel(path)
    for layer in list(net.layers) + list(net.layer):
        blobs = []
        for b in layer.blobs:
            legacy = any(b.HasField(f) for f in ("num", "channels", "height", "width"))
            shape = (b.num, b.channels, b.height, b.width) if legacy else tuple(b.shape.dim)
            values = b.double_data if len(b.double_data) else b.data
            blobs.append(StoredBlob(np.asarray(values, dtype=np.float32).reshape(shape), legacy))
        if blobs:
            out[layer.name] = blobs
    return out


def assert_same(a: dict[str, list[StoredBlob]], b: dict[str, list[StoredBlob]]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert len(a[name]) == len(b[name]), name
        for x, y in zip(a[name], b[name]):
            assert x.legacy == y.legacy and x.data.shape == y.data.shape and x.data.dtype == np.float32
            assert x.data.tobytes() == y.data.tobytes(), name


@pytest.mark.parametrize("folder", sorted(MODELS))
def test_reference_models(folder: str, proto_shared: Path) -> None:
    filename, expected, legacy = MODELS[folder]
    path = REFERENCE / folder / filename
    weights = load_weights(path)
    assert list(weights) == list(expected)
    for name, shapes in expected.items():
        got = weights[name]
        assert [b.legacy for b in got] == [legacy] * len(shapes)
        want = [(1,) * (4 - len(s)) + s if legacy else s for s in shapes]
        assert [b.data.shape for b in got] == want, name
        for b in got:
            assert b.data.dtype == np.float32 and b.data.flags.c_contiguous and b.data.flags.writeable
            assert np.isfinite(b.data).all() and b.data.std() > 0
    if not filename.endswith(".h5"):
        assert_same(read_weights(path), slow_read(path))
    else:
        with pytest.raises(FormatError):
            read_weights(path)  # an HDF5 file is not protobuf


def test_cifar10_full_v1_legacy_shapes(proto_shared: Path) -> None:
    w = read_weights(REFERENCE / "everpeace_caffe__cifar10_full_iter_70000" / "cifar10_full_iter_70000.caffemodel")
    assert w["conv1"][0].data.shape == (32, 3, 5, 5)
    assert w["ip1"][0].data.shape == (1, 1, 10, 1024) and w["ip1"][0].legacy


# ---------------------------------------------------------------- synthetic files


def small_net_bytes() -> bytes:
    """A small model mixing current and V1 layers, legacy, double and 0-d blobs."""
    net = caffe_pb2.NetParameter(name="small")
    net.input.append("data")
    net.input_dim.extend([1, 2, 3, 3])
    conv = net.layer.add(name="conv", type="Convolution")
    conv.convolution_param.num_output = 2
    w = conv.blobs.add()
    w.shape.dim.extend([2, 2, 1, 1])
    w.data.extend([1.0, -2.0, 3.5, 0.25])
    b = conv.blobs.add()
    b.shape.dim.append(2)
    b.double_data.extend([0.5, 1e-3])
    net.layer.add(name="relu", type="ReLU")
    old = net.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    lw = old.blobs.add(num=1, channels=1, height=2, width=3)
    lw.data.extend([1, 2, 3, 4, 5, 6])
    scale = net.layer.add(name="scale", type="Scale")
    scale.blobs.add().data.append(7.0)  # 0-d: no shape at all, one value
    return net.SerializeToString()


def expected_small() -> dict[str, list[tuple[tuple[int, ...], list[float], bool]]]:
    return {
        "conv": [((2, 2, 1, 1), [1.0, -2.0, 3.5, 0.25], False), ((2,), [0.5, 1e-3], False)],
        "ip": [((1, 1, 2, 3), [1, 2, 3, 4, 5, 6], True)],
        "scale": [((), [7.0], False)],
    }


def test_small_model_all_encodings() -> None:
    got = parse_weights(small_net_bytes())
    want = expected_small()
    # The V1 layer is field 2, written before field 100 by protobuf.
    assert sorted(got) == sorted(want)
    for name, blobs in want.items():
        for stored, (shape, values, legacy) in zip(got[name], blobs):
            assert stored.data.shape == shape and stored.legacy == legacy
            np.testing.assert_array_equal(stored.data.ravel(), np.float32(values))


def _unpacked_blob(values: list[float], dims: list[int], double: bool) -> bytes:
    body = b""
    for v in values:
        body += bytes([8 << 3 | 1]) + struct.pack("<d", v) if double else bytes([5 << 3 | 5]) + struct.pack("<f", v)
    shape = b"".join(bytes([1 << 3]) + encode_varint(d) for d in dims)  # dims not packed either
    return body + len_header(7, len(shape)) + shape


def test_unpacked_values_and_dims() -> None:
    blobs = [_unpacked_blob([1.5, -2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], False), _unpacked_blob([0.1, 0.2], [2], True)]
    name = b"\x0a\x01L"
    layer = name + b"".join(len_header(7, len(b)) + b for b in blobs)
    data = len_header(100, len(layer)) + layer
    got = parse_weights(data)
    assert got["L"][0].data.tolist() == [[1.5, -2.0, 3.0], [4.0, 5.0, 6.0]]
    np.testing.assert_array_equal(got["L"][1].data, np.float32([0.1, 0.2]))
    # protobuf itself reads the same thing
    net = caffe_pb2.NetParameter.FromString(data)
    assert list(net.layer[0].blobs[0].shape.dim) == [2, 3] and len(net.layer[0].blobs[0].data) == 6


def test_value_count_mismatch_names_layer_and_blob(tmp_path: Path) -> None:
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="fc")
    layer.blobs.add().data.append(1.0)
    bad = layer.blobs.add()
    bad.shape.dim.extend([2, 3])
    bad.data.extend([1.0] * 5)
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(net.SerializeToString())
    with pytest.raises(FormatError, match=r"bad.caffemodel: layer 'fc' blob 1: 5 values for shape \(2, 3\)"):
        read_weights(path)


def test_empty_missing_and_non_model_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    for reader in (read_weights, read_caffemodel, load_weights):
        with pytest.raises(FormatError, match="empty.caffemodel"):
            reader(empty)
        with pytest.raises(FormatError, match="missing.caffemodel"):
            reader(tmp_path / "missing.caffemodel")
    text = tmp_path / "text.caffemodel"
    text.write_bytes(b'name: "not binary"\n')
    with pytest.raises(FormatError, match="text.caffemodel"):
        read_weights(text)
    header_only = caffe_pb2.NetParameter(name="n").SerializeToString()
    with pytest.raises(FormatError, match="no layers"):
        parse_weights(header_only, "x")


def test_every_truncation_is_caught_or_a_clean_prefix(tmp_path: Path) -> None:
    data = small_net_bytes()
    full = parse_weights(data)
    for n in range(len(data)):
        prefix = data[:n]
        try:
            net = caffe_pb2.NetParameter.FromString(prefix)
            protobuf_ok = bool(net.layer or net.layers)
        except Exception:  # noqa: BLE001 - protobuf's own error types vary
            protobuf_ok = False
        try:
            got = parse_weights(prefix, "t")
        except FormatError as exc:
            assert str(exc).startswith("t: "), exc
            assert not protobuf_ok, f"prefix {n}: protobuf reads it, we refused: {exc}"
            continue
        assert protobuf_ok, f"prefix {n} accepted but protobuf refuses it"
        for name, blobs in got.items():
            assert [b.data.tobytes() for b in blobs] == [b.data.tobytes() for b in full[name]]
    # And through a real file, the message names it and the offset.
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: len(data) - 3])
    with pytest.raises(FormatError, match=r"cut.caffemodel: malformed caffemodel at byte \d+"):
        read_weights(path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_format_error_only(data: bytes) -> None:
    try:
        parse_weights(data)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_model_raises_format_error_only(data: st.DataObject) -> None:
    buf = bytearray(small_net_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    try:
        parse_weights(bytes(buf))
    except FormatError:
        pass


# ---------------------------------------------------------------- writing

arrays = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(arrays, max_size=3), min_size=1, max_size=4))
def test_write_read_round_trip(tmp_path: Path, layers: list[list[np.ndarray]]) -> None:
    net = caffe_pb2.NetParameter(name="rt")
    weights = {}
    for i, blobs in enumerate(layers):
        layer = net.layer.add(name=f"l{i}", type="InnerProduct", bottom=["x"], top=[f"y{i}"])
        layer.inner_product_param.num_output = i + 1
        weights[f"l{i}"] = blobs
    net.layer.add(name="tail", type="ReLU")
    path = tmp_path / "rt.caffemodel"
    write_caffemodel(path, net, weights)

    got = read_weights(path)
    assert list(got) == [name for name, blobs in weights.items() if blobs]
    for name, blobs in got.items():
        assert [b.legacy for b in blobs] == [False] * len(blobs)
        assert [b.data.shape for b in blobs] == [a.shape for a in weights[name]]
        assert [b.data.tobytes() for b in blobs] == [a.tobytes() for a in weights[name]]

    # Protobuf reads the same file, layer fields intact.
    parsed = read_caffemodel(path)
    assert [l.name for l in parsed.layer] == [l.name for l in net.layer]
    for original, stored in zip(net.layer, parsed.layer):
        bare = caffe_pb2.LayerParameter()
        bare.CopyFrom(stored)
        bare.ClearField("blobs")
        assert bare == original
        for blob, array in zip(stored.blobs, weights.get(stored.name, [])):
            assert tuple(blob.shape.dim) == array.shape
            np.testing.assert_array_equal(np.float32(blob.data), array.ravel())


def test_write_upgrades_v1_and_rejects_unknown_layers(tmp_path: Path) -> None:
    net = caffe_pb2.NetParameter(input=["data"], input_dim=[1, 1, 2, 2])
    net.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT, bottom=["data"], top=["ip"])
    path = tmp_path / "v1.caffemodel"
    write_caffemodel(path, net, {"ip": [np.ones((3, 4), np.float32)]})
    parsed = read_caffemodel(path)
    assert [(l.name, l.type) for l in parsed.layer] == [("input", "Input"), ("ip", "InnerProduct")]
    assert not parsed.layers and not parsed.input
    assert read_weights(path)["ip"][0].data.shape == (3, 4)
    with pytest.raises(ValueError, match="nope"):
        write_caffemodel(path, net, {"nope": []})
    with pytest.raises(FormatError, match="cannot write"):
        write_caffemodel(tmp_path / "no" / "dir.caffemodel", net, {})


def test_write_converts_dtype_and_layout(tmp_path: Path) -> None:
    net = caffe_pb2.NetParameter()
    net.layer.add(name="a")
    strided = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2]
    write_caffemodel(tmp_path / "d.caffemodel", net, {"a": [strided]})
    got = read_weights(tmp_path / "d.caffemodel")["a"][0].data
    assert got.dtype == np.float32 and np.array_equal(got, strided)
