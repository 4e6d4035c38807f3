"""What Caffe's classification layers share: label layout and loss normalisation."""
from __future__ import annotations

import math

FULL, VALID, BATCH_SIZE, NONE = 0, 1, 2, 3


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
