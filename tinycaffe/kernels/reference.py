"""Reference kernels: the specification the fast kernels are tested against.

Plain NumPy, written for obviousness rather than speed: explicit Python loops
over output positions (and, where Caffe's scan order matters, over window
positions), vectorised only across whole (N, C) planes.  Used by tests only.
Works in the dtype it is given, so tests can run it in float64.
"""
from __future__ import annotations

import numpy as np

from .sizes import conv_out_size, pair, pool_out_size

FLT_MAX = float(np.finfo(np.float32).max)  # Caffe starts MAX pooling at -FLT_MAX


def _padded(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def conv_forward(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1) -> np.ndarray:
    """y[n, m, oh, ow] = b[m] + sum over the group's channels and the (dilated)
    kernel of w * x, x zero-padded: Caffe's cross-correlation."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(pad), pair(dilation)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    mg = m // group
    oh_n = conv_out_size(h, kh, sh, ph, dh)
    ow_n = conv_out_size(wd, kw, sw, pw, dw)
    xp = _padded(x, ph, pw)
    y = np.zeros((n, m, oh_n, ow_n), dtype=x.dtype)
    for i in range(n):
        for g in range(group):
            wg = w[g * mg:(g + 1) * mg]
            for oh in range(oh_n):
                for ow in range(ow_n):
                    h0, w0 = oh * sh, ow * sw
                    patch = xp[i, g * cg:(g + 1) * cg,
                               h0:h0 + dh * (kh - 1) + 1:dh, w0:w0 + dw * (kw - 1) + 1:dw]
                    y[i, g * mg:(g + 1) * mg, oh, ow] = np.tensordot(wg, patch, axes=3)
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1,
                  need_dx=True):
    """(dx or None, dw, db) of conv_forward, by the same loops run backwards."""
    (sh, sw), (ph, pw), (dh, dw_) = pair(stride), pair(pad), pair(dilation)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    mg = m // group
    xp = _padded(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(n):
        for g in range(group):
            cs, ms = slice(g * cg, (g + 1) * cg), slice(g * mg, (g + 1) * mg)
            for oh in range(dy.shape[2]):
                for ow in range(dy.shape[3]):
                    win = (i, cs, slice(oh * sh, oh * sh + dh * (kh - 1) + 1, dh),
                           slice(ow * sw, ow * sw + dw_ * (kw - 1) + 1, dw_))
                    g_out = dy[i, ms, oh, ow]
                    dw[ms] += np.multiply.outer(g_out, xp[win])
                    dxp[win] += np.tensordot(g_out, w[ms], axes=1)
    db = dy.sum(axis=(0, 2, 3))
    dx = dxp[:, :, ph:ph + h, pw:pw + wd] if need_dx else None
    return dx, dw, db


def _pool_windows(h, w, kernel, stride, pad):
    """Yield (oh, ow, hstart, hend, wstart, wend, pool_size) in Caffe's terms."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(pad)
    oh_n, ow_n = pool_out_size(h, kh, sh, ph), pool_out_size(w, kw, sw, pw)
    for oh in range(oh_n):
        for ow in range(ow_n):
            hs, ws = oh * sh - ph, ow * sw - pw
            # AVE divisor uses the window clipped to the padded input only.
            size = (min(hs + kh, h + ph) - hs) * (min(ws + kw, w + pw) - ws)
            yield oh, ow, max(hs, 0), min(hs + kh, h), max(ws, 0), min(ws + kw, w), size


def pool_forward(x, method, kernel, stride, pad) -> np.ndarray:
    """Caffe MAX / AVE pooling with its ceil-rounded output size and clipping."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(pad)
    y = np.zeros((n, c, pool_out_size(h, kh, sh, ph), pool_out_size(w, kw, sw, pw)), x.dtype)
    for oh, ow, h0, h1, w0, w1, size in _pool_windows(h, w, kernel, stride, pad):
        if method == "max":
            best = np.full((n, c), -FLT_MAX, dtype=x.dtype)
            for hh in range(h0, h1):  # Caffe's scan order, strict '>'
                for ww in range(w0, w1):
                    v = x[:, :, hh, ww]
                    best = np.where(v > best, v, best)
            y[:, :, oh, ow] = best
        else:
            total = np.zeros((n, c), dtype=x.dtype)
            for hh in range(h0, h1):
                for ww in range(w0, w1):
                    total = total + x[:, :, hh, ww]
            with np.errstate(divide="ignore", invalid="ignore"):  # size 0: Caffe gives nan too
                y[:, :, oh, ow] = total / x.dtype.type(size)
    return y


def pool_backward(x, y, dy, method, kernel, stride, pad) -> np.ndarray:
    """dx of pool_forward.  MAX: each dy goes to the window's first maximum in
    Caffe's scan order (an empty/all -inf window passes nothing, as Caffe's GPU
    code does).  AVE: dy / pool_size spread over the clipped window."""
    n, c, h, w = x.shape
    dx = np.zeros_like(x)
    planes = np.arange(n * c)
    for oh, ow, h0, h1, w0, w1, size in _pool_windows(h, w, kernel, stride, pad):
        g = dy[:, :, oh, ow]
        if method == "max":
            best = np.full((n, c), -FLT_MAX, dtype=x.dtype)
            arg = np.full((n, c), -1, dtype=np.int64)
            for hh in range(h0, h1):
                for ww in range(w0, w1):
                    v = x[:, :, hh, ww]
                    better = v > best
                    best = np.where(better, v, best)
                    arg = np.where(better, hh * w + ww, arg)
            hit = arg.reshape(-1) >= 0
            flat = dx.reshape(n * c, h * w)
            flat[planes[hit], arg.reshape(-1)[hit]] += g.reshape(-1)[hit]
        else:
            dx[:, :, h0:h1, w0:w1] += (g / x.dtype.type(size))[:, :, None, None]
    return dx


def pool_max_mask(x, kernel, stride, pad) -> np.ndarray:
    """Caffe's MAX pooling mask: per window, the flat index h*W + w (in its
    plane) of the first element in scan order that beats the running maximum
    started at -FLT_MAX; -1 when none does (empty, all -inf or all NaN)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(pad)
    mask = np.full((n, c, pool_out_size(h, kh, sh, ph), pool_out_size(w, kw, sw, pw)), -1, np.int32)
    for oh, ow, h0, h1, w0, w1, _ in _pool_windows(h, w, kernel, stride, pad):
        best = np.full((n, c), -FLT_MAX, dtype=x.dtype)
        for hh in range(h0, h1):
            for ww in range(w0, w1):
                v = x[:, :, hh, ww]
                better = v > best
                best = np.where(better, v, best)
                mask[:, :, oh, ow] = np.where(better, hh * w + ww, mask[:, :, oh, ow])
    return mask


def _across_scale(x, local_size, alpha, k):
    n, c, h, w = x.shape
    scale = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - (local_size - 1) // 2), min(c, ch + local_size // 2 + 1)
        scale[:, ch] = k + (alpha / local_size) * (x[:, lo:hi] ** 2).sum(axis=1)
    return scale


def _within_scale(x, local_size, alpha):
    pad = (local_size - 1) // 2
    return 1 + alpha * pool_forward(x * x, "ave", local_size, 1, pad)


def lrn_forward(x, local_size, alpha, beta, k, region) -> np.ndarray:
    """Caffe LRN.  across: scale = k + alpha/n * sum of x^2 over n neighbouring
    channels; within: scale = 1 + alpha * AVE-pool(x^2) (k unused); y = x * scale^-beta."""
    if region == "across":
        scale = _across_scale(x, local_size, alpha, k)
    else:
        scale = _within_scale(x, local_size, alpha)
    return x * scale ** -beta


def lrn_backward(x, y, dy, local_size, alpha, beta, k, region) -> np.ndarray:
    """dx of lrn_forward: dy * scale^-beta - 2*alpha*beta * x * S^T(dy * y / scale),
    where S^T is the adjoint of the neighbourhood sum (/n across, AVE-pool within)."""
    if region == "across":
        scale = _across_scale(x, local_size, alpha, k)
        ratio_src = dy * y / scale
        c = x.shape[1]
        acc = np.zeros_like(x)
        for ch in range(c):  # output channel ch read inputs lo..hi-1: send its ratio back
            lo, hi = max(0, ch - (local_size - 1) // 2), min(c, ch + local_size // 2 + 1)
            acc[:, lo:hi] += ratio_src[:, ch:ch + 1]
        acc *= alpha / local_size
    else:
        scale = _within_scale(x, local_size, alpha)
        ratio_src = dy * y / scale
        pad = (local_size - 1) // 2
        acc = alpha * pool_backward(x, None, ratio_src, "ave", local_size, 1, pad)
    return dy * scale ** -beta - 2 * beta * x * acc
