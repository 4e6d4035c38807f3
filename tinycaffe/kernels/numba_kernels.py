"""CPU kernels compiled with Numba, for the loops BLAS cannot do for us.

im2col / col2im, pooling and LRN run here; the matrix products stay with
NumPy's BLAS.  Everything is plain portable Numba (no ISA-specific code).

Two habits keep these loops fast:
* inner loops index flat arrays with ``uint64`` offsets: Numba must guard a
  signed index against Python's negative wrap-around, and that guard stops
  LLVM from vectorising short loops (measured 4-5x on im2col);
* each parallel loop runs over whole (n, c) planes, so no two iterations
  write the same element and no atomics are needed.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from .sizes import ave_pool_sizes, conv_out_size, pair, pool_out_size

# All JIT options in one place.  fastmath stays off: results must match Caffe
# to ~1e-6.  error_model="numpy" lets x/0 give inf/nan (Caffe's behaviour)
# instead of raising, and drops the divide-by-zero checks from hot loops.
_OPTS = dict(cache=True, fastmath=False, error_model="numpy", nogil=True, boundscheck=False)
_JIT = dict(_OPTS, parallel=True)
_JIT_SERIAL = _OPTS

FLT_MAX = np.float32(np.finfo(np.float32).max)


@njit(**_JIT_SERIAL)
def _valid(off: int, stride: int, size: int, out_n: int):
    """[lo, hi): the outputs o with 0 <= o*stride + off < size."""
    lo = 0
    if off < 0:
        lo = min(out_n, (-off + stride - 1) // stride)
    hi = 0
    if size - off > 0:
        hi = min(out_n, (size - off + stride - 1) // stride)
    return lo, max(lo, hi)


@njit(**_JIT_SERIAL)
def _valid_table(k: int, dil: int, pad: int, stride: int, size: int, out_n: int):
    """_valid for every kernel offset 0..k-1 (dilation ``dil``), as two arrays."""
    lo = np.empty(k, np.int64)
    hi = np.empty(k, np.int64)
    for j in range(k):
        lo[j], hi[j] = _valid(j * dil - pad, stride, size, out_n)
    return lo, hi


@njit(**_JIT)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, col):
    """col[n, (c*kh+i)*kw+j, oh*ow_n+ow] = x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw], 0 outside.

    x (N, C, H, W) and col (N, C*kh*kw, oh_n*ow_n) must be C-contiguous."""
    n_img, c_n, h_n, w_n = x.shape
    p_n = oh_n * ow_n
    xf = x.reshape(x.size)
    cf = col.reshape(col.size)
    los, his = _valid_table(kw, dw, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    zero = cf.dtype.type(0)
    for t in prange(n_img * c_n):
        for i in range(kh):
            for j in range(kw):
                lo, hi = los[j], his[j]
                row = (t * kh + i) * kw + j
                for oh in range(oh_n):
                    d0 = uint64(row * p_n + oh * ow_n)
                    hh = oh * sh - ph + i * dh
                    if hh < 0 or hh >= h_n:
                        for q in range(uint64(ow_n)):
                            cf[d0 + q] = zero
                        continue
                    for q in range(uint64(lo)):
                        cf[d0 + q] = zero
                    sb = uint64((t * h_n + hh) * w_n + lo * sw + j * dw - pw)
                    db = d0 + uint64(lo)
                    for q in range(uint64(hi - lo)):
                        cf[db + q] = xf[sb + q * usw]
                    for q in range(uint64(hi), uint64(ow_n)):
                        cf[d0 + q] = zero


@njit(**_JIT)
def col2im(col, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, dx):
    """Adjoint of im2col: dx (zeroed here) += every col entry at the input it copied."""
    n_img, c_n, h_n, w_n = dx.shape
    p_n = oh_n * ow_n
    xf = dx.reshape(dx.size)
    cf = col.reshape(col.size)
    los, his = _valid_table(kw, dw, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    for t in prange(n_img * c_n):
        plane = uint64(t * h_n * w_n)
        for q in range(uint64(h_n * w_n)):
            xf[plane + q] = 0
        for i in range(kh):
            for j in range(kw):
                lo, hi = los[j], his[j]
                row = (t * kh + i) * kw + j
                for oh in range(oh_n):
                    hh = oh * sh - ph + i * dh
                    if hh < 0 or hh >= h_n:
                        continue
                    sb = uint64(row * p_n + oh * ow_n + lo)
                    db = uint64((t * h_n + hh) * w_n + lo * sw + j * dw - pw)
                    for q in range(uint64(hi - lo)):
                        xf[db + q * usw] += cf[sb + q]


@njit(**_JIT)
def pool_max(x, kh, kw, sh, sw, ph, pw, oh_n, ow_n, y):
    """Caffe MAX pooling into y (N, C, oh_n, ow_n); windows clipped to the input."""
    n_img, c_n, h_n, w_n = x.shape
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    los, his = _valid_table(kw, 1, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    for t in prange(n_img * c_n):
        for oh in range(oh_n):
            y0 = uint64((t * oh_n + oh) * ow_n)
            for q in range(uint64(ow_n)):
                yf[y0 + q] = -FLT_MAX
            hs = oh * sh - ph
            for hh in range(max(hs, 0), min(hs + kh, h_n)):
                for j in range(kw):  # rows then columns: Caffe's scan order
                    lo, hi = los[j], his[j]
                    sb = uint64((t * h_n + hh) * w_n + lo * sw + j - pw)
                    db = y0 + uint64(lo)
                    for q in range(uint64(hi - lo)):
                        v = xf[sb + q * usw]
                        cur = yf[db + q]
                        yf[db + q] = v if v > cur else cur  # strict '>' skips NaN like Caffe


@njit(**_JIT)
def pool_ave(x, kh, kw, sh, sw, ph, pw, oh_n, ow_n, hsz, wsz, y):
    """Caffe AVE pooling: clipped-window sum / (hsz[oh] * wsz[ow]) (padded-window sizes)."""
    n_img, c_n, h_n, w_n = x.shape
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    los, his = _valid_table(kw, 1, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    zero = yf.dtype.type(0)
    for t in prange(n_img * c_n):
        for oh in range(oh_n):
            y0 = uint64((t * oh_n + oh) * ow_n)
            for q in range(uint64(ow_n)):
                yf[y0 + q] = zero
            hs = oh * sh - ph
            for hh in range(max(hs, 0), min(hs + kh, h_n)):
                for j in range(kw):  # Caffe's summation order
                    lo, hi = los[j], his[j]
                    sb = uint64((t * h_n + hh) * w_n + lo * sw + j - pw)
                    db = y0 + uint64(lo)
                    for q in range(uint64(hi - lo)):
                        yf[db + q] += xf[sb + q * usw]
            for ow in range(ow_n):
                yf[y0 + uint64(ow)] /= yf.dtype.type(hsz[oh] * wsz[ow])


@njit(**_JIT)
def pool_max_backward(x, dy, kh, kw, sh, sw, ph, pw, dx):
    """dx (zeroed here) += dy at each window's first maximum in Caffe's scan order."""
    n_img, c_n, h_n, w_n = x.shape
    oh_n, ow_n = dy.shape[2], dy.shape[3]
    for t in prange(n_img * c_n):
        n, c = t // c_n, t % c_n
        dx[n, c] = 0
        best = np.empty(ow_n, x.dtype)
        arg = np.empty(ow_n, np.int64)
        for oh in range(oh_n):
            best[:] = -FLT_MAX
            arg[:] = -1
            hs = oh * sh - ph
            for hh in range(max(hs, 0), min(hs + kh, h_n)):
                for j in range(kw):
                    for ow in range(ow_n):
                        ww = ow * sw - pw + j
                        if 0 <= ww < w_n and x[n, c, hh, ww] > best[ow]:
                            best[ow] = x[n, c, hh, ww]
                            arg[ow] = hh * w_n + ww
            for ow in range(ow_n):
                a = arg[ow]
                if a >= 0:  # an empty / all -inf window passes nothing (Caffe GPU)
                    dx[n, c, a // w_n, a % w_n] += dy[n, c, oh, ow]


@njit(**_JIT)
def pool_ave_backward(dy, kh, kw, sh, sw, ph, pw, hsz, wsz, dx):
    """dx (zeroed here) += dy / pool_size over each clipped window."""
    n_img, c_n, h_n, w_n = dx.shape
    oh_n, ow_n = dy.shape[2], dy.shape[3]
    for t in prange(n_img * c_n):
        n, c = t // c_n, t % c_n
        dx[n, c] = 0
        for oh in range(oh_n):
            hs = oh * sh - ph
            for ow in range(ow_n):
                g = dy[n, c, oh, ow] / dx.dtype.type(hsz[oh] * wsz[ow])
                ws = ow * sw - pw
                for hh in range(max(hs, 0), min(hs + kh, h_n)):
                    for ww in range(max(ws, 0), min(ws + kw, w_n)):
                        dx[n, c, hh, ww] += g


@njit(**_JIT)
def channel_window_sum(v, before, after, square, out):
    """out[:, c] = sum over c-before..c+after (clipped) of v (or v*v if ``square``)."""
    n_img, c_n = v.shape[0], v.shape[1]
    plane = v.size // max(n_img * c_n, 1)
    vf = v.reshape(v.size)
    of = out.reshape(out.size)
    up = uint64(plane)
    zero = of.dtype.type(0)
    for t in prange(n_img * c_n):
        n, c = t // c_n, t % c_n
        o0 = uint64(t) * up
        for q in range(up):
            of[o0 + q] = zero
        for cc in range(max(0, c - before), min(c_n, c + after + 1)):
            s0 = uint64(n * c_n + cc) * up
            if square:
                for q in range(up):
                    a = vf[s0 + q]
                    of[o0 + q] += a * a
            else:
                for q in range(up):
                    of[o0 + q] += vf[s0 + q]


@njit(**_JIT)
def mul_pow(x, src, shift, scale, beta, out):
    """out = x * (shift + scale*src) ** -beta, element-wise (the LRN output).

    beta 0.75 / 0.5 / 1 (every LRN in the Caffe model zoo) use sqrt and
    division, which vectorise; other betas fall back to pow.  The power is
    taken in float64, so it is at least as exact as Caffe's float32 powx."""
    xf = x.reshape(x.size)
    sf = src.reshape(src.size)
    of = out.reshape(out.size)
    mode = 1 if beta == 0.75 else 2 if beta == 0.5 else 3 if beta == 1.0 else 0
    n = x.size
    nblk = (n + 4095) // 4096
    for b in prange(nblk):
        lo = uint64(b * 4096)
        hi = uint64(min(n, (b + 1) * 4096))
        if mode == 1:
            for i in range(lo, hi):
                r = 1.0 / np.sqrt(shift + scale * np.float64(sf[i]))
                of[i] = xf[i] * (r * np.sqrt(r))
        elif mode == 2:
            for i in range(lo, hi):
                of[i] = xf[i] * (1.0 / np.sqrt(shift + scale * np.float64(sf[i])))
        elif mode == 3:
            for i in range(lo, hi):
                of[i] = xf[i] / (shift + scale * np.float64(sf[i]))
        else:
            for i in range(lo, hi):
                of[i] = xf[i] * (shift + scale * np.float64(sf[i])) ** -beta


# ---------------------------------------------------------------------------
# Public-signature wrappers (same API as numpy_kernels), NumPy arrays only.
# ---------------------------------------------------------------------------

# im2col works on chunks of images whose column buffer stays cache-sized, so
# the BLAS call that follows reads it from cache instead of DRAM.
COL_CHUNK_BYTES = 4 << 20


def _c(a):
    return np.ascontiguousarray(a)


def conv_forward(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1, out=None):
    """See tinycaffe.kernels.conv_forward."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(pad), pair(dilation)
    x = _c(x)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = conv_out_size(h, kh, sh, ph, dh)
    ow = conv_out_size(wd, kw, sw, pw, dw)
    p = oh * ow
    y = out if out is not None else np.empty((n, m, oh, ow), dtype=x.dtype)
    y3 = y.reshape(n, m, p)
    mg, kg = m // group, cg * kh * kw
    wg = _c(w).reshape(group, mg, kg)
    direct = kh == kw == 1 and sh == sw == 1 and ph == pw == 0
    if direct:  # a 1x1 convolution needs no im2col: x itself is the column matrix
        x3 = x.reshape(n, c, p)
        for g in range(group):
            np.matmul(wg[g], x3[:, g * cg:(g + 1) * cg], out=y3[:, g * mg:(g + 1) * mg])
    else:
        step = max(1, min(n, COL_CHUNK_BYTES // (c * kh * kw * p * x.itemsize)))
        col = np.empty((step, c * kh * kw, p), dtype=x.dtype)
        for n0 in range(0, n, step):
            nb = min(step, n - n0)
            im2col(x[n0:n0 + nb], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, col[:nb])
            for g in range(group):
                np.matmul(wg[g], col[:nb, g * kg:(g + 1) * kg],
                          out=y3[n0:n0 + nb, g * mg:(g + 1) * mg])
            if b is not None:  # while this chunk of y is still in cache
                y3[n0:n0 + nb] += b[:, None]
        b = None
    if b is not None:
        y3 += b[:, None]
    return y
