"""Weight fillers with Caffe's semantics (constant, uniform, gaussian, xavier, msra...)."""
from __future__ import annotations

import math

import numpy as np

from .errors import NetError
from .proto import caffe_pb2

_F = caffe_pb2.FillerParameter
_VARIANCE_NORM = {_F.FAN_IN: "fan_in", _F.FAN_OUT: "fan_out", _F.AVERAGE: "average"}


def _fan(shape: tuple[int, ...], norm: int) -> float:
    count = int(np.prod(shape)) if shape else 1
    # Caffe: fan_in = count / num, fan_out = count / channels (count for 1-axis blobs).
    fan_in = count / shape[0] if shape and shape[0] else count
    fan_out = count / shape[1] if len(shape) > 1 and shape[1] else count
    kind = _VARIANCE_NORM.get(norm, "fan_in")
    if kind == "fan_out":
        return fan_out
    if kind == "average":
        return (fan_in + fan_out) / 2.0
    return fan_in


def fill(shape: tuple[int, ...], param, rng: np.random.Generator, where: str = "") -> np.ndarray:
    """A float32 array of ``shape`` filled as FillerParameter ``param`` says."""
    kind = param.type or "constant"
    shape = tuple(int(d) for d in shape)
    if kind == "constant":
        return np.full(shape, param.value, dtype=np.float32)
    if kind == "uniform":
        return rng.uniform(param.min, param.max, size=shape).astype(np.float32)
    if kind == "gaussian":
        out = rng.normal(param.mean, param.std, size=shape).astype(np.float32)
        if param.sparse >= 0 and shape:
            # Keep each weight with probability sparse / num_outputs (Caffe's sparse gaussian).
            num_outputs = shape[0]
            keep = rng.random(shape) < (param.sparse / num_outputs)
            out *= keep
        return out
    if kind == "positive_unitball":
        out = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
        if shape:
            flat = out.reshape(shape[0], -1)
            flat /= flat.sum(axis=1, keepdims=True)
        return out
    if kind == "xavier":
        scale = math.sqrt(3.0 / _fan(shape, param.variance_norm))
        return rng.uniform(-scale, scale, size=shape).astype(np.float32)
    if kind == "msra":
        std = math.sqrt(2.0 / _fan(shape, param.variance_norm))
        return rng.normal(0.0, std, size=shape).astype(np.float32)
    if kind == "bilinear":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise NetError(f"{where}: bilinear filler needs a 4-axis blob with square kernels, got {shape}")
        k = shape[3]
        f = math.ceil(k / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        y, x = np.mgrid[0:k, 0:k]
        kernel = (1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))
        return np.broadcast_to(kernel, shape).astype(np.float32).copy()
    raise NetError(f"{where}: unknown filler type {kind!r}")
