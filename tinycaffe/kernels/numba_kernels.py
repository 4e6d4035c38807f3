"""CPU kernels compiled with Numba, for the loops BLAS cannot do for us.

im2col / col2im, pooling and LRN run here; matrix products stay with NumPy's
BLAS.  Plain portable Numba: no ISA-specific code, fastmath off.

Each jitted kernel is serial and GIL-free and works on a range [t0, t1) of
(n, c) planes (or images); ``threads.parallel_for`` hands the ranges to the
shared thread pool (threads.py says why this beats ``parallel=True`` here).
Different ranges never write the same element, so no atomics are needed.

Inner loops index flat arrays with ``uint64`` offsets: Numba guards a signed
index against Python's negative wrap-around, and that guard stops LLVM from
vectorising short loops (4-5x slower im2col when measured).
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from .sizes import ave_pool_sizes, conv_out_size, pair, pool_out_size
from .threads import can_pin_blas, get_num_threads, parallel_for

# All JIT options in one place.  fastmath stays off: results must match Caffe
# to ~1e-6.  error_model="numpy" makes x/0 give inf/nan as in Caffe instead
# of raising, and drops the zero-division checks from hot loops.
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

FLT_MAX = np.float32(np.finfo(np.float32).max)


@njit(**_JIT)
def _valid_table(k, dil, pad, stride, size, out_n):
    """For each kernel offset j: outputs [lo[j], hi[j]) read inside [0, size)."""
    lo = np.empty(k, np.int64)
    hi = np.empty(k, np.int64)
    for j in range(k):
        off = j * dil - pad  # input index = o * stride + off
        a = 0
        if off < 0:
            a = min(out_n, (-off + stride - 1) // stride)
        b = 0
        if size - off > 0:
            b = min(out_n, (size - off + stride - 1) // stride)
        lo[j] = a
        hi[j] = max(a, b)
    return lo, hi


@njit(**_JIT)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, col, xpad, t0, t1):
    """col[n, (c*kh+i)*kw+j, oh*ow_n+ow] = x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw] (0 if
    outside), for planes t = n*C + c in [t0, t1).

    ``xpad`` is a zero-bordered (N, C, H+2ph, W+2pw) scratch whose interior this
    call fills for its planes: copying from a padded plane needs no bounds logic,
    which measured 2-3x faster than clipping each row.  All arrays C-contiguous;
    col may have extra rows per image (col.shape[1] > C*kh*kw), left untouched."""
    c_n, h_n, w_n = x.shape[1], x.shape[2], x.shape[3]
    hp, wp = xpad.shape[2], xpad.shape[3]
    p_n = oh_n * ow_n
    rows = col.shape[1]
    xf = x.reshape(x.size)
    pf = xpad.reshape(xpad.size)
    cf = col.reshape(col.size)
    usw, uow, uw = uint64(sw), uint64(ow_n), uint64(w_n)
    for t in range(t0, t1):
        for hh in range(h_n):
            s0 = uint64((t * h_n + hh) * w_n)
            d0 = uint64((t * hp + hh + ph) * wp + pw)
            for q in range(uw):
                pf[d0 + q] = xf[s0 + q]
        for i in range(kh):
            for j in range(kw):
                row = (t // c_n) * rows + ((t % c_n) * kh + i) * kw + j
                for oh in range(oh_n):
                    d0 = uint64(row * p_n + oh * ow_n)
                    s0 = uint64((t * hp + oh * sh + i * dh) * wp + j * dw)
                    for q in range(uow):
                        cf[d0 + q] = pf[s0 + q * usw]


@njit(**_JIT)
def col2im(col, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, dx, t0, t1):
    """Adjoint of im2col: planes [t0, t1) of dx are zeroed, then every col entry is
    added back onto the input element it was copied from."""
    h_n, w_n = dx.shape[2], dx.shape[3]
    p_n = oh_n * ow_n
    xf = dx.reshape(dx.size)
    cf = col.reshape(col.size)
    los, his = _valid_table(kw, dw, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    for t in range(t0, t1):
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
def pool_max(x, kh, kw, sh, sw, ph, pw, y, t0, t1):
    """Caffe MAX pooling of planes [t0, t1) into y; windows clipped to the input.

    Loops run window row, kernel column, then a vectorisable sweep over a whole
    output row; per output that still visits the window in Caffe's scan order."""
    h_n, w_n = x.shape[2], x.shape[3]
    oh_n, ow_n = y.shape[2], y.shape[3]
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    los, his = _valid_table(kw, 1, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    for t in range(t0, t1):
        for oh in range(oh_n):
            y0 = uint64((t * oh_n + oh) * ow_n)
            for q in range(uint64(ow_n)):
                yf[y0 + q] = -FLT_MAX
            hs = oh * sh - ph
            for hh in range(max(hs, 0), min(hs + kh, h_n)):
                for j in range(kw):
                    lo, hi = los[j], his[j]
                    sb = uint64((t * h_n + hh) * w_n + lo * sw + j - pw)
                    db = y0 + uint64(lo)
                    for q in range(uint64(hi - lo)):
                        v = xf[sb + q * usw]
                        cur = yf[db + q]
                        yf[db + q] = v if v > cur else cur  # strict '>': NaN never wins


@njit(**_JIT)
def pool_ave(x, kh, kw, sh, sw, ph, pw, hsz, wsz, y, t0, t1):
    """Caffe AVE pooling of planes [t0, t1): clipped-window sum / (hsz[oh]*wsz[ow])."""
    h_n, w_n = x.shape[2], x.shape[3]
    oh_n, ow_n = y.shape[2], y.shape[3]
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    los, his = _valid_table(kw, 1, pw, sw, w_n, ow_n)
    usw = uint64(sw)
    zero = yf.dtype.type(0)
    for t in range(t0, t1):
        for oh in range(oh_n):
            y0 = uint64((t * oh_n + oh) * ow_n)
            for q in range(uint64(ow_n)):
                yf[y0 + q] = zero
            hs = oh * sh - ph
            for hh in range(max(hs, 0), min(hs + kh, h_n)):
                for j in range(kw):  # per output: Caffe's summation order
                    lo, hi = los[j], his[j]
                    sb = uint64((t * h_n + hh) * w_n + lo * sw + j - pw)
                    db = y0 + uint64(lo)
                    for q in range(uint64(hi - lo)):
                        yf[db + q] += xf[sb + q * usw]
            for ow in range(ow_n):
                yf[y0 + uint64(ow)] /= yf.dtype.type(hsz[oh] * wsz[ow])


@njit(**_JIT)
def pool_max_backward(x, dy, kh, kw, sh, sw, ph, pw, dx, t0, t1):
    """Planes [t0, t1) of dx zeroed, then dy added at each window's first maximum
    in Caffe's scan order (an empty or all -inf window passes nothing).

    Per output row: the maxima first, with pool_max's vectorised sweep; then
    each window is walked backwards keeping, with a select, the last element
    equal to its maximum, which is the first in Caffe's order.  Tracking the
    argmax during the sweep, or searching with an early exit, branches on the
    data and measured 2-3x slower.  Only a maximum above -FLT_MAX counts, as
    in Caffe, whose mask stays -1 unless some element beats -FLT_MAX."""
    h_n, w_n = x.shape[2], x.shape[3]
    oh_n, ow_n = dy.shape[2], dy.shape[3]
    xf = x.reshape(x.size)
    gf = dy.reshape(dy.size)
    df = dx.reshape(dx.size)
    los, his = _valid_table(kw, 1, pw, sw, w_n, ow_n)
    best = np.empty(ow_n, x.dtype)
    usw = uint64(sw)
    for t in range(t0, t1):
        plane = t * h_n * w_n
        for q in range(uint64(h_n * w_n)):
            df[uint64(plane) + q] = 0
        for oh in range(oh_n):
            for q in range(uint64(ow_n)):
                best[q] = -FLT_MAX
            hs = oh * sh - ph
            h0, h1 = max(hs, 0), min(hs + kh, h_n)
            for hh in range(h0, h1):
                for j in range(kw):
                    lo, hi = los[j], his[j]
                    sb = uint64(plane + hh * w_n + lo * sw + j - pw)
                    for q in range(uint64(hi - lo)):
                        v = xf[sb + q * usw]
                        cur = best[uint64(lo) + q]
                        best[uint64(lo) + q] = v if v > cur else cur  # NaN never wins
            g0 = (t * oh_n + oh) * ow_n
            for ow in range(ow_n):
                m = best[ow]
                ws = ow * sw - pw
                w0, w1 = max(ws, 0), min(ws + kw, w_n)
                a = -1
                for hh in range(h1 - 1, h0 - 1, -1):
                    for ww in range(w1 - 1, w0 - 1, -1):
                        i = hh * w_n + ww
                        a = i if xf[uint64(plane + i)] == m else a
                if a >= 0 and m > -FLT_MAX:
                    df[uint64(plane + a)] += gf[uint64(g0 + ow)]


@njit(**_JIT)
def pool_ave_backward(dy, kh, kw, sh, sw, ph, pw, hsz, wsz, dx, t0, t1):
    """Planes [t0, t1) of dx zeroed, then dy / pool_size spread over each clipped window."""
    h_n, w_n = dx.shape[2], dx.shape[3]
    oh_n, ow_n = dy.shape[2], dy.shape[3]
    gf = dy.reshape(dy.size)
    df = dx.reshape(dx.size)
    for t in range(t0, t1):
        plane = t * h_n * w_n
        for q in range(uint64(h_n * w_n)):
            df[uint64(plane) + q] = 0
        for oh in range(oh_n):
            hs = oh * sh - ph
            for ow in range(ow_n):
                g = gf[uint64((t * oh_n + oh) * ow_n + ow)] / df.dtype.type(hsz[oh] * wsz[ow])
                ws = ow * sw - pw
                for hh in range(max(hs, 0), min(hs + kh, h_n)):
                    for ww in range(max(ws, 0), min(ws + kw, w_n)):
                        df[uint64(plane + hh * w_n + ww)] += g


@njit(**_JIT)
def channel_window_sum(v, before, after, square, out, t0, t1):
    """out[:, c] = sum of v (or v*v if ``square``) over channels c-before..c+after
    clipped to [0, C), for planes t = n*C + c in [t0, t1)."""
    c_n = v.shape[1]
    plane = uint64(v.shape[2] * v.shape[3])
    vf = v.reshape(v.size)
    of = out.reshape(out.size)
    zero = of.dtype.type(0)
    for t in range(t0, t1):
        n, c = t // c_n, t % c_n
        o0 = uint64(t) * plane
        for q in range(plane):
            of[o0 + q] = zero
        for cc in range(max(0, c - before), min(c_n, c + after + 1)):
            s0 = uint64(n * c_n + cc) * plane
            if square:
                for q in range(plane):
                    a = vf[s0 + q]
                    of[o0 + q] += a * a
            else:
                for q in range(plane):
                    of[o0 + q] += vf[s0 + q]


@njit(**_JIT)
def box_sum(v, k, square, out, t0, t1):
    """out = sum of v (or v*v if ``square``) over the k x k window centred on each
    element (k odd), clipped at the plane's borders, for planes [t0, t1).

    Within-channel LRN's AVE pooling (stride 1, pad (k-1)/2) is this sum over
    k*k; being symmetric, the sum is also its own adjoint, so the backward
    gathers with it instead of scattering through pool_ave_backward (3x slower:
    every input is read-modify-written k*k times).  Row sums first, then
    column sums of those, both as vectorisable sweeps along a row."""
    h_n, w_n = v.shape[2], v.shape[3]
    p = (k - 1) // 2
    vf = v.reshape(v.size)
    of = out.reshape(out.size)
    size = uint64(h_n * w_n)
    rows = np.empty(h_n * w_n, out.dtype)
    for t in range(t0, t1):
        base = uint64(t) * size
        for q in range(size):
            rows[q] = 0
        for h in range(h_n):
            r = uint64(h * w_n)
            for j in range(-p, p + 1):
                lo, hi = max(0, -j), min(w_n, w_n - j)
                src = base + r + uint64(lo + j)
                dst = r + uint64(lo)
                if square:
                    for q in range(uint64(hi - lo)):
                        a = vf[src + q]
                        rows[dst + q] += a * a
                else:
                    for q in range(uint64(hi - lo)):
                        rows[dst + q] += vf[src + q]
        for h in range(h_n):
            o = base + uint64(h * w_n)
            for q in range(uint64(w_n)):
                of[o + q] = 0
            for i in range(max(0, h - p), min(h_n, h + p + 1)):
                r = uint64(i * w_n)
                for q in range(uint64(w_n)):
                    of[o + q] += rows[r + q]


@njit(**_JIT)
def lrn_ratio(dy, y, src, shift, scale, out, i0, i1):
    """out[i] = dy[i] * y[i] / (shift + scale*src[i]) for flat i in [i0, i1), the
    denominator rounded once to float32 from float64."""
    df, yf, sf, of = dy.reshape(dy.size), y.reshape(y.size), src.reshape(src.size), out.reshape(out.size)
    for i in range(uint64(i0), uint64(i1)):
        d = df[i] * yf[i]
        of[i] = d / of.dtype.type(shift + scale * np.float64(sf[i]))


@njit(**_JIT)
def mul_pow(x, src, shift, scale, beta, out, i0, i1):
    """out[i] = x[i] * (shift + scale*src[i]) ** -beta for flat i in [i0, i1).

    beta 0.75 / 0.5 / 1 (every LRN in the Caffe model zoo) use float32 sqrt and
    division, which vectorise (a few ulp, ~3e-7 relative at worst); other betas
    call pow in float64 (exact to the last float32 bit, but ~6x slower)."""
    xf = x.reshape(x.size)
    sf = src.reshape(src.size)
    of = out.reshape(out.size)
    lo, hi = uint64(i0), uint64(i1)
    one = np.float32(1)
    sh32, sc32 = np.float32(shift), np.float32(scale)
    if beta == 0.75:
        for i in range(lo, hi):
            r = one / np.sqrt(sh32 + sc32 * sf[i])
            of[i] = xf[i] * (r * np.sqrt(r))
    elif beta == 0.5:
        for i in range(lo, hi):
            of[i] = xf[i] / np.sqrt(sh32 + sc32 * sf[i])
    elif beta == 1.0:
        for i in range(lo, hi):
            of[i] = xf[i] / (sh32 + sc32 * sf[i])
    else:
        for i in range(lo, hi):
            of[i] = xf[i] * (shift + scale * np.float64(sf[i])) ** -beta


# ---------------------------------------------------------------------------
# Public-signature wrappers (same API as numpy_kernels), NumPy arrays only.
# ---------------------------------------------------------------------------

# Each worker im2cols a few images at a time into its own buffer of about this
# size, so the BLAS call that follows reads it from that core's L2 cache.
COL_CHUNK_BYTES = 1 << 20


def _c(a):
    return np.ascontiguousarray(a)


def _conv_geometry(x, w, stride, pad, dilation):
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(pad), pair(dilation)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = conv_out_size(h, kh, sh, ph, dh)
    ow = conv_out_size(wd, kw, sw, pw, dw)
    return (sh, sw, ph, pw, dh, dw), (n, c, m, cg, kh, kw, oh, ow)


def _pad_scratch(n, c, x, geo):
    """Zeroed (n, c, H+2ph, W+2pw) buffer for im2col (it fills only the interior)."""
    ph, pw = geo[2], geo[3]
    return np.zeros((n, c, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), dtype=x.dtype)


def conv_forward(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1, out=None):
    """See tinycaffe.kernels.conv_forward."""
    x = _c(x)
    geo, (n, c, m, cg, kh, kw, oh, ow) = _conv_geometry(x, w, stride, pad, dilation)
    p = oh * ow
    mg, kg = m // group, cg * kh * kw
    wg = _c(w).reshape(group, mg, kg)
    y = out if out is not None else np.empty((n, m, oh, ow), dtype=x.dtype)
    if out is not None and (out.shape != (n, m, oh, ow) or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous {(n, m, oh, ow)} array, got {out.shape}")
    y3 = y.reshape(n, m, p)
    is_1x1 = kh == kw == 1 and geo[:4] == (1, 1, 0, 0)
    per_image = c * kh * kw * p * x.itemsize
    threads = get_num_threads()

    def gemm(cols, n0, nb, m0=0, m1=mg):
        for g in range(group):
            np.matmul(wg[g, m0:m1], cols[:nb, g * kg:(g + 1) * kg],
                      out=y3[n0:n0 + nb, g * mg + m0:g * mg + m1])

    if n >= threads and can_pin_blas():
        # Batch split over workers; each: im2col a few images, one-thread GEMM, bias.
        step = max(1, min(n, COL_CHUNK_BYTES // per_image))
        # Without groups the bias rides in the GEMM: a row of ones under each
        # image's columns and b as an extra weight column (saves a pass over y).
        fold = b is not None and group == 1 and not is_1x1
        w_fold = np.concatenate([wg[0], b[:, None].astype(x.dtype)], axis=1) if fold else None

        def work(lo, hi):
            col = xpad = None
            if not is_1x1:
                col = np.empty((step, c * kh * kw + fold, p), dtype=x.dtype)
                xpad = _pad_scratch(step, c, x, geo)
                if fold:
                    col[:, -1] = 1
            for n0 in range(lo, hi, step):
                nb = min(step, hi - n0)
                if is_1x1:  # x itself is the column matrix
                    cols = x[n0:n0 + nb].reshape(nb, c, p)
                else:
                    cols = col
                    im2col(x[n0:n0 + nb], kh, kw, *geo, oh, ow, col, xpad, 0, nb * c)
                if fold:
                    np.matmul(w_fold, col[:nb], out=y3[n0:n0 + nb])
                    continue
                gemm(cols, n0, nb)
                if b is not None:  # while this slice of y is still in cache
                    y3[n0:n0 + nb] += b[:, None]

        parallel_for(n, work, blas_single=True)
        return y
    # Small batch: im2col split over planes, then the GEMMs split over output rows.
    if is_1x1:
        col = x.reshape(n, c, p)
    else:
        col = np.empty((n, c * kh * kw, p), dtype=x.dtype)
        xpad = _pad_scratch(n, c, x, geo)
        parallel_for(n * c, lambda lo, hi: im2col(x, kh, kw, *geo, oh, ow, col, xpad, lo, hi))
    if can_pin_blas():
        parallel_for(mg, lambda lo, hi: gemm(col, 0, n, lo, hi), blas_single=True)
    else:  # BLAS keeps its own threads: one call, no second layer of threads
        gemm(col, 0, n)
    if b is not None:
        y3 += b[:, None]
    return y


def conv_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1,
                  need_dx=True):
    """See tinycaffe.kernels.conv_backward."""
    x, dy = _c(x), _c(dy)
    geo, (n, c, m, cg, kh, kw, oh, ow) = _conv_geometry(x, w, stride, pad, dilation)
    p = oh * ow
    mg, kg = m // group, cg * kh * kw
    wg = _c(w).reshape(group, mg, kg)
    dy3 = dy.reshape(n, m, p)
    dx = np.empty_like(x) if need_dx else None
    step = max(1, min(n, COL_CHUNK_BYTES // (c * kh * kw * p * x.itemsize)))
    partial_dw = []

    def work(lo, hi):
        dwg = np.zeros((group, mg, kg), dtype=np.float32)
        col = np.empty((step, c * kh * kw, p), dtype=x.dtype)
        xpad = _pad_scratch(step, c, x, geo)
        dcol = np.empty_like(col) if need_dx else None
        tmp = np.empty((mg, kg), dtype=np.float32)
        for n0 in range(lo, hi, step):
            nb = min(step, hi - n0)
            im2col(x[n0:n0 + nb], kh, kw, *geo, oh, ow, col, xpad, 0, nb * c)
            for g in range(group):
                dyg = dy3[n0:n0 + nb, g * mg:(g + 1) * mg]
                for i in range(nb):
                    np.matmul(dyg[i], col[i, g * kg:(g + 1) * kg].T, out=tmp)
                    dwg[g] += tmp
                if need_dx:
                    np.matmul(wg[g].T, dyg, out=dcol[:nb, g * kg:(g + 1) * kg])
            if need_dx:
                col2im(dcol, kh, kw, *geo, oh, ow, dx[n0:n0 + nb], 0, nb * c)
        partial_dw.append(dwg)

    if can_pin_blas():
        parallel_for(n, work, blas_single=True)
    else:
        work(0, n)
    dw = np.sum(partial_dw, axis=0, dtype=np.float32).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3), dtype=np.float32)
    return dx, dw, db


def _pool_geometry(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(pad)
    oh = pool_out_size(x.shape[2], kh, sh, ph)
    ow = pool_out_size(x.shape[3], kw, sw, pw)
    return kh, kw, sh, sw, ph, pw, oh, ow


def pool_forward(x, method, kernel, stride, pad, out=None):
    """See tinycaffe.kernels.pool_forward."""
    x = _c(x)
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(x, kernel, stride, pad)
    n, c, h, w = x.shape
    y = out if out is not None else np.empty((n, c, oh, ow), dtype=x.dtype)
    if method == "max":
        parallel_for(n * c, lambda lo, hi: pool_max(x, kh, kw, sh, sw, ph, pw, y, lo, hi))
    else:
        hsz, wsz = ave_pool_sizes(h, kh, sh, ph, oh), ave_pool_sizes(w, kw, sw, pw, ow)
        parallel_for(n * c, lambda lo, hi: pool_ave(x, kh, kw, sh, sw, ph, pw, hsz, wsz, y, lo, hi))
    return y


def pool_backward(x, y, dy, method, kernel, stride, pad):
    """See tinycaffe.kernels.pool_backward."""
    x, dy = _c(x), _c(dy)
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(x, kernel, stride, pad)
    n, c, h, w = x.shape
    dx = np.empty_like(x)
    if method == "max":
        parallel_for(n * c, lambda lo, hi: pool_max_backward(x, dy, kh, kw, sh, sw, ph, pw, dx, lo, hi))
    else:
        hsz, wsz = ave_pool_sizes(h, kh, sh, ph, oh), ave_pool_sizes(w, kw, sw, pw, ow)
        parallel_for(n * c, lambda lo, hi: pool_ave_backward(dy, kh, kw, sh, sw, ph, pw, hsz, wsz, dx, lo, hi))
    return dx


def _box_mean(v, local_size, square):
    """Within-channel LRN's AVE pooling of v (or v^2): the k x k sum over k*k, padding
    counted in the divisor as Caffe does."""
    n, c = v.shape[:2]
    s = np.empty_like(v)
    parallel_for(n * c, lambda lo, hi: box_sum(v, local_size, square, s, lo, hi))
    s /= s.dtype.type(local_size * local_size)
    return s


def _lrn_src(x, local_size, region):
    """Across: window sum of x^2 over channels; within: AVE pooling of x^2."""
    n, c = x.shape[:2]
    if region == "across":
        pre = (local_size - 1) // 2
        s = np.empty_like(x)
        parallel_for(n * c, lambda lo, hi: channel_window_sum(x, pre, local_size - 1 - pre, True, s, lo, hi))
        return s
    return _box_mean(x, local_size, True)


def _shift_scale(local_size, alpha, k, region):
    return (float(k), float(alpha) / local_size) if region == "across" else (1.0, float(alpha))


def lrn_forward(x, local_size, alpha, beta, k, region, out=None):
    """See tinycaffe.kernels.lrn_forward."""
    x = _c(x)
    src = _lrn_src(x, local_size, region)
    shift, scale = _shift_scale(local_size, alpha, k, region)
    y = out if out is not None else np.empty_like(x)
    parallel_for(x.size, lambda lo, hi: mul_pow(x, src, shift, scale, float(beta), y, lo, hi))
    return y


def lrn_backward(x, y, dy, local_size, alpha, beta, k, region):
    """See tinycaffe.kernels.lrn_backward."""
    x, y, dy = _c(x), _c(y), _c(dy)
    src = _lrn_src(x, local_size, region)
    shift, scale_k = _shift_scale(local_size, alpha, k, region)
    ratio = np.empty_like(x)
    parallel_for(x.size, lambda lo, hi: lrn_ratio(dy, y, src, shift, scale_k, ratio, lo, hi))
    n, c = x.shape[:2]
    if region == "across":
        pre = (local_size - 1) // 2
        acc = np.empty_like(x)  # mirrored window: channel c fed outputs c-(n-1-pre)..c+pre
        parallel_for(n * c, lambda lo, hi: channel_window_sum(ratio, local_size - 1 - pre, pre, False, acc, lo, hi))
    else:  # the AVE pooling's adjoint is the same box mean (odd local_size)
        acc = _box_mean(ratio, local_size, False)
    dx = np.empty_like(x)
    parallel_for(x.size, lambda lo, hi: mul_pow(dy, src, shift, scale_k, float(beta), dx, lo, hi))
    acc *= x
    acc *= x.dtype.type(2.0 * beta * scale_k)
    dx -= acc
    return dx
