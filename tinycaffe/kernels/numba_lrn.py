"""Caffe LRN (local response normalisation) on the CPU, compiled with Numba.

WITHIN_CHANNEL (Caffe runs it as square -> AVE pool (kernel n, pad (n-1)/2,
stride 1) -> power(1 + alpha*s, -beta) -> product) is one fused pass per
(n, c) plane here: the plane's squares go into a scratch with zero rows
above and below, the n x n sums are two flat sweeps over the whole plane
(rows, then columns; the few row sums that a flat sweep carries across a
row's end are redone), every other step is one flat loop over the plane,
and the output is written straight from them.  Per-row loops over rows of
16 or 8 elements ran 3-4x slower than flat ones (too short to vectorise):
norm1's backward went from 2.1 to 1.6 ms (bench/results/train_step.md).  The
average's divisor n^2 is folded into alpha, and the backward's 1/scale
comes from the same square root as scale^-beta (beta 0.75, 0.5): up to two
divisions per element fewer, a few ulp apart from dividing.  The scratch is a few KB per thread
and stays in L1, so the layer reads x once and writes y once.  The backward
recomputes the plane's scale the same way from x, which it reads anyway,
rather than caching it as Caffe does (a cached scale would cost a write in
every forward and a read in the backward; the two were not compared), and
applies the AVE pooling's adjoint, which for this symmetric window is the
same n x n sum.

ACROSS_CHANNELS sums x^2 over neighbouring channels per image, then
y = x * (k + alpha/n * sum)^-beta; its backward sums dy*y/scale over the
mirrored channel window.

Plain portable Numba (no ISA-specific code), fastmath off, GIL-free serial
kernels over ranges handed out by ``threads.parallel_for``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from .threads import parallel_for

# The same options as numba_kernels._JIT (a test keeps them equal).
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)


@njit(**_JIT)
def _neg_pow(s, n, beta, shift, scale, out):
    """out[q] = (shift + scale*s[q]) ** -beta for q < n, in float32.

    beta 0.75 / 0.5 / 1 (every LRN in the Caffe model zoo) use sqrt and
    division, which vectorise (a few ulp); other betas call float32 pow
    (about 1 ulp; ~10x slower, and still 3x faster than pow in float64).
    The branch sits outside the loops so each loop vectorises."""
    one = np.float32(1)
    sh, sc = np.float32(shift), np.float32(scale)
    if beta == 0.75:
        for q in range(n):
            r = one / np.sqrt(sh + sc * s[q])
            out[q] = r * np.sqrt(r)
    elif beta == 0.5:
        for q in range(n):
            out[q] = one / np.sqrt(sh + sc * s[q])
    elif beta == 1.0:
        for q in range(n):
            out[q] = one / (sh + sc * s[q])
    else:
        nb = np.float32(-beta)
        for q in range(n):
            out[q] = (sh + sc * s[q]) ** nb


@njit(**_JIT)
def _neg_pow_inv(s, n, beta, scale, out, inv):
    """_neg_pow(s, n, beta, 1, scale, out) and inv[q] = 1 / (1 + scale*s[q]).

    For beta 0.75 and 0.5 the reciprocal comes from the same square root
    (r*r with r = 1/sqrt(S)), saving a division per element in the backward."""
    one = np.float32(1)
    sc = np.float32(scale)
    if beta == 0.75:
        for q in range(n):
            r = one / np.sqrt(one + sc * s[q])
            out[q] = r * np.sqrt(r)
            inv[q] = r * r
    elif beta == 0.5:
        for q in range(n):
            r = one / np.sqrt(one + sc * s[q])
            out[q] = r
            inv[q] = r * r
    elif beta == 1.0:
        for q in range(n):
            r = one / (one + sc * s[q])
            out[q] = r
            inv[q] = r
    else:
        nb = np.float32(-beta)
        for q in range(n):
            v = one + sc * s[q]
            out[q] = v ** nb
            inv[q] = one / v


@njit(**_JIT)
def _box_sum(src, rows, box, h_n, w_n, k):
    """box[h*W+w] = sum of the plane in ``src`` over the k x k window centred on
    (h, w), the window clipped to the plane (zero padding).

    ``src`` and ``rows`` hold the plane (pitch W, unpadded) at offset p*W with
    p*W zeros before and after it, never written here.  Both sums are flat
    sweeps over the whole plane: with rows of 16 or 8 elements, per-row loops
    ran 3-4x slower (too short to vectorise).  The row sums' flat sweep
    reads across row ends at each row's first and last p entries; those are
    summed again, clipped, in the same order.  The column sums read the zero
    rows at the top and bottom.  Sums run left to right, top to bottom.
    The callers fold the average's divisor k^2 (the same everywhere: Caffe's
    pooling there counts the padding) into alpha, saving a division per
    element: alpha/k^2 * sum instead of alpha * (sum / k^2), a rounding apart."""
    p = (k - 1) // 2
    o = uint64(p * w_n)
    n = uint64(h_n * w_n)
    up = uint64(p)
    for q in range(n):
        rows[o + q] = src[o + q - up]
    for j in range(uint64(1), uint64(2 * p + 1)):
        for q in range(n):
            rows[o + q] += src[o + q - up + j]
    if p > 0:
        lo_end = min(p, w_n)
        hi_start = max(w_n - p, lo_end)
        for h in range(h_n):
            r0 = o + uint64(h * w_n)
            for w in range(lo_end):
                acc = src[r0 + uint64(max(w - p, 0))]
                for ww in range(max(w - p, 0) + 1, min(w + p + 1, w_n)):
                    acc += src[r0 + uint64(ww)]
                rows[r0 + uint64(w)] = acc
            for w in range(hi_start, w_n):
                acc = src[r0 + uint64(max(w - p, 0))]
                for ww in range(max(w - p, 0) + 1, min(w + p + 1, w_n)):
                    acc += src[r0 + uint64(ww)]
                rows[r0 + uint64(w)] = acc
    for q in range(n):
        box[q] = rows[q]
    for i in range(uint64(1), uint64(2 * p + 1)):
        si = i * uint64(w_n)
        for q in range(n):
            box[q] += rows[si + q]


@njit(**_JIT)
def lrn_within_forward(x, k, alpha, beta, y, t0, t1):
    """y = x * (1 + alpha * AVE_k(x^2))^-beta for planes [t0, t1)."""
    h_n, w_n = x.shape[2], x.shape[3]
    p = (k - 1) // 2
    plane = uint64(h_n * w_n)
    o = uint64(p * w_n)
    size = h_n * w_n + 2 * p * w_n
    sq = np.zeros(size, x.dtype)  # the pads stay zero: only the plane is rewritten
    rows = np.zeros(size, x.dtype)
    box = np.empty(h_n * w_n, x.dtype)
    pw = np.empty(h_n * w_n, x.dtype)
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    a_area = alpha / (k * k)
    for t in range(t0, t1):
        base = uint64(t) * plane
        for q in range(plane):
            v = xf[base + q]
            sq[o + q] = v * v
        _box_sum(sq, rows, box, h_n, w_n, k)
        _neg_pow(box, plane, beta, 1.0, a_area, pw)
        for q in range(plane):
            yf[base + q] = xf[base + q] * pw[q]


@njit(**_JIT)
def lrn_within_backward(x, y, dy, k, alpha, beta, dx, relu_mask, t0, t1):
    """dx = dy * S^-beta - 2*alpha*beta/k^2 * x * boxsum_k(dy * y / S), with
    S = 1 + alpha * AVE_k(x^2) recomputed per plane, for planes [t0, t1);
    with ``relu_mask`` times (x > 0) (an in-place ReLU's backward on x)."""
    h_n, w_n = x.shape[2], x.shape[3]
    p = (k - 1) // 2
    plane = uint64(h_n * w_n)
    o = uint64(p * w_n)
    size = h_n * w_n + 2 * p * w_n
    sq = np.zeros(size, x.dtype)
    rows = np.zeros(size, x.dtype)
    box = np.empty(h_n * w_n, x.dtype)
    pw = np.empty(h_n * w_n, x.dtype)
    inv = np.empty(h_n * w_n, x.dtype)
    xf, yf, gf, df = x.reshape(x.size), y.reshape(y.size), dy.reshape(dy.size), dx.reshape(dx.size)
    a_area = alpha / (k * k)
    coef = np.float32(2.0 * beta * alpha / (k * k))
    zero = np.float32(0)
    for t in range(t0, t1):
        base = uint64(t) * plane
        for q in range(plane):
            v = xf[base + q]
            sq[o + q] = v * v
        _box_sum(sq, rows, box, h_n, w_n, k)
        _neg_pow_inv(box, plane, beta, a_area, pw, inv)
        for q in range(plane):  # dy*y/S, for the adjoint sum
            sq[o + q] = (gf[base + q] * yf[base + q]) * inv[q]
        _box_sum(sq, rows, box, h_n, w_n, k)
        if relu_mask:
            for q in range(plane):
                v = xf[base + q]
                df[base + q] = (gf[base + q] * pw[q] - coef * v * box[q]) * np.float32(v > zero)
        else:
            for q in range(plane):
                df[base + q] = gf[base + q] * pw[q] - coef * xf[base + q] * box[q]


@njit(**_JIT)
def _add_squares(xf, start, plane, run, sign):
    """run += sign * x^2 over one channel plane at flat offset ``start`` (the running
    channel-window sum both across-channel passes keep; sign is +1 or -1, so exact)."""
    sg = run.dtype.type(sign)
    for q in range(plane):
        v = xf[start + q]
        run[q] += sg * (v * v)


@njit(**_JIT)
def lrn_across_forward(x, n_size, alpha, beta, k, y, t0, t1):
    """Across channels, for images [t0, t1): scale = k + alpha/n * (sum of x^2
    over channels c-(n-1)/2 .. c+n/2 clipped), y = x * scale^-beta.

    Per image the squares are summed channel by channel with a running sum
    (add the entering channel, subtract the leaving one), as Caffe does; so,
    as in Caffe, an inf in one channel turns the later channels' scale NaN."""
    c_n = x.shape[1]
    plane = uint64(x.shape[2] * x.shape[3])
    pre = (n_size - 1) // 2
    post = n_size - 1 - pre
    xf = x.reshape(x.size)
    yf = y.reshape(y.size)
    run = np.empty(plane, x.dtype)
    pw = np.empty(plane, x.dtype)
    a_n = alpha / n_size
    for t in range(t0, t1):
        img = uint64(t * c_n) * plane
        for q in range(plane):
            run[q] = 0
        for cc in range(min(post, c_n)):
            _add_squares(xf, img + uint64(cc) * plane, plane, run, 1.0)
        for c in range(c_n):
            head = c + post
            if head < c_n:
                _add_squares(xf, img + uint64(head) * plane, plane, run, 1.0)
            tail = c - pre - 1
            if tail >= 0:
                _add_squares(xf, img + uint64(tail) * plane, plane, run, -1.0)
            o = img + uint64(c) * plane
            _neg_pow(run, plane, beta, k, a_n, pw)
            for q in range(plane):
                yf[o + q] = xf[o + q] * pw[q]


@njit(**_JIT)
def lrn_across_backward(x, y, dy, n_size, alpha, beta, k, dx, relu_mask, t0, t1):
    """Across channels, for images [t0, t1): dx = dy * scale^-beta
    - 2*alpha*beta/n * x * (sum of dy*y/scale over channels c-n/2 .. c+(n-1)/2),
    with ``relu_mask`` times (x > 0).

    Per image: scale per channel by the forward's running sum, kept for the
    image in scratch; the ratio's mirrored-window sum by a second running sum."""
    c_n = x.shape[1]
    plane = uint64(x.shape[2] * x.shape[3])
    pre = (n_size - 1) // 2
    post = n_size - 1 - pre
    xf, yf, gf, df = x.reshape(x.size), y.reshape(y.size), dy.reshape(dy.size), dx.reshape(dx.size)
    scale = np.empty(uint64(c_n) * plane, x.dtype)
    ratio = np.empty(uint64(c_n) * plane, x.dtype)
    run = np.empty(plane, x.dtype)
    pw = np.empty(plane, x.dtype)
    sh32 = np.float32(k)
    a_n = np.float32(alpha / n_size)
    coef = np.float32(2.0 * alpha * beta / n_size)
    for t in range(t0, t1):
        img = uint64(t * c_n) * plane
        for q in range(plane):
            run[q] = 0
        for cc in range(min(post, c_n)):
            _add_squares(xf, img + uint64(cc) * plane, plane, run, 1.0)
        for c in range(c_n):
            head = c + post
            if head < c_n:
                _add_squares(xf, img + uint64(head) * plane, plane, run, 1.0)
            tail = c - pre - 1
            if tail >= 0:
                _add_squares(xf, img + uint64(tail) * plane, plane, run, -1.0)
            o = img + uint64(c) * plane
            r = uint64(c) * plane
            for q in range(plane):
                sc = sh32 + a_n * run[q]
                scale[r + q] = sc
                ratio[r + q] = (gf[o + q] * yf[o + q]) / sc
        # Channel c received from outputs c-post .. c+pre: the mirrored window.
        for q in range(plane):
            run[q] = 0
        for cc in range(min(pre, c_n)):
            r = uint64(cc) * plane
            for q in range(plane):
                run[q] += ratio[r + q]
        for c in range(c_n):
            head = c + pre
            if head < c_n:
                r = uint64(head) * plane
                for q in range(plane):
                    run[q] += ratio[r + q]
            tail = c - post - 1
            if tail >= 0:
                r = uint64(tail) * plane
                for q in range(plane):
                    run[q] -= ratio[r + q]
            o = img + uint64(c) * plane
            r = uint64(c) * plane
            _neg_pow(scale[r:r + plane], plane, beta, 0.0, 1.0, pw)
            if relu_mask:
                for q in range(plane):
                    v = xf[o + q]
                    df[o + q] = (gf[o + q] * pw[q] - coef * v * run[q]) * np.float32(v > np.float32(0))
            else:
                for q in range(plane):
                    df[o + q] = gf[o + q] * pw[q] - coef * xf[o + q] * run[q]


# ---------------------------------------------------------------------------
# Public-signature wrappers (numba_kernels re-exports them), NumPy arrays only.
# ---------------------------------------------------------------------------

# Single-thread cost per element in microseconds at cifar10 sizes on the dev
# machine (bench/results/pool_lrn.md): work hints for parallel_for.
_US_PER_ELEM = {"within": 0.0016, "within_back": 0.004, "across": 0.003, "across_back": 0.008}


def _check_size(local_size):
    if local_size < 1 or local_size % 2 == 0:
        raise ValueError(f"LRN local_size must be odd and positive (as Caffe requires), got {local_size}")


def _check_out(a, shape, dtype):
    if a.shape != shape or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {shape} {np.dtype(dtype).name} array, "
                         f"got {a.shape} {a.dtype.name}")


def lrn_forward(x, local_size, alpha, beta, k, region, out=None):
    """See tinycaffe.kernels.lrn_forward."""
    x = np.ascontiguousarray(x)
    y = out if out is not None else np.empty_like(x)
    _check_out(y, x.shape, x.dtype)
    n, c = x.shape[:2]
    size, a, b = int(local_size), float(alpha), float(beta)
    _check_size(size)
    if region == "across":
        parallel_for(n, lambda lo, hi: lrn_across_forward(x, size, a, b, float(k), y, lo, hi),
                     work=_US_PER_ELEM["across"] * x.size)
    else:
        parallel_for(n * c, lambda lo, hi: lrn_within_forward(x, size, a, b, y, lo, hi),
                     work=_US_PER_ELEM["within"] * x.size)
    return y


def lrn_backward(x, y, dy, local_size, alpha, beta, k, region, out=None, relu_mask=False):
    """See tinycaffe.kernels.lrn_backward."""
    x, y, dy = np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(dy)
    if y.shape != x.shape or dy.shape != x.shape:
        raise ValueError(f"y and dy must have x's shape {x.shape}, got {y.shape} and {dy.shape}")
    dx = out if out is not None else np.empty_like(x)
    _check_out(dx, x.shape, x.dtype)
    n, c = x.shape[:2]
    size, a, b = int(local_size), float(alpha), float(beta)
    _check_size(size)
    rm = bool(relu_mask)
    if region == "across":
        parallel_for(n, lambda lo, hi: lrn_across_backward(x, y, dy, size, a, b, float(k), dx, rm, lo, hi),
                     work=_US_PER_ELEM["across_back"] * x.size)
    else:
        parallel_for(n * c, lambda lo, hi: lrn_within_backward(x, y, dy, size, a, b, dx, rm, lo, hi),
                     work=_US_PER_ELEM["within_back"] * x.size)
    return dx
