"""What Caffe's classification layers share: label layout and loss normalisation."""
from __future__ import annotations

import math

import numpy as np

from ..proto import caffe_pb2

_LOSS = caffe_pb2.LossParameter  # NormalizationMode values, as Caffe numbers them
FULL, VALID, BATCH_SIZE, NONE = _LOSS.FULL, _LOSS.VALID, _LOSS.BATCH_SIZE, _LOSS.NONE


def normalization_mode(loss_param) -> int:
    """The normalisation a LossParameter asks for (the legacy ``normalize`` flag included)."""
    if not loss_param.HasField("normalization") and loss_param.HasField("normalize"):
        return VALID if loss_param.normalize else BATCH_SIZE
    return int(loss_param.normalization)


def normalizer(mode: int, outer: int, inner: int, valid: int) -> float:
    """Caffe's get_normalizer, never below 1."""
    if mode == FULL:
        n = outer * inner
    elif mode == VALID:
        n = valid if valid >= 0 else outer * inner
    elif mode == BATCH_SIZE:
        n = outer
    else:
        n = 1
    return max(1.0, float(n))


def label_layout(layer, pred_shape: tuple[int, ...], label_shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """(outer, inner) counts around the class axis; the label must have outer*inner entries."""
    outer = math.prod(pred_shape[:axis])
    inner = math.prod(pred_shape[axis + 1:])
    if math.prod(label_shape) != outer * inner:
        layer.fail(
            f"the label blob has shape {label_shape} ({math.prod(label_shape)} values) but the "
            f"predictions {pred_shape} need {outer * inner} labels (N*H*W with class axis {axis})"
        )
    return outer, inner


def read_labels(layer, label_blob, outer: int, inner: int, classes: int, ignore_label: int | None):
    """(labels safe to index with, valid mask), both (outer, inner).

    Labels are truncated to integers as Caffe's static_cast does; ignored
    entries read as class 0 and are masked out; any other label outside
    [0, classes) is an error naming the layer.
    """
    xp = layer.xp
    labels = label_blob.data.reshape(outer, inner).astype(np.int64)
    if ignore_label is not None:
        valid = labels != ignore_label
    else:
        valid = xp.ones(labels.shape, dtype=bool)
    bad = valid & ((labels < 0) | (labels >= classes))
    if bool(bad.any()):
        layer.fail(f"label values must lie in [0, {classes}); found {int(labels[bad][0])}")
    return xp.where(valid, labels, 0), valid
