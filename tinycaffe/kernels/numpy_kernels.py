"""Vectorised kernels written once against ``xp`` (NumPy or CuPy).

No Python loop runs per element: convolution is im2col (one strided slice
copy per kernel offset) plus one batched matmul per group, pooling and LRN are
small loops over kernel offsets / channel offsets applied to whole tensors.
The same code serves NumPy (the fallback CPU path) and CuPy (the GPU path).
"""
from __future__ import annotations

import functools

import numpy as np

from ..backend import get_array_module
from . import threads
from .sizes import ave_pool_sizes, conv_out_size, pair, pool_out_size

FLT_MAX = float(np.finfo(np.float32).max)

# Upper bound on the im2col buffer; batches are cut into chunks that fit.
COL_BUDGET_CPU = 64 << 20
COL_BUDGET_GPU = 512 << 20


def _chunk(xp, n: int, per_image_bytes: int) -> int:
    budget = COL_BUDGET_CPU if xp is np else COL_BUDGET_GPU
    return max(1, min(n, budget // max(per_image_bytes, 1)))


def _matmul_into(xp, a, b, out) -> None:
    if xp is np:
        np.matmul(a, b, out=out)  # BLAS writes straight into the (strided) output view
    else:
        out[...] = xp.matmul(a, b)


def _pad(xp, x, ph: int, pw: int, hp: int, wp: int, value: float):
    """x placed at (ph, pw) inside an (hp, wp) canvas filled with ``value``."""
    n, c, h, w = x.shape
    out = xp.full((n, c, hp, wp), value, dtype=x.dtype)
    hh, ww = min(h, hp - ph), min(w, wp - pw)  # rows/cols no window reaches are dropped
    out[:, :, ph:ph + hh, pw:pw + ww] = x[:, :, :hh, :ww]
    return out


def _offset_view(xpad, i0: int, j0: int, sh: int, sw: int, oh: int, ow: int):
    """The (N, C, oh, ow) strided view of xpad seen by kernel offset (i0, j0)."""
    return xpad[:, :, i0:i0 + sh * (oh - 1) + 1:sh, j0:j0 + sw * (ow - 1) + 1:sw]


def _im2col(xp, x, kh, kw, stride, pad, dilation, oh, ow):
    """col (N, C*kh*kw, oh*ow) of x, rows ordered (c, i, j) like Caffe's."""
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    n, c, h, w = x.shape
    xpad = _pad(xp, x, ph, pw, h + 2 * ph, w + 2 * pw, 0.0)
    col = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, :, i, j] = _offset_view(xpad, i * dh, j * dw, sh, sw, oh, ow)
    return col.reshape(n, c * kh * kw, oh * ow)


def _col2im(xp, col, xshape, kh, kw, stride, pad, dilation, oh, ow):
    """Adjoint of _im2col: sum col entries back onto the input positions they copied."""
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    n, c, h, w = xshape
    dxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    col6 = col.reshape(n, c, kh, kw, oh, ow)
    for i in range(kh):  # one offset at a time: a strided view has no repeated cells
        for j in range(kw):
            _offset_view(dxpad, i * dh, j * dw, sh, sw, oh, ow)[...] += col6[:, :, i, j]
    return dxpad[:, :, ph:ph + h, pw:pw + w]


def _check_out(name, a, shape, dtype):
    if a is not None and (tuple(a.shape) != tuple(shape) or not a.flags.c_contiguous or a.dtype != dtype):
        raise ValueError(f"{name} must be a C-contiguous {tuple(shape)} {np.dtype(dtype).name} array, "
                         f"got {a.shape} {a.dtype}")


def _blas_gets_the_threads(fn):
    """On the CPU this module is the fallback without a thread pool (Numba missing
    or TINYCAFFE_KERNELS=numpy): its GEMMs get BLAS on the kernels' thread count
    for the call, while BLAS otherwise runs one thread (threads.py).  CuPy
    arrays pass straight through."""
    @functools.wraps(fn)
    def wrapper(x, *args, **kwargs):
        n = threads.get_num_threads() if get_array_module(x) is np else 1
        if n == 1:
            return fn(x, *args, **kwargs)
        with threads.blas_threads(n):
            return fn(x, *args, **kwargs)
    return wrapper


@_blas_gets_the_threads
def conv_forward(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1, out=None,
                 relu=False):
    """See tinycaffe.kernels.conv_forward."""
    xp = get_array_module(x)
    stride, pad, dilation = pair(stride), pair(pad), pair(dilation)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = conv_out_size(h, kh, stride[0], pad[0], dilation[0])
    ow = conv_out_size(wd, kw, stride[1], pad[1], dilation[1])
    _check_out("out", out, (n, m, oh, ow), x.dtype)
    y = out if out is not None else xp.empty((n, m, oh, ow), dtype=x.dtype)
    y3 = y.reshape(n, m, oh * ow)
    mg, kg = m // group, cg * kh * kw
    wg = w.reshape(group, mg, kg)
    step = _chunk(xp, n, c * kh * kw * oh * ow * x.itemsize)
    for n0 in range(0, n, step):
        col = _im2col(xp, x[n0:n0 + step], kh, kw, stride, pad, dilation, oh, ow)
        for g in range(group):
            _matmul_into(xp, wg[g], col[:, g * kg:(g + 1) * kg],
                         y3[n0:n0 + step, g * mg:(g + 1) * mg])
    if b is not None:
        y3 += b[:, None]
    if relu:
        xp.maximum(y, 0, out=y)  # NaN propagates, as in Caffe's ReLU
    return y


@_blas_gets_the_threads
def conv_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1,
                  need_dx=True, dx_out=None, dw_out=None, db_out=None):
    """See tinycaffe.kernels.conv_backward."""
    xp = get_array_module(x)
    stride, pad, dilation = pair(stride), pair(pad), pair(dilation)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    _check_out("dx_out", dx_out, x.shape, x.dtype)
    _check_out("dw_out", dw_out, w.shape, x.dtype)
    _check_out("db_out", db_out, (m,), x.dtype)
    mg, kg = m // group, cg * kh * kw
    wg = w.reshape(group, mg, kg)
    dy3 = dy.reshape(n, m, oh * ow)
    dwg = xp.zeros((group, mg, kg), dtype=w.dtype)
    dx = None
    if need_dx:
        dx = dx_out if dx_out is not None else xp.empty_like(x)
    step = _chunk(xp, n, c * kh * kw * oh * ow * x.itemsize)
    for n0 in range(0, n, step):
        xs = x[n0:n0 + step]
        col = _im2col(xp, xs, kh, kw, stride, pad, dilation, oh, ow)
        dcol = xp.empty_like(col) if need_dx else None
        for g in range(group):
            dyg = dy3[n0:n0 + step, g * mg:(g + 1) * mg]
            colg = col[:, g * kg:(g + 1) * kg]
            dwg[g] += xp.matmul(dyg, colg.transpose(0, 2, 1)).sum(axis=0)
            if need_dx:
                _matmul_into(xp, wg[g].T, dyg, dcol[:, g * kg:(g + 1) * kg])
        if need_dx:
            dx[n0:n0 + step] = _col2im(xp, dcol, xs.shape, kh, kw, stride, pad, dilation, oh, ow)
    db = dy.sum(axis=(0, 2, 3))
    dw = dwg.reshape(w.shape)
    if dw_out is not None:
        dw_out += dw
        dw = dw_out
    if db_out is not None:
        db_out += db
        db = db_out
    return dx, dw, db


@_blas_gets_the_threads
def conv_transpose(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1, out_hw=None,
                   out=None):
    """See tinycaffe.kernels.conv_transpose."""
    xp = get_array_module(x)
    stride, pad, dilation = pair(stride), pair(pad), pair(dilation)
    n, m, h, wd = x.shape
    _, cg, kh, kw = w.shape
    c = cg * group
    mg, kg = m // group, cg * kh * kw
    wg = w.reshape(group, mg, kg)
    x3 = x.reshape(n, m, h * wd)
    dcol = xp.empty((n, c * kh * kw, h * wd), dtype=x.dtype)
    for g in range(group):
        _matmul_into(xp, wg[g].T, x3[:, g * mg:(g + 1) * mg], dcol[:, g * kg:(g + 1) * kg])
    # The input of the transposed conv plays the role of a conv's output (h, wd).
    y = _col2im(xp, dcol, (n, c, *out_hw), kh, kw, stride, pad, dilation, h, wd)
    y = xp.ascontiguousarray(y)
    if b is not None:
        y += b[None, :, None, None]
    if out is not None:
        _check_out("out", out, y.shape, x.dtype)
        out[...] = y
        return out
    return y


def _pool_geometry(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(pad)
    h, w = x.shape[2], x.shape[3]
    oh, ow = pool_out_size(h, kh, sh, ph), pool_out_size(w, kw, sw, pw)
    # Canvas big enough for every (ceil-rounded) window; windows start at oh*sh there.
    hp = max((oh - 1) * sh + kh, ph + h)
    wp = max((ow - 1) * sw + kw, pw + w)
    return kh, kw, sh, sw, ph, pw, oh, ow, hp, wp


def _ave_divisor(xp, x, kh, kw, sh, sw, ph, pw, oh, ow):
    hs = ave_pool_sizes(x.shape[2], kh, sh, ph, oh)
    ws = ave_pool_sizes(x.shape[3], kw, sw, pw, ow)
    return xp.asarray((hs[:, None] * ws[None, :]).astype(np.float32), dtype=x.dtype)


def _max_scan(xp, x, kh, kw, sh, sw, ph, pw, oh, ow, hp, wp, want_arg: bool):
    """Running max in Caffe's scan order; padding is -inf so it never beats -FLT_MAX."""
    xpad = _pad(xp, x, ph, pw, hp, wp, -np.inf)
    best = xp.full(x.shape[:2] + (oh, ow), -FLT_MAX, dtype=x.dtype)
    arg = xp.full(best.shape, -1, dtype=np.int32) if want_arg else None
    for i in range(kh):
        for j in range(kw):
            v = _offset_view(xpad, i, j, sh, sw, oh, ow)
            better = v > best  # strict: the first maximum wins, NaN never does
            best = xp.where(better, v, best)
            if want_arg:
                arg = xp.where(better, i * kw + j, arg)
    return best, arg


def _arg_to_mask(xp, arg, x, kw, sh, sw, ph, pw, oh, ow):
    """Window-relative winner offsets (i*kw + j, -1: none) -> Caffe's mask, the
    winner's flat index h*W + w in its plane (-1 kept)."""
    w = x.shape[3]
    i, j = arg // kw, arg % kw
    hh = (xp.arange(oh) * sh - ph)[:, None] + i
    ww = (xp.arange(ow) * sw - pw)[None, :] + j
    return xp.where(arg >= 0, hh * w + ww, -1).astype(np.int32)


def _mask_to_arg(xp, mask, x, kh, kw, sh, sw, ph, pw, oh, ow):
    """The inverse of _arg_to_mask; an entry that is neither -1 nor inside its
    window is refused (ValueError)."""
    w = x.shape[3]
    m = mask.astype(np.int64)
    i = m // w - (xp.arange(oh) * sh - ph)[:, None]
    j = m % w - (xp.arange(ow) * sw - pw)[None, :]
    inside = (m >= 0) & (m < x.shape[2] * w) & (i >= 0) & (i < kh) & (j >= 0) & (j < kw)
    bad = int(((m != -1) & ~inside).sum())
    if bad:
        raise ValueError(f"mask holds {bad} index(es) that are neither -1 nor inside their window: "
                         "not a mask of this input's pooling")
    return xp.where(inside, i * kw + j, -1)


def _relu(xp, y):
    """Caffe's ReLU in place: 0 where y < 0 (NaN and -0.0 kept)."""
    y[y < 0] = 0
    return y


def pool_forward(x, method, kernel, stride, pad, out=None, mask=None, relu=False):
    """See tinycaffe.kernels.pool_forward."""
    xp = get_array_module(x)
    kh, kw, sh, sw, ph, pw, oh, ow, hp, wp = _pool_geometry(x, kernel, stride, pad)
    shape = x.shape[:2] + (oh, ow)
    _check_out("out", out, shape, x.dtype)
    if method == "max":
        _check_out("mask", mask, shape, np.int32)
        y, arg = _max_scan(xp, x, kh, kw, sh, sw, ph, pw, oh, ow, hp, wp, want_arg=mask is not None)
        if mask is not None:
            mask[...] = _arg_to_mask(xp, arg, x, kw, sh, sw, ph, pw, oh, ow)
    else:
        if mask is not None:
            raise ValueError("a mask exists only for MAX pooling")
        xpad = _pad(xp, x, ph, pw, hp, wp, 0.0)
        y = xp.zeros(shape, dtype=x.dtype)
        for i in range(kh):  # offsets in row-major order: Caffe's summation order
            for j in range(kw):
                y += _offset_view(xpad, i, j, sh, sw, oh, ow)
        with np.errstate(divide="ignore", invalid="ignore"):
            y /= _ave_divisor(xp, x, kh, kw, sh, sw, ph, pw, oh, ow)
    if relu:
        y = _relu(xp, y)
    if out is not None:
        out[...] = y
        return out
    return y


def pool_backward(x, y, dy, method, kernel, stride, pad, out=None, mask=None):
    """See tinycaffe.kernels.pool_backward."""
    xp = get_array_module(x)
    kh, kw, sh, sw, ph, pw, oh, ow, hp, wp = _pool_geometry(x, kernel, stride, pad)
    n, c, h, w = x.shape
    _check_out("out", out, x.shape, x.dtype)
    dxpad = xp.zeros((n, c, hp, wp), dtype=x.dtype)
    if method == "max":
        if mask is None:
            _, arg = _max_scan(xp, x, kh, kw, sh, sw, ph, pw, oh, ow, hp, wp, want_arg=True)
        else:
            _check_out("mask", mask, (n, c, oh, ow), np.int32)
            arg = _mask_to_arg(xp, mask, x, kh, kw, sh, sw, ph, pw, oh, ow)
        zero = xp.zeros((), dtype=dy.dtype)
        for i in range(kh):
            for j in range(kw):
                _offset_view(dxpad, i, j, sh, sw, oh, ow)[...] += xp.where(arg == i * kw + j, dy, zero)
    else:
        # A zero-size window (possible only with pad 0, stride > kernel) lies wholly
        # in the cropped-off margin: its inf/nan never reaches dx.
        with np.errstate(divide="ignore", invalid="ignore"):
            g = dy / _ave_divisor(xp, x, kh, kw, sh, sw, ph, pw, oh, ow)
            for i in range(kh):
                for j in range(kw):
                    _offset_view(dxpad, i, j, sh, sw, oh, ow)[...] += g
    dx = dxpad[:, :, ph:ph + h, pw:pw + w]
    if out is not None:
        out[...] = dx
        return out
    return xp.ascontiguousarray(dx)


def _channel_window_sum(xp, v, before: int, after: int):
    """s[:, c] = sum of v[:, c-before .. c+after] clipped to the real channels."""
    n, c = v.shape[:2]
    vp = xp.zeros((n, c + before + after) + v.shape[2:], dtype=v.dtype)
    vp[:, before:before + c] = v
    s = xp.zeros_like(v)
    for t in range(before + after + 1):
        s += vp[:, t:t + c]
    return s


def _lrn_scale(xp, x, local_size, alpha, k, region):
    sq = x * x
    if region == "across":
        pre = (local_size - 1) // 2
        s = _channel_window_sum(xp, sq, pre, local_size - 1 - pre)
        return k + (alpha / local_size) * s
    pad = (local_size - 1) // 2
    return 1 + alpha * pool_forward(sq, "ave", local_size, 1, pad)


def lrn_forward(x, local_size, alpha, beta, k, region, out=None):
    """See tinycaffe.kernels.lrn_forward."""
    xp = get_array_module(x)
    scale = _lrn_scale(xp, x, local_size, alpha, k, region).astype(x.dtype, copy=False)
    y = xp.multiply(x, xp.power(scale, x.dtype.type(-beta)), out=out)
    return y


def lrn_backward(x, y, dy, local_size, alpha, beta, k, region, out=None):
    """See tinycaffe.kernels.lrn_backward."""
    xp = get_array_module(x)
    _check_out("out", out, x.shape, x.dtype)
    scale = _lrn_scale(xp, x, local_size, alpha, k, region).astype(x.dtype, copy=False)
    ratio = dy * y / scale
    if region == "across":
        pre = (local_size - 1) // 2
        # Channel c fed outputs c-(n-1-pre) .. c+pre: the mirrored window.
        acc = _channel_window_sum(xp, ratio, local_size - 1 - pre, pre) * (alpha / local_size)
    else:
        pad = (local_size - 1) // 2
        acc = alpha * pool_backward(x, None, ratio, "ave", local_size, 1, pad)
    dx = dy * xp.power(scale, x.dtype.type(-beta)) - (2 * beta) * x * acc
    if out is not None:
        out[...] = dx
        return out
    return dx
