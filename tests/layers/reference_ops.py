"""Plain NumPy references for the layer tests: written for clarity, not speed.

Each function computes in float64 what the Caffe layer of the same name
computes, with explicit loops where the indexing is the point (Scale, PReLU,
ArgMax, Eltwise MAX...). Also: ``random_array``, the value source the
property tests use (hypothesis draws the seed, the shape and the scale).
"""
from __future__ import annotations

import math

import numpy as np


def random_array(seed: int, shape, scale: float = 1.0, low: float | None = None) -> np.ndarray:
    """float32 normal values times ``scale`` (or uniform in [low, low + scale) when ``low`` is given)."""
    rng = np.random.default_rng(seed)
    if low is None:
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    return (low + rng.random(shape) * scale).astype(np.float32)


def outer_dim_inner(shape, axis: int, k: int):
    """(prod(shape[:axis]), prod(shape[axis:axis+k]), prod(shape[axis+k:]))."""
    return math.prod(shape[:axis]), math.prod(shape[axis:axis + k]), math.prod(shape[axis + k:])


# -- elementwise ------------------------------------------------------------------
def sigmoid(x):
    x = np.asarray(x, np.float64)
    return 1.0 / (1.0 + np.exp(-x))


def bnll(x):
    # log(1 + e^x), computed without overflow
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def elu(x, alpha):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, alpha * (np.exp(x) - 1.0))


def exp_layer(x, base, scale, shift):
    x = np.asarray(x, np.float64)
    if base == -1:
        return np.exp(shift + scale * x)
    return np.power(float(base), shift + scale * x)


def log_layer(x, base, scale, shift):
    v = np.log(shift + scale * np.asarray(x, np.float64))
    return v if base == -1 else v / math.log(base)


def power_layer(x, power, scale, shift):
    return np.power(shift + scale * np.asarray(x, np.float64), power)


def prelu(x, slope, channel_shared):
    """y[n, c, ...] = x if x > 0 else a_c * x, looping over channels."""
    x = np.asarray(x, np.float64)
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        a = float(np.asarray(slope).reshape(-1)[0 if channel_shared else c])
        xc = x[:, c]
        y[:, c] = np.where(xc > 0, xc, a * xc)
    return y


# -- shapes -------------------------------------------------------------------------
def flatten_shape(shape, axis, end_axis):
    n = len(shape)
    a = axis % n
    e = end_axis % n
    merged = 1
    for d in shape[a:e + 1]:
        merged *= d
    return tuple(shape[:a]) + (merged,) + tuple(shape[e + 1:])


def reshape_shape(shape, dims, axis=0, num_axes=-1):
    """Caffe's Reshape rule, spelled out: copy 0s, infer one -1."""
    n = len(shape)
    start = axis if axis >= 0 else n + axis + 1
    end = n if num_axes == -1 else start + num_axes
    new = list(dims)
    for i, d in enumerate(new):
        if d == 0:
            new[i] = shape[start + i]
    out = list(shape[:start]) + new + list(shape[end:])
    if -1 in out:
        known = 1
        for d in out:
            if d != -1:
                known *= d
        out[out.index(-1)] = math.prod(shape) // known
    return tuple(out)


# -- combining ----------------------------------------------------------------------
def eltwise(op, xs, coeffs=None):
    xs = [np.asarray(x, np.float64) for x in xs]
    if op == "PROD":
        out = np.ones_like(xs[0])
        for x in xs:
            out = out * x
        return out
    if op == "SUM":
        coeffs = coeffs or [1.0] * len(xs)
        return sum(c * x for c, x in zip(coeffs, xs))
    # MAX, with Caffe's tie rule: bottom 1 beats bottom 0 on equality, later ones must be greater.
    flat = [x.reshape(-1) for x in xs]
    out = np.empty_like(flat[0])
    winner = np.empty(out.shape, dtype=int)
    for k in range(out.size):
        best, who = (flat[0][k], 0) if flat[0][k] > flat[1][k] else (flat[1][k], 1)
        for i in range(2, len(flat)):
            if flat[i][k] > best:
                best, who = flat[i][k], i
        out[k], winner[k] = best, who
    return out.reshape(xs[0].shape), winner.reshape(xs[0].shape)


# -- normalisation ------------------------------------------------------------------
def batch_norm_train(x, eps, fraction, stats):
    """Batch statistics forward; returns (y, new_stats) with Caffe's running-sum update."""
    x = np.asarray(x, np.float64)
    c = x.shape[1] if x.ndim > 1 else 1
    x3 = x.reshape(x.shape[0], c, -1)
    y = np.empty_like(x3)
    mean_sum, var_sum, weight = (np.array(s, np.float64) for s in stats)
    m = x3.shape[0] * x3.shape[2]
    new_mean, new_var = np.empty(c), np.empty(c)
    for ch in range(c):
        values = x3[:, ch, :]
        mu = values.mean()
        var = ((values - mu) ** 2).mean()
        y[:, ch, :] = (values - mu) / math.sqrt(var + eps)
        new_mean[ch] = mean_sum[ch] * fraction + mu
        new_var[ch] = var_sum[ch] * fraction + var * (m / (m - 1) if m > 1 else 1.0)
    new_weight = weight * fraction + 1.0
    return y.reshape(x.shape), (new_mean, new_var, new_weight)


def batch_norm_global(x, eps, stats):
    x = np.asarray(x, np.float64)
    mean_sum, var_sum, weight = (np.array(s, np.float64) for s in stats)
    f = 0.0 if weight[0] == 0 else 1.0 / weight[0]
    c = x.shape[1] if x.ndim > 1 else 1
    shape = (1, c) + (1,) * (x.ndim - 2) if x.ndim > 1 else (1,)
    return (x - (mean_sum * f).reshape(shape)) / np.sqrt((var_sum * f).reshape(shape) + eps)


def scale_bias(x, axis, scale=None, bias=None):
    """x * scale + bias with the operand aligned to x's axes axis..axis+k, by explicit loops."""
    x = np.asarray(x, np.float64)
    operand = scale if scale is not None else bias
    k = np.ndim(operand)
    if k == 0:
        axis = 0
    outer, dim, inner = outer_dim_inner(x.shape, axis, k)
    x3 = x.reshape(outer, dim, inner)
    s = np.ones(dim) if scale is None else np.asarray(scale, np.float64).reshape(dim)
    b = np.zeros(dim) if bias is None else np.asarray(bias, np.float64).reshape(dim)
    y = np.empty_like(x3)
    for o in range(outer):
        for d in range(dim):
            y[o, d, :] = x3[o, d, :] * s[d] + b[d]
    return y.reshape(x.shape)


# -- selection / rearrangement ----------------------------------------------------------
def argmax(x, top_k, out_max_val, axis=None):
    """Caffe's ArgMax by sorting (value, index) pairs in descending order, item by item."""
    x = np.asarray(x, np.float64)
    if axis is None:
        n = x.shape[0]
        rows = x.reshape(n, -1)
        out_shape = [1] * max(x.ndim, 3)
        out_shape[0], out_shape[1], out_shape[2] = n, 2 if out_max_val else 1, top_k
        out = np.zeros((n, 2 if out_max_val else 1, top_k))
        for i in range(n):
            ranked = sorted(((v, j) for j, v in enumerate(rows[i])), reverse=True)[:top_k]
            for j, (v, idx) in enumerate(ranked):
                out[i, 0, j] = idx
                if out_max_val:
                    out[i, 1, j] = v
        return out.reshape(out_shape)
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    out = np.zeros((flat.shape[0], top_k))
    for i in range(flat.shape[0]):
        ranked = sorted(((v, j) for j, v in enumerate(flat[i])), reverse=True)[:top_k]
        for j, (v, idx) in enumerate(ranked):
            out[i, j] = v if out_max_val else idx
    return np.moveaxis(out.reshape(moved.shape[:-1] + (top_k,)), -1, axis)


def crop(x, ref_shape, axis, offsets):
    x = np.asarray(x, np.float64)
    index = []
    for i in range(x.ndim):
        if i < axis:
            index.append(slice(None))
        else:
            off = 0 if not offsets else offsets[0] if len(offsets) == 1 else offsets[i - axis]
            index.append(slice(off, off + ref_shape[i]))
    return x[tuple(index)]


def tile(x, axis, tiles):
    return np.concatenate([np.asarray(x, np.float64)] * tiles, axis=axis)


def reduction(x, op, axis, coeff):
    x = np.asarray(x, np.float64)
    rows = x.reshape(math.prod(x.shape[:axis]), -1)
    out = np.empty(rows.shape[0])
    for i, r in enumerate(rows):
        if op == "SUM":
            out[i] = r.sum()
        elif op == "ASUM":
            out[i] = np.abs(r).sum()
        elif op == "SUMSQ":
            out[i] = (r * r).sum()
        else:
            out[i] = r.mean()
    return (out * coeff).reshape(x.shape[:axis])


# -- losses ---------------------------------------------------------------------------
def euclidean_loss(a, b):
    d = np.asarray(a, np.float64).reshape(-1) - np.asarray(b, np.float64).reshape(-1)
    return float(d @ d) / 2.0 / np.shape(a)[0]


def sigmoid_cross_entropy(x, t, normalizer, ignore_label=None):
    """-sum[t log p + (1 - t) log(1 - p)] / normalizer over the values not ignored."""
    x = np.asarray(x, np.float64).reshape(-1)
    t = np.asarray(t, np.float64).reshape(-1)
    total = 0.0
    for xi, ti in zip(x, t):
        if ignore_label is not None and int(ti) == ignore_label:
            continue
        p = 1.0 / (1.0 + math.exp(-xi))
        total -= ti * math.log(p) + (1.0 - ti) * math.log(1.0 - p)
    return total / normalizer
