"""Caffe MAX / AVE pooling on the CPU, compiled with Numba.

Each plane is reduced in two passes: a row pass (every input row reduced
over each output column's window, into an L1 buffer of rows x output
columns) and a column pass (each output row reduced over its window's rows
of that buffer, a contiguous sweep).  Rows are short at CIFAR sizes (32, 16,
8), so when the output columns tile a row exactly (W == OW * stride) the row
pass runs as one flat loop over the whole plane and only the border outputs
(windows clipped, or wrapped into the next row) are redone; the usual
windows (3x3/2, 2x2/2, 3x3/1) get straight-line loop bodies that vectorise.

MAX keeps Caffe's semantics exactly: every running value starts at -FLT_MAX
and only a strictly greater element replaces it, so NaN never wins and an
all -inf window gives -FLT_MAX.  The row pass keeps the first maximum along
a row and the column pass the first row holding the window's maximum:
together, the first maximum in Caffe's row-major scan order (which also
decides the sign of a zero maximum).  The optional ``mask`` receives that
winner's flat index h*W + w in its plane (-1 for a window with no winner),
as Caffe's mask; the backward then scatters through it instead of searching
again (Caffe's backward uses its forward's mask the same way).

AVE sums each clipped window (row sums, then column sums: a different
association than Caffe's single running sum, within float32 rounding) and
divides by the window clipped to the padded input only, as Caffe does.

Kernels are serial and GIL-free and work on planes t = n*C + c in [t0, t1);
``threads.parallel_for`` hands those ranges to the shared pool.  Plain
portable Numba: no ISA-specific code, fastmath off.  The helpers are plain
calls rather than ``inline="always"``: inlining ran pool1 no faster (1.55 ms
either way) and took the MAX kernel's cold compile from 4.4 s to 8.2 s.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, uint64

from .sizes import ave_pool_sizes, pair, pool_out_size
from .threads import parallel_for

# The same options as numba_kernels._JIT (a test keeps them equal): fastmath
# off so results match Caffe; error_model "numpy" so x/0 gives inf/nan.
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

FLT_MAX = np.float32(np.finfo(np.float32).max)


@njit(**_JIT)
def _run_max(xf, s, kw, sw, out, d, n):
    """out[d+q] = max(-FLT_MAX, x[s+q*sw .. s+q*sw+kw)) for q < n, strict '>'.

    The common windows get straight-line bodies so the loop vectorises."""
    if kw == 3 and sw == 2:
        for q in range(n):
            c = s + q * uint64(2)
            m = -FLT_MAX
            v = xf[c]
            m = v if v > m else m
            v = xf[c + uint64(1)]
            m = v if v > m else m
            v = xf[c + uint64(2)]
            out[d + q] = v if v > m else m
    elif kw == 2 and sw == 2:
        for q in range(n):
            c = s + q * uint64(2)
            m = -FLT_MAX
            v = xf[c]
            m = v if v > m else m
            v = xf[c + uint64(1)]
            out[d + q] = v if v > m else m
    elif kw == 3 and sw == 1:
        for q in range(n):
            c = s + q
            m = -FLT_MAX
            v = xf[c]
            m = v if v > m else m
            v = xf[c + uint64(1)]
            m = v if v > m else m
            v = xf[c + uint64(2)]
            out[d + q] = v if v > m else m
    else:
        usw = uint64(sw)
        for q in range(n):
            out[d + q] = -FLT_MAX
        for j in range(uint64(kw)):
            for q in range(n):
                v = xf[s + q * usw + j]
                m = out[d + q]
                out[d + q] = v if v > m else m


@njit(**_JIT)
def _run_argmax(xf, s, rel, kw, sw, out, idx, d, n):
    """_run_max plus idx[d+q] = the first winner's position (rel = s's offset in
    its plane), or -1 when nothing beats -FLT_MAX."""
    if kw == 3 and sw == 2:
        for q in range(n):
            c = s + q * uint64(2)
            p = rel + np.int32(q * uint64(2))
            m = -FLT_MAX
            i = np.int32(-1)
            v = xf[c]
            b = v > m
            m = v if b else m
            i = p if b else i
            v = xf[c + uint64(1)]
            b = v > m
            m = v if b else m
            i = p + np.int32(1) if b else i
            v = xf[c + uint64(2)]
            b = v > m
            out[d + q] = v if b else m
            idx[d + q] = p + np.int32(2) if b else i
    else:
        usw = uint64(sw)
        for q in range(n):
            out[d + q] = -FLT_MAX
            idx[d + q] = -1
        for j in range(uint64(kw)):
            for q in range(n):
                v = xf[s + q * usw + j]
                m = out[d + q]
                b = v > m
                out[d + q] = v if b else m
                idx[d + q] = rel + np.int32(q * usw + j) if b else idx[d + q]


@njit(**_JIT)
def _interior(kw, sw, pw, w_n, ow_n):
    """[a, b): the outputs along a row whose window lies wholly inside [0, w_n)."""
    a = min(ow_n, (pw + sw - 1) // sw)
    b = max(a, min(ow_n, (w_n - kw + pw) // sw + 1))
    return a, b


@njit(**_JIT)
def _row_pass(xf, plane, h_n, w_n, kw, sw, pw, ow_n, a, b, rm, ri, want):
    """rm[hh*ow_n + ow] = max of input row hh over column window ow, for every
    row of one plane (ri: the winner's plane index, when ``want``).

    Rows are short, so when the output columns tile the row exactly
    (w_n == ow_n*sw) one flat run covers the whole plane (windows at a row's
    end read into the next row; those border outputs are redone clipped)."""
    uow = uint64(ow_n)
    if w_n == ow_n * sw:
        k1 = min(h_n * ow_n, (h_n * w_n - kw + pw) // sw + 1)
        if k1 > a:
            s = a * sw - pw
            if want:
                _run_argmax(xf, plane + uint64(s), np.int32(s), kw, sw, rm, ri, uint64(a), uint64(k1 - a))
            else:
                _run_max(xf, plane + uint64(s), kw, sw, rm, uint64(a), uint64(k1 - a))
    elif b > a:
        for hh in range(h_n):
            s = hh * w_n + a * sw - pw
            d = uint64(hh) * uow + uint64(a)
            if want:
                _run_argmax(xf, plane + uint64(s), np.int32(s), kw, sw, rm, ri, d, uint64(b - a))
            else:
                _run_max(xf, plane + uint64(s), kw, sw, rm, d, uint64(b - a))
    n_border = ow_n - (b - a)
    for hh in range(h_n):
        for k in range(n_border):
            ow = k if k < a else k + (b - a)
            ws = ow * sw - pw
            m = -FLT_MAX
            i = np.int32(-1)
            for ww in range(max(ws, 0), min(ws + kw, w_n)):
                v = xf[plane + uint64(hh * w_n + ww)]
                better = v > m
                m = v if better else m
                i = np.int32(hh * w_n + ww) if better else i
            rm[uint64(hh) * uow + uint64(ow)] = m
            if want:
                ri[uint64(hh) * uow + uint64(ow)] = i


@njit(**_JIT)
def max_pool_planes(x, kh, kw, sh, sw, ph, pw, y, mask, want_mask, relu, t0, t1):
    """Caffe MAX pooling of planes [t0, t1) of x into y, and into ``mask`` when
    ``want_mask`` (pass any int32 array otherwise).  ``relu`` stores
    max(y, 0) as Caffe's ReLU would (0 where y < 0); the mask is unchanged.

    Row pass then column pass, both with strict '>' from -FLT_MAX: the first
    maximum along a row, then the first row holding the window's maximum,
    which is the first maximum in Caffe's row-major scan order."""
    h_n, w_n = x.shape[2], x.shape[3]
    oh_n, ow_n = y.shape[2], y.shape[3]
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    mf = mask.reshape(mask.size)
    rm = np.empty(h_n * ow_n, x.dtype)
    ri = np.empty(h_n * ow_n if want_mask else 1, np.int32)
    a, b = _interior(kw, sw, pw, w_n, ow_n)
    uow = uint64(ow_n)
    zero = yf.dtype.type(0)
    for t in range(t0, t1):
        plane = uint64(t * h_n * w_n)
        _row_pass(xf, plane, h_n, w_n, kw, sw, pw, ow_n, a, b, rm, ri, want_mask)
        for oh in range(oh_n):
            hs = oh * sh - ph
            h0 = max(hs, 0)
            nr = min(hs + kh, h_n) - h0
            y0 = uint64(t * oh_n + oh) * uow
            r0 = uint64(h0) * uow
            r1 = r0 + uow
            r2 = r1 + uow
            # Two- and three-row windows (the usual 2x2 and 3x3) in one sweep;
            # others row by row.  ``relu`` clamps in the same store.
            if want_mask:
                if nr == 3:
                    for q in range(uow):
                        v = rm[r0 + q]
                        better = v > -FLT_MAX
                        m = v if better else -FLT_MAX
                        i = ri[r0 + q] if better else np.int32(-1)
                        v = rm[r1 + q]
                        better = v > m
                        m = v if better else m
                        i = ri[r1 + q] if better else i
                        v = rm[r2 + q]
                        better = v > m
                        m = v if better else m
                        yf[y0 + q] = zero if (m < zero) & relu else m
                        mf[y0 + q] = ri[r2 + q] if better else i
                else:
                    for q in range(uow):
                        yf[y0 + q] = -FLT_MAX
                        mf[y0 + q] = -1
                    for hh in range(nr):
                        rr = r0 + uint64(hh) * uow
                        for q in range(uow):
                            v = rm[rr + q]
                            m = yf[y0 + q]
                            better = v > m
                            yf[y0 + q] = v if better else m
                            mf[y0 + q] = ri[rr + q] if better else mf[y0 + q]
                    if relu:
                        for q in range(uow):
                            v = yf[y0 + q]
                            yf[y0 + q] = zero if v < zero else v
            elif nr == 3:
                for q in range(uow):
                    m = -FLT_MAX
                    v = rm[r0 + q]
                    m = v if v > m else m
                    v = rm[r1 + q]
                    m = v if v > m else m
                    v = rm[r2 + q]
                    m = v if v > m else m
                    yf[y0 + q] = zero if (m < zero) & relu else m
            elif nr == 2:
                for q in range(uow):
                    m = -FLT_MAX
                    v = rm[r0 + q]
                    m = v if v > m else m
                    v = rm[r1 + q]
                    m = v if v > m else m
                    yf[y0 + q] = zero if (m < zero) & relu else m
            else:
                for q in range(uow):
                    yf[y0 + q] = -FLT_MAX
                for hh in range(nr):
                    rr = r0 + uint64(hh) * uow
                    for q in range(uow):
                        v = rm[rr + q]
                        m = yf[y0 + q]
                        yf[y0 + q] = v if v > m else m
                if relu:
                    for q in range(uow):
                        v = yf[y0 + q]
                        yf[y0 + q] = zero if v < zero else v


@njit(**_JIT)
def _relu_mask_plane(xf, df, d0, n):
    """df[d0+q] *= (xf[d0+q] > 0) for q < n: an in-place ReLU's backward (slope 0)
    on the plane just written, while it is in cache."""
    z = df.dtype.type(0)
    for q in range(uint64(n)):
        df[d0 + q] = df[d0 + q] * df.dtype.type(xf[d0 + q] > z)


@njit(**_JIT)
def max_pool_scatter(dy, mask, dx, x, relu_mask, t0, t1):
    """Planes [t0, t1) of dx zeroed, then each dy added at its mask index
    (a window with mask -1 passes nothing), then, with ``relu_mask``, times
    (x > 0).  Returns how many mask entries were neither -1 nor inside the
    plane; those are skipped, never written."""
    in_plane = dx.shape[2] * dx.shape[3]
    out_plane = dy.shape[2] * dy.shape[3]
    gf = dy.reshape(dy.size)
    mf = mask.reshape(mask.size)
    df = dx.reshape(dx.size)
    xf = x.reshape(x.size)
    zero = df.dtype.type(0)
    bad = 0
    for t in range(t0, t1):
        d0 = uint64(t * in_plane)
        g0 = uint64(t * out_plane)
        for q in range(uint64(in_plane)):
            df[d0 + q] = zero
        for o in range(uint64(out_plane)):
            m = mf[g0 + o]
            if m >= 0 and m < in_plane:
                df[d0 + uint64(m)] += gf[g0 + o]
            elif m != -1:
                bad += 1
        if relu_mask:
            _relu_mask_plane(xf, df, d0, in_plane)
    return bad


@njit(**_JIT)
def _run_sum(xf, s, kw, sw, out, d, n):
    """out[d+q] = sum of x[s+q*sw .. s+q*sw+kw) for q < n, left to right."""
    if kw == 3 and sw == 2:
        for q in range(n):
            c = s + q * uint64(2)
            out[d + q] = (xf[c] + xf[c + uint64(1)]) + xf[c + uint64(2)]
    elif kw == 2 and sw == 2:
        for q in range(n):
            c = s + q * uint64(2)
            out[d + q] = xf[c] + xf[c + uint64(1)]
    elif kw == 3 and sw == 1:
        for q in range(n):
            c = s + q
            out[d + q] = (xf[c] + xf[c + uint64(1)]) + xf[c + uint64(2)]
    else:
        usw = uint64(sw)
        for q in range(n):
            out[d + q] = 0
        for j in range(uint64(kw)):
            for q in range(n):
                out[d + q] += xf[s + q * usw + j]


@njit(**_JIT)
def ave_pool_planes(x, kh, kw, sh, sw, ph, pw, hsz, wsz, y, relu, t0, t1):
    """Caffe AVE pooling of planes [t0, t1): clipped-window sum / (hsz[oh]*wsz[ow]).
    ``relu`` stores 0 where the average is < 0, as Caffe's ReLU would.

    Row sums of every input row first (one flat run per plane when the
    windows tile the rows, as in _row_pass), then column sums of those."""
    h_n, w_n = x.shape[2], x.shape[3]
    oh_n, ow_n = y.shape[2], y.shape[3]
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    rs = np.empty(h_n * ow_n, x.dtype)
    den = np.empty(ow_n, x.dtype)
    a, b = _interior(kw, sw, pw, w_n, ow_n)
    uow = uint64(ow_n)
    zero = yf.dtype.type(0)
    for t in range(t0, t1):
        plane = uint64(t * h_n * w_n)
        if w_n == ow_n * sw:
            k1 = min(h_n * ow_n, (h_n * w_n - kw + pw) // sw + 1)
            if k1 > a:
                _run_sum(xf, plane + uint64(a * sw - pw), kw, sw, rs, uint64(a), uint64(k1 - a))
        elif b > a:
            for hh in range(h_n):
                _run_sum(xf, plane + uint64(hh * w_n + a * sw - pw), kw, sw, rs,
                         uint64(hh) * uow + uint64(a), uint64(b - a))
        for hh in range(h_n):
            for k in range(ow_n - (b - a)):
                ow = k if k < a else k + (b - a)
                ws = ow * sw - pw
                acc = zero
                for ww in range(max(ws, 0), min(ws + kw, w_n)):
                    acc += xf[plane + uint64(hh * w_n + ww)]
                rs[uint64(hh) * uow + uint64(ow)] = acc
        for oh in range(oh_n):
            hs = oh * sh - ph
            y0 = uint64(t * oh_n + oh) * uow
            for q in range(uow):
                yf[y0 + q] = zero
                den[q] = yf.dtype.type(hsz[oh] * wsz[q])
            for hh in range(max(hs, 0), min(hs + kh, h_n)):
                r0 = uint64(hh) * uow
                for q in range(uow):
                    yf[y0 + q] += rs[r0 + q]
            for q in range(uow):
                v = yf[y0 + q] / den[q]
                if relu:
                    v = zero if v < zero else v
                yf[y0 + q] = v


@njit(**_JIT)
def ave_pool_spread(dy, kh, kw, sh, sw, ph, pw, hsz, wsz, dx, x, relu_mask, t0, t1):
    """Planes [t0, t1) of dx: each dy / pool_size added over its clipped window,
    then, with ``relu_mask``, times (x > 0).

    Per output row: the row's gradients spread across columns into an L1
    row buffer, then that buffer added onto each input row of the window."""
    h_n, w_n = dx.shape[2], dx.shape[3]
    oh_n, ow_n = dy.shape[2], dy.shape[3]
    gf = dy.reshape(dy.size)
    df = dx.reshape(dx.size)
    xf = x.reshape(x.size)
    spread = np.empty(w_n, dx.dtype)
    zero = np.float32(0)
    for t in range(t0, t1):
        plane = uint64(t * h_n * w_n)
        for q in range(uint64(h_n * w_n)):
            df[plane + q] = zero
        for oh in range(oh_n):
            hs = oh * sh - ph
            h0, h1 = max(hs, 0), min(hs + kh, h_n)
            if h1 <= h0:
                continue
            for q in range(uint64(w_n)):
                spread[q] = zero
            g0 = uint64((t * oh_n + oh) * ow_n)
            for ow in range(ow_n):
                ws = ow * sw - pw
                g = gf[g0 + uint64(ow)] / np.float32(hsz[oh] * wsz[ow])
                for ww in range(max(ws, 0), min(ws + kw, w_n)):
                    spread[ww] += g
            for hh in range(h0, h1):
                dst = plane + uint64(hh * w_n)
                for q in range(uint64(w_n)):
                    df[dst + q] += spread[q]
        if relu_mask:
            _relu_mask_plane(xf, df, plane, h_n * w_n)


# ---------------------------------------------------------------------------
# Public-signature wrappers (numba_kernels re-exports them), NumPy arrays only.
# ---------------------------------------------------------------------------

def _geometry(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(pad)
    oh = pool_out_size(x.shape[2], kh, sh, ph)
    ow = pool_out_size(x.shape[3], kw, sw, pw)
    return kh, kw, sh, sw, ph, pw, oh, ow


@functools.lru_cache(maxsize=256)
def _ave_sizes(h, w, kh, kw, sh, sw, ph, pw, oh, ow):
    """AVE divisors per axis, computed once per geometry: building them with
    NumPy cost ~4 us a call, most of a batch-1 pool3."""
    return ave_pool_sizes(h, kh, sh, ph, oh), ave_pool_sizes(w, kw, sw, pw, ow)


def _check_out(name, a, shape, dtype):
    if a.shape != shape or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {shape} {np.dtype(dtype).name} array, "
                         f"got {a.shape} {a.dtype.name}")


_NO_MASK = np.empty((1, 1, 1, 1), np.int32)  # stands in for the mask argument when none is wanted


# Single-thread cost per input element in microseconds, measured at cifar10
# sizes on the dev machine (bench/results/pool_lrn.md): the work hints that
# let parallel_for keep small jobs on the calling thread.
_US_PER_ELEM = {"max": 0.0005, "max_mask": 0.0009, "scatter": 0.00025, "ave": 0.0007,
                "ave_back": 0.0012}


def pool_forward(x, method, kernel, stride, pad, out=None, mask=None, relu=False):
    """See tinycaffe.kernels.pool_forward."""
    x = np.ascontiguousarray(x)
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x, kernel, stride, pad)
    n, c, h, w = x.shape
    shape = (n, c, oh, ow)
    y = out if out is not None else np.empty(shape, dtype=x.dtype)
    _check_out("out", y, shape, x.dtype)
    relu = bool(relu)
    if method == "max":
        if mask is not None:
            _check_out("mask", mask, shape, np.int32)
        m = _NO_MASK if mask is None else mask
        want = mask is not None
        cost = _US_PER_ELEM["max_mask" if want else "max"] * x.size
        parallel_for(n * c, lambda lo, hi: max_pool_planes(x, kh, kw, sh, sw, ph, pw, y, m, want, relu, lo, hi),
                     work=cost)
    else:
        if mask is not None:
            raise ValueError("a mask exists only for MAX pooling")
        hsz, wsz = _ave_sizes(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
        parallel_for(n * c, lambda lo, hi: ave_pool_planes(x, kh, kw, sh, sw, ph, pw, hsz, wsz, y, relu, lo, hi),
                     work=_US_PER_ELEM["ave"] * x.size)
    return y


def pool_backward(x, y, dy, method, kernel, stride, pad, out=None, mask=None, relu_mask=False):
    """See tinycaffe.kernels.pool_backward."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x, kernel, stride, pad)
    n, c, h, w = x.shape
    if dy.shape != (n, c, oh, ow):
        raise ValueError(f"dy must have shape {(n, c, oh, ow)}, got {dy.shape}")
    dx = out if out is not None else np.empty_like(x)
    _check_out("out", dx, x.shape, x.dtype)
    relu = bool(relu_mask)
    if method == "max":
        if mask is None:  # find the winners again (the Pooling layer keeps the forward's mask instead)
            scratch_y = np.empty((n, c, oh, ow), x.dtype)
            scratch_m = np.empty((n, c, oh, ow), np.int32)

            def work(lo, hi):
                max_pool_planes(x, kh, kw, sh, sw, ph, pw, scratch_y, scratch_m, True, False, lo, hi)
                max_pool_scatter(dy, scratch_m, dx, x, relu, lo, hi)
            cost = (_US_PER_ELEM["max_mask"] + _US_PER_ELEM["scatter"]) * x.size
        else:
            _check_out("mask", mask, (n, c, oh, ow), np.int32)
            bad = []

            def work(lo, hi):
                bad.append(max_pool_scatter(dy, mask, dx, x, relu, lo, hi))
            cost = _US_PER_ELEM["scatter"] * x.size
        parallel_for(n * c, work, work=cost)
        if mask is not None and sum(bad):
            raise ValueError(f"mask holds {sum(bad)} index(es) that are neither -1 nor inside a "
                             f"{h}x{w} plane: not a mask of this input's pooling")
    else:
        hsz, wsz = _ave_sizes(h, w, kh, kw, sh, sw, ph, pw, oh, ow)
        parallel_for(n * c, lambda lo, hi: ave_pool_spread(dy, kh, kw, sh, sw, ph, pw, hsz, wsz, dx, x, relu,
                                                           lo, hi),
                     work=_US_PER_ELEM["ave_back"] * x.size)
    return dx
