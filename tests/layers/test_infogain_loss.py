"""InfogainLoss: softmax, then -sum_l H[y, l] log p_l, normalised as loss_param says."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError
from tinycaffe.proto import caffe_pb2

from .gradcheck import check_gradient, forward_backward
from .reference_ops import random_array
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)
NORMS = {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3}


def infogain_reference(x, labels, H, axis=1, ignore_label=None, normalization="VALID"):
    """Loop over every position: softmax along ``axis``, then the H-weighted log loss."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)   # (..., C)
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    labels = np.asarray(labels).reshape(-1)
    total, valid = 0.0, 0
    for pos in range(flat.shape[0]):
        y = int(labels[pos])
        if ignore_label is not None and y == ignore_label:
            continue
        p = np.exp(flat[pos] - flat[pos].max())
        p /= p.sum()
        total -= sum(H[y, l] * np.log(max(p[l], 1e-20)) for l in range(c))
        valid += 1
    outer = int(np.prod(x.shape[:axis]))
    n = {"FULL": flat.shape[0], "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[normalization]
    return total / max(1, n)


def inputs(seed, shape, axis=1):
    x = random_array(seed, shape)
    rng = np.random.default_rng(seed)
    c = shape[axis]
    label_shape = shape[:axis] + shape[axis + 1:]
    labels = rng.integers(0, c, label_shape).astype(np.float32)
    H = rng.random((c, c)).astype(np.float32)
    return x, labels, H


def text(norm=None, ignore=None, axis=None, source=None):
    lp = []
    if norm is not None:
        lp.append(f"normalization: {norm}")
    if ignore is not None:
        lp.append(f"ignore_label: {ignore}")
    ip = []
    if axis is not None:
        ip.append(f"axis: {axis}")
    if source is not None:
        ip.append(f'source: "{source}"')
    return (f'type: "InfogainLoss" loss_param {{ {" ".join(lp)} }} '
            f'infogain_loss_param {{ {" ".join(ip)} }}')


shapes = st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 3))


@settings(max_examples=30, deadline=None)
@given(seeds, shapes, st.sampled_from(sorted(NORMS)), st.booleans())
def test_forward_matches_reference_with_h_as_bottom(seed, shape, norm, use_ignore):
    x, labels, H = inputs(seed, shape)
    ignore = 0 if use_ignore else None
    loss, prob = run_layer(text(norm, ignore), [x, labels, H], n_tops=2)
    np.testing.assert_allclose(loss, infogain_reference(x, labels, H, 1, ignore, norm), rtol=1e-4, atol=1e-6)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(prob, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_identity_h_is_softmax_log_loss():
    x, labels, _ = inputs(5, (4, 3))
    (loss,) = run_layer(text(), [x, labels, np.eye(3)])
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(4), labels.astype(int)])), rtol=1e-5)


def test_axis_parameter():
    x, labels, H = inputs(2, (2, 3, 4), axis=2)
    (loss,) = run_layer(text(axis=-1), [x, labels, H])
    np.testing.assert_allclose(loss, infogain_reference(x, labels, H, axis=2), rtol=1e-5)


def test_h_from_a_binaryproto_file(tmp_path):
    x, labels, H = inputs(7, (3, 4))
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([1, 1, 4, 4])
    blob.data.extend(H.reshape(-1).tolist())
    path = tmp_path / "H.binaryproto"
    path.write_bytes(blob.SerializeToString())
    (loss,) = run_layer(text(source=path), [x, labels])
    np.testing.assert_allclose(loss, infogain_reference(x, labels, H), rtol=1e-5)
    _, diffs, _, _ = forward_backward(text(source=path), [x, labels], propagate_down=[True, False])
    _, diffs3, _, _ = forward_backward(text(), [x, labels, H], propagate_down=[True, False, False])
    np.testing.assert_allclose(diffs[0], diffs3[0], rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seeds, st.tuples(st.integers(1, 3), st.integers(2, 3), st.integers(1, 2)),
       st.sampled_from(sorted(NORMS)), st.booleans())
def test_gradient(seed, shape, norm, use_ignore):
    x, labels, H = inputs(seed, shape)
    ignore = 1 if use_ignore else None
    check_gradient(text(norm, ignore), [x, labels, H], check_bottoms=[0], step=1e-2, threshold=1e-2)


def test_errors(tmp_path):
    x, labels, H = inputs(0, (2, 3))
    with pytest.raises(NetError, match="source"):
        make_layer(text(), [x, labels])
    with pytest.raises(NetError, match="missing.binaryproto"):
        make_layer(text(source=tmp_path / "missing.binaryproto"), [x, labels])
    with pytest.raises(ShapeError, match="3x3 = 9"):
        make_layer(text(), [x, labels, np.eye(2)])
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        run_layer(text(), [x, np.array([0.0, 5.0]), H])
