"""Convolution forward without BLAS: pixel-major patches and a register-blocked dot kernel.

For the layer shapes small CNNs have (cifar10's 5x5 convolutions over 32-64
channels) the im2col + BLAS path of numba_conv spent about 20% of its time in
im2col, and OpenBLAS ran its thin GEMMs (32-64 rows) at 100-130 GFLOP/s
(bench/results/conv_profile.md, section 7).  This path does, per image:

1. ``pack_nhwc``: copy the image once into a zero-bordered (H+2ph, W+2pw, C)
   buffer.  A patch row of kernel row i, (kw columns x C channels), is then one
   contiguous run of kw*C floats (dilation 1).
2. For a block of ``PIXEL_BLOCK`` output pixels at a time, copy their patches
   (kh runs each) into a small pixel-major matrix ``colT`` (pixels x K, with
   K ordered (i, j, c)) that stays in L1, and
3. multiply it by the weights repacked once per call as wk (M, K) in the same
   (i, j, c) order: each (pixel, channel) output is a dot product over K.  The
   kernel keeps a 4 pixel x 4 channel block of 16 dot products in flight, so
   LLVM's loop vectoriser turns the K loop into 16 vector accumulators, with
   8 vector loads per 16 fused multiply-adds.  Bias and ReLU are applied as
   each result is stored straight into y (NCHW).

Only ``contract`` and ``reassoc`` fastmath flags are used, and only here: they
let LLVM fuse multiply-adds and reorder the K sum (Caffe's summation order is
not specified either).  NaN and inf semantics are unchanged.

Vector width: LLVM's x86 tuning prefers 256-bit vectors even where 512-bit
ones exist; ``_wide_vectors`` marks these kernels' LLVM functions with
``prefer-vector-width=512``, a target-independent function attribute (other
targets ignore it; on an AVX2-only CPU it falls back to 256 bits).  Where
llvmlite refuses the attribute, the kernels compile without it (same results,
narrower vectors).  Measured on the AVX-512 dev machine with a first version
(256-pixel patch blocks, unaligned rows): conv2 of cifar10_full 14.7 ms with
it, 16.7 ms without.

``eligible`` says which convolutions take this path: numba_conv.conv_forward
asks it first.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types, uint64
from numba.extending import intrinsic

from . import threads as threads_mod
from .scratch import scratch, scratch_aligned

_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
# Summation order free (contract: fused multiply-add; reassoc: vector partial
# sums over K).  No nnan/ninf/nsz: NaN, inf and signed zeros behave as IEEE.
_DOT = {**_JIT, "fastmath": {"contract", "reassoc"}}

# Output pixels whose patches are copied into colT at a time (one 4-pixel
# block of the dot kernel): 4 x K=800 floats, 12.8 KB, stays in L1 beside the
# weight rows.  cifar10_full conv2 (measured before rows were cache-line
# aligned): 10.6 ms at 4, 12.4 at 8 and 16, 12.9 at 256.
PIXEL_BLOCK = 4
# Which shapes take this path (eligible): a contiguous patch run kw*C of at
# least this many floats.  Shorter runs measured slower than im2col + BLAS:
# cifar10_full conv1 (kw*C = 15) 0.60x, AlexNet conv1 (33) 0.95x; GoogLeNet
# 3a/3x3 (288) ran 1.06x, a ResNet 3x3 over 64 channels (192) 1.12x and VGG-16
# conv1_2 (192) 0.97x (noise level) at batch 1 ...
MIN_RUN = 64
# ... and all weights within this many floats (320 KB), since every pixel
# block reads all of them.  cifar10_full conv3 is 51200; GoogLeNet's 3b/5x5
# (76800) ran 1.08x faster here.  GoogLeNet conv2/3x3 (110592, 56x56) ran
# 0.99x alone and 6% slower inside the net (its weights cold), 3a/3x3 (110592)
# 1.05x: both are left to im2col + BLAS, which blocks for the caches itself.
MAX_WEIGHTS = 80 * 1024
# ... and at least this many output pixels in the batch: the weights are
# repacked on every call (13 us for cifar10_full conv3), which only pays where
# there is enough work (first version: conv3 at batch 1, 64 pixels, 0.089 ms
# here against 0.081 through BLAS; conv2 at batch 1, 256 pixels, 0.147 against
# 0.169).
MIN_PIXELS = 128
# Slices per thread handed to the pool (as numba_conv), and the single-thread
# speed assumed for the serial threshold (threads.SERIAL_BELOW_US).
SLICES_PER_THREAD = 2
_FLOPS_PER_US = 1.2e5


@intrinsic
def _wide_vectors(typingctx):
    """Ask LLVM to vectorise the calling function with 512-bit vectors where the
    CPU has them (see the module docstring).  Compiles to nothing."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        try:  # a string attribute; llvmlite's add() only takes its known keywords
            attrs = builder.function.attributes
            set.add(attrs, '"prefer-vector-width"="512"')
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - another llvmlite
            pass  # compiled with the target's default vector width
        return context.get_dummy_value()

    return sig, codegen


def eligible(c, m, kh, kw, stride, dilation, group, pixels) -> bool:
    """Whether conv_forward of this shape, with ``pixels`` output pixels over the
    whole batch, runs here (see MIN_RUN, MAX_WEIGHTS, MIN_PIXELS)."""
    return (group == 1 and tuple(dilation) == (1, 1) and kw * c >= MIN_RUN
            and m * c * kh * kw <= MAX_WEIGHTS and pixels >= MIN_PIXELS
            and not (kh == kw == 1 and tuple(stride) == (1, 1)))


@njit(**_JIT)
def pack_weights(w, wk):
    """wk[m, (i*KW + j)*C + c] = w[m, c, i, j]: the patches' (i, j, c) order
    (12.8 us on 64x32x5x5, NumPy's transposing copy took 14.7); wk's rows may
    be longer than KH*KW*C, and their tail is zeroed."""
    m_n, c_n, kh, kw = w.shape
    wf = w.reshape(w.size)
    uc, ukk = uint64(c_n), uint64(kh * kw)
    zero = wk.dtype.type(0)
    for m in range(m_n):
        row = wk[m]
        src = uint64(m) * uc * ukk
        for q in range(ukk):
            d = q * uc
            for c in range(uc):
                row[d + c] = wf[src + c * ukk + q]
        for t in range(uc * ukk, uint64(row.size)):  # the row's zero padding
            row[t] = zero


@njit(**_JIT)
def pack_nhwc(x, n, ph, pw, xh):
    """xh[((h+ph)*(W+2pw) + w+pw)*C + c] = x[n, c, h, w], zero elsewhere in the
    first (H+2ph)*(W+2pw)*C elements of the flat buffer xh."""
    c_n, h_n, w_n = x.shape[1], x.shape[2], x.shape[3]
    wp = w_n + 2 * pw
    uc = uint64(c_n)
    xf = x.reshape(x.size)
    zero = xh.dtype.type(0)
    for r in range(h_n + 2 * ph):
        hh = r - ph
        base = uint64(r * wp) * uc
        if hh < 0 or hh >= h_n:
            for q in range(uint64(wp) * uc):
                xh[base + q] = zero
            continue
        for q in range(uint64(pw) * uc):
            xh[base + q] = zero
            xh[base + uint64(pw + w_n) * uc + q] = zero
        for c in range(c_n):
            s = uint64(((n * c_n + c) * h_n + hh) * w_n)
            d = base + uint64(pw) * uc + uint64(c)
            for q in range(uint64(w_n)):
                xh[d + q * uc] = xf[s + q]


@njit(**_JIT)
def _patches(xh, c_n, wp, kh, kw, sh, sw, ow_n, p0, p1, colT):
    """colT[p-p0, (i*kw + j)*C + c] = xh[((oh*sh+i)*wp + ow*sw+j)*C + c] for the
    output pixels p = oh*ow_n + ow in [p0, p1) (the rest of each row is left alone)."""
    run = uint64(kw * c_n)
    uc = uint64(c_n)
    cf = colT.reshape(colT.size)
    stride = uint64(colT.shape[1])
    for p in range(p0, p1):
        oh, ow = p // ow_n, p % ow_n
        d = uint64(p - p0) * stride
        for i in range(kh):
            s = (uint64(oh * sh + i) * uint64(wp) + uint64(ow * sw)) * uc
            dd = d + uint64(i) * run
            for t in range(run):
                cf[dd + t] = xh[s + t]


@njit(inline="always", **_JIT)
def _put(yf, i, v, bm, relu):
    v = v + bm
    if relu and v < 0:  # NaN stays NaN, as Caffe's ReLU keeps it
        v = yf.dtype.type(0)
    yf[i] = v


@njit(**_DOT)
def _dot_block(colT, npix, wk, b, has_bias, relu, yf, ybase, p_n):
    """yf[ybase + m*p_n + g] = colT[g] . wk[m] (+ b[m], then ReLU if ``relu``) for
    g < npix and every output channel m: 4 pixels x 4 channels per K sweep."""
    _wide_vectors()
    k_n = colT.shape[1]
    m_n = wk.shape[0]
    zero = yf.dtype.type(0)
    g = 0
    while g < npix:
        if g + 4 <= npix:
            x0 = colT[g]
            x1 = colT[g + 1]
            x2 = colT[g + 2]
            x3 = colT[g + 3]
            y0 = ybase + g
            m = 0
            while m + 4 <= m_n:
                # Sixteen named scalars, written out (and stored below one by one), not a 4x4
                # array: Numba keeps scalars in registers, an array would live on the stack.
                a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = zero
                a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = zero
                w0 = wk[m]
                w1 = wk[m + 1]
                w2 = wk[m + 2]
                w3 = wk[m + 3]
                for t in range(k_n):
                    a00 += x0[t] * w0[t]
                    a01 += x0[t] * w1[t]
                    a02 += x0[t] * w2[t]
                    a03 += x0[t] * w3[t]
                    a10 += x1[t] * w0[t]
                    a11 += x1[t] * w1[t]
                    a12 += x1[t] * w2[t]
                    a13 += x1[t] * w3[t]
                    a20 += x2[t] * w0[t]
                    a21 += x2[t] * w1[t]
                    a22 += x2[t] * w2[t]
                    a23 += x2[t] * w3[t]
                    a30 += x3[t] * w0[t]
                    a31 += x3[t] * w1[t]
                    a32 += x3[t] * w2[t]
                    a33 += x3[t] * w3[t]
                b0 = b[m] if has_bias else zero
                b1 = b[m + 1] if has_bias else zero
                b2 = b[m + 2] if has_bias else zero
                b3 = b[m + 3] if has_bias else zero
                o0 = y0 + m * p_n
                o1 = o0 + p_n
                o2 = o1 + p_n
                o3 = o2 + p_n
                _put(yf, o0, a00, b0, relu)
                _put(yf, o1, a01, b1, relu)
                _put(yf, o2, a02, b2, relu)
                _put(yf, o3, a03, b3, relu)
                _put(yf, o0 + 1, a10, b0, relu)
                _put(yf, o1 + 1, a11, b1, relu)
                _put(yf, o2 + 1, a12, b2, relu)
                _put(yf, o3 + 1, a13, b3, relu)
                _put(yf, o0 + 2, a20, b0, relu)
                _put(yf, o1 + 2, a21, b1, relu)
                _put(yf, o2 + 2, a22, b2, relu)
                _put(yf, o3 + 2, a23, b3, relu)
                _put(yf, o0 + 3, a30, b0, relu)
                _put(yf, o1 + 3, a31, b1, relu)
                _put(yf, o2 + 3, a32, b2, relu)
                _put(yf, o3 + 3, a33, b3, relu)
                m += 4
            first_single = g  # channels m_n % 4 left over for these 4 pixels
            last = g + 4
            g += 4
        else:
            m = 0
            first_single = g  # fewer than 4 pixels left: every channel one by one
            last = npix
            g = npix
        for gg in range(first_single, last):
            xr = colT[gg]
            for mm in range(m, m_n):
                wr = wk[mm]
                acc = zero
                for t in range(k_n):
                    acc += xr[t] * wr[t]
                _put(yf, ybase + mm * p_n + gg, acc, b[mm] if has_bias else zero, relu)


@njit(**_DOT)
def conv_units(x, wk, b, has_bias, relu, y, kh, kw, sh, sw, ph, pw, blocks, u0, u1, xh, colT):
    """Units u in [u0, u1) of y: image u // blocks, the (u % blocks)-th of
    ``blocks`` equal ranges of its output pixels.  xh: flat scratch of at least
    (H+2ph)*(W+2pw)*C; colT: 2-D scratch (PIXEL_BLOCK, K), K >= KH*KW*C, its
    columns past KH*KW*C zero, as are wk's."""
    _wide_vectors()
    c_n, w_n = x.shape[1], x.shape[3]
    m_n, oh_n, ow_n = y.shape[1], y.shape[2], y.shape[3]
    p_n = oh_n * ow_n
    wp = w_n + 2 * pw
    pb = colT.shape[0]
    yf = y.reshape(y.size)
    packed = -1
    for u in range(u0, u1):
        n = u // blocks
        part = u % blocks
        if n != packed:
            pack_nhwc(x, n, ph, pw, xh)
            packed = n
        q0 = p_n * part // blocks
        q1 = p_n * (part + 1) // blocks
        for p0 in range(q0, q1, pb):
            p1 = min(q1, p0 + pb)
            _patches(xh, c_n, wp, kh, kw, sh, sw, ow_n, p0, p1, colT)
            _dot_block(colT, p1 - p0, wk, b, has_bias, relu, yf, n * m_n * p_n + p0, p_n)



def conv_forward(x, w, b, stride, pad, y, relu) -> None:
    """y = conv(x, w) (+ b, then ReLU if ``relu``) for an ``eligible`` shape,
    written into the C-contiguous (N, M, OH, OW) array y.  Images (or, for a
    batch smaller than the pool, ranges of one image's pixels) go to the pool."""
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    _, _, oh, ow = y.shape
    p = oh * ow
    if n == 0 or p == 0:
        return
    dt = x.dtype
    # Rows of colT and wk padded with zeros to whole cache lines, and buffers
    # aligned to one: every vector load of the dot kernel then reads one line
    # (unaligned rows ran cifar10_full conv2 anywhere from 11 to 16 ms).
    k = -(-(kh * kw * c) * dt.itemsize // 64) * 64 // dt.itemsize
    # Repacked on every call (weights change in place while training), into the
    # caller's scratch: a warm call allocates nothing of the weights' size.
    wk = scratch_aligned("wpatch", m * k, dt).reshape(m, k)
    pack_weights(np.ascontiguousarray(w, dtype=dt), wk)
    has_bias = b is not None
    bb = np.ascontiguousarray(b, dtype=dt) if has_bias else wk[0]  # unread without a bias
    threads = threads_mod.get_num_threads()
    work = 2.0 * n * m * c * kh * kw * p / _FLOPS_PER_US
    split = threads > 1 and work >= threads_mod.SERIAL_BELOW_US
    blocks = 1
    if split and n < threads * SLICES_PER_THREAD:  # share a small batch's pixels
        blocks = max(1, min(-(-threads * SLICES_PER_THREAD // n), p // PIXEL_BLOCK))
    units = n * blocks
    ph, pw = pad
    sh, sw = stride
    xh_size = (h + 2 * ph) * (wd + 2 * pw) * c

    def run(lo, hi):
        xh = scratch("nhwc", xh_size, dt)
        colT = scratch_aligned("patches", PIXEL_BLOCK * k, dt).reshape(PIXEL_BLOCK, k)
        colT[:, kh * kw * c:] = 0  # the padding (_patches writes the rest)
        conv_units(x, wk, bb, has_bias, relu, y, kh, kw, sh, sw, ph, pw, blocks, lo, hi, xh, colT)

    threads_mod.parallel_for(units, run, work=work,
                             chunks=min(units, threads * SLICES_PER_THREAD))
