"""Convolution on the CPU: im2col tiles and single-threaded BLAS GEMMs over the pool.

How a convolution is cut up (measured choices: bench/results/conv_profile.md):

* The output is seen as rows r = n*OH + oh (image n, output row oh).  A
  *tile* is a range of rows: either whole images, or a block of rows of one
  image (large images, or fewer images than threads).  Each tile's column
  matrix (K = C*KH*KW rows, one column per output pixel of the tile) is sized
  to stay in the core's L2 cache (``COL_BYTES``) where K allows, and is filled
  just before its GEMM reads it.
* A batch smaller than the thread count whose images are too small for fat row
  blocks (GoogLeNet's 7x7 layers at batch 1) is split over output channels
  instead: one im2col of the batch split over input channels, then each thread
  multiplies a block of at least ``MIN_BLOCK_M`` filters.
* Tiles go to the shared pool (threads.py), each thread with its own scratch
  buffers (scratch.py), kept between calls and grown only when a larger shape
  arrives: once warm, a forward call allocates only small bookkeeping, and a
  backward call only its weight-gradient partials (one per slice), never
  column matrices.  Work below threads.SERIAL_BELOW_US runs on the calling
  thread.
* A tile within one image is multiplied straight into the output (BLAS writes
  the strided view); a tile of several images goes through a small tile-sized
  buffer.  Bias and (optionally) ReLU are applied in that same pass over the
  tile, while it is in cache.
* 1x1, stride-1, unpadded convolutions skip im2col: the input already is the
  column matrix.
* The forward of few-channel shapes (cifar10's 5x5 layers; see
  numba_patch_conv.eligible) runs in numba_patch_conv instead: no im2col, no
  BLAS, 1.3-1.5x faster there.
* Backward works on whole images per tile (col2im of neighbouring rows would
  otherwise collide): the weight gradient is one GEMM per tile over all of its
  images' pixels (dy of the tile gathered to (M, pixels)), not one per image;
  dx is W^T @ dy then col2im into ``dx_out``; weight/bias gradients are
  *added* into caller-given ``dw_out``/``db_out`` (Caffe accumulates them).
  Without groups and with few output channels (dW computed transposed) the
  bias gradient is one more row of the weight-gradient GEMM (a row of ones
  under the column matrix); for float32 with NumPy's
  OpenBLAS found, a whole slice of tiles is one GIL-free Numba call that
  calls BLAS itself (numba_conv_backward.py, numba_cblas.py).
* conv_transpose (Deconvolution's forward) is that dx computation on its own.

Kernels are plain serial Numba (portable, no intrinsics), GIL-free; flat
``uint64`` offsets in the inner loops let LLVM vectorise them (a signed index
keeps Numba's wrap-around check, measured 4-5x slower on im2col).
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from . import numba_patch_conv
from . import threads as threads_mod
from . import numba_cblas as cblas
from .numba_col2im import col2im_planes
from .scratch import scratch
from .sizes import conv_out_size, pair
from .threads import get_num_threads, parallel_for, will_split

# fastmath off: results stay within float32 rounding of Caffe's.
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

# A tile's column matrix is kept about this size (the dev machine has 2 MB of
# L2 per core; conv2 of cifar10_full is 800 KB per image).
COL_BYTES = 1 << 20
# Tiles get at least this many columns where they can (several small images
# per tile), and never fewer when K is in the thousands: thinner GEMMs ran
# well below BLAS's speed.
MIN_TILE_COLS = 256
# Where a tile of MIN_TILE_COLS columns cannot fit COL_BYTES (large K), whole
# images are kept up to this column-matrix size before rows are cut.
BIG_COL_BYTES = 16 << 20
# The weight gradient is computed transposed (dW^T = col @ dy^T) when a group
# has fewer output channels than this (conv_backward says why).
DW_TRANSPOSED_BELOW = 128
# Threads that share a small batch's output channels get at least this many
# each (thinner blocks measured 20-100% more CPU time than one whole GEMM).
MIN_BLOCK_M = 32
# Slices per thread handed to the pool: more slices balance a busy core better.
SLICES_PER_THREAD = 2
# Single-thread speed used to estimate a job's time for the serial threshold:
# 140 GFLOP/s, what the BVLC layer shapes measured (125-155; cifar10_full's
# thin layers 90-120).  A lower figure sent GoogLeNet's 0.12 ms 1x1 layers to
# two threads, where the split cost more than it saved (conv_profile.md).
_FLOPS_PER_US = 1.4e5


# --------------------------------------------------------------------------- jitted
@njit(**_JIT)
def im2col_rows(x, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, r0, r1, col, plane, c0, c1):
    """col[(c*kh+i)*kw+j, (r-r0)*ow_n+ow] = x[n, c, oh*sh-ph+i*dh, ow*sw-pw+j*dw]
    (0 outside x) for output rows r = n*oh_n + oh in [r0, r1) and channels
    c in [c0, c1) (the other rows of col are left alone).

    col: C-contiguous 2-D with C*kh*kw rows and at least (r1-r0)*ow_n columns.
    plane: 1-D scratch of at least (H+2ph)*(W+2pw) elements; each channel's
    input rows are first copied into it with their zero border, so the
    gathers below need no bounds logic."""
    c_n, h_n, w_n = x.shape[1], x.shape[2], x.shape[3]
    wp = w_n + 2 * pw
    ncol = col.shape[1]
    xf = x.reshape(x.size)
    cf = col.reshape(col.size)
    usw, uow, uw, upw, uwp = uint64(sw), uint64(ow_n), uint64(w_n), uint64(pw), uint64(wp)
    zero = plane.dtype.type(0)
    r = r0
    while r < r1:
        n = r // oh_n
        oh0 = r - n * oh_n
        oh1 = min(oh_n, oh0 + (r1 - r))
        pr0 = oh0 * sh  # padded input rows [pr0, pr1) feed output rows [oh0, oh1)
        pr1 = (oh1 - 1) * sh + (kh - 1) * dh + 1
        cb = (r - r0) * ow_n
        for c in range(c0, c1):
            src = (n * c_n + c) * h_n * w_n
            for pr in range(pr0, pr1):
                hh = pr - ph
                d0 = uint64((pr - pr0) * wp)
                if hh < 0 or hh >= h_n:
                    for q in range(uwp):
                        plane[d0 + q] = zero
                else:
                    s0 = uint64(src + hh * w_n)
                    for q in range(upw):
                        plane[d0 + q] = zero
                    for q in range(uw):
                        plane[d0 + upw + q] = xf[s0 + q]
                    for q in range(upw):
                        plane[d0 + upw + uw + q] = zero
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oh in range(oh0, oh1):
                        d = uint64(row * ncol + cb + (oh - oh0) * ow_n)
                        s = uint64((oh * sh + i * dh - pr0) * wp + j * dw)
                        for q in range(uow):
                            cf[d + q] = plane[s + q * usw]
        r += oh1 - oh0


@njit(**_JIT)
def scatter_rows(tmp, b, has_bias, relu, y, oh_n, ow_n, r0, r1):
    """y[n, m, oh, :] = tmp[m, (r-r0)*ow_n : ...] (+ b[m]) (then max(., 0) if
    ``relu``, NaN kept as Caffe's ReLU keeps it) for rows r = n*oh_n + oh in [r0, r1)."""
    m_n = y.shape[1]
    p = oh_n * ow_n
    ncol = tmp.shape[1]
    tf = tmp.reshape(tmp.size)
    yf = y.reshape(y.size)
    zero = yf.dtype.type(0)
    r = r0
    while r < r1:  # one run of rows per image: contiguous in tmp and in y
        n = r // oh_n
        oh0 = r - n * oh_n
        oh1 = min(oh_n, oh0 + (r1 - r))
        length = uint64((oh1 - oh0) * ow_n)
        for m in range(m_n):
            bm = b[m] if has_bias else zero
            s = uint64(m * ncol + (r - r0) * ow_n)
            d = uint64((n * m_n + m) * p + oh0 * ow_n)
            if relu:
                for q in range(length):
                    v = tf[s + q] + bm
                    yf[d + q] = zero if v < zero else v
            else:
                for q in range(length):
                    yf[d + q] = tf[s + q] + bm
        r += oh1 - oh0


@njit(**_JIT)
def bias_relu_rows(y, b, has_bias, relu, oh_n, ow_n, r0, r1, m0, m1):
    """In place on rows r = n*oh_n + oh in [r0, r1) of channels [m0, m1) of y: add
    b[m], then max(., 0) if ``relu``."""
    m_n = y.shape[1]
    p = oh_n * ow_n
    yf = y.reshape(y.size)
    zero = yf.dtype.type(0)
    r = r0
    while r < r1:
        n = r // oh_n
        oh0 = r - n * oh_n
        oh1 = min(oh_n, oh0 + (r1 - r))
        length = uint64((oh1 - oh0) * ow_n)
        for m in range(m0, m1):
            bm = b[m] if has_bias else zero
            d = uint64((n * m_n + m) * p + oh0 * ow_n)
            if relu:
                for q in range(length):
                    v = yf[d + q] + bm
                    yf[d + q] = zero if v < zero else v
            else:
                for q in range(length):
                    yf[d + q] += bm
        r += oh1 - oh0


@njit(**_JIT)
def gather_images(dy, n0, n1, out):
    """out[m, (n-n0)*P + p] = dy[n, m, p] for images [n0, n1); dy (N, M, P), out 2-D."""
    m_n, p = dy.shape[1], dy.shape[2]
    ncol = out.shape[1]
    df = dy.reshape(dy.size)
    of = out.reshape(out.size)
    up = uint64(p)
    for n in range(n0, n1):
        for m in range(m_n):
            s = uint64((n * m_n + m) * p)
            d = uint64(m * ncol + (n - n0) * p)
            for q in range(up):
                of[d + q] = df[s + q]


# --------------------------------------------------------------------------- planning
class _Geometry:
    """Shapes and the tile plan of one convolution call (cached per shape)."""

    __slots__ = ("n", "c", "h", "w", "m", "cg", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw",
                 "oh", "ow", "group", "mg", "kg", "k", "is_1x1", "tiles", "flops", "images_per_tile",
                 "mblocks")

    def __init__(self, xshape, wshape, stride, pad, dilation, group, whole_images, threads):
        (self.sh, self.sw), (self.ph, self.pw), (self.dh, self.dw) = pair(stride), pair(pad), pair(dilation)
        self.n, self.c, self.h, self.w = xshape
        self.m, self.cg, self.kh, self.kw = wshape
        self.group = int(group)
        self.oh = conv_out_size(self.h, self.kh, self.sh, self.ph, self.dh)
        self.ow = conv_out_size(self.w, self.kw, self.sw, self.pw, self.dw)
        self.mg, self.kg = self.m // self.group, self.cg * self.kh * self.kw
        self.k = self.c * self.kh * self.kw
        self.is_1x1 = (self.kh == self.kw == 1 and (self.sh, self.sw, self.ph, self.pw) == (1, 1, 0, 0))
        p = self.oh * self.ow
        self.flops = 2.0 * self.n * self.m * self.kg * p
        self.tiles, self.images_per_tile, self.mblocks = [], 0, []
        if p <= 0 or self.n <= 0:
            return
        fit = COL_BYTES // (4 * max(self.k, 1))  # columns whose col matrix fits COL_BYTES
        # Most columns per tile: an L2-sized tile where one of MIN_TILE_COLS fits;
        # else (K in the thousands) whole images up to BIG_COL_BYTES, since
        # thinner tiles then only cost GEMM speed (measured: AlexNet conv2,
        # VGG conv4_2 at batch 1 ran 10-20% slower cut into 256 columns).
        cols = fit if fit >= MIN_TILE_COLS else max(MIN_TILE_COLS, BIG_COL_BYTES // (4 * max(self.k, 1)))
        # Not will_split(): a plan is cached, so it must not depend on the calling
        # thread (parallel_for itself keeps a nested call on its worker).
        split = threads > 1 and self.n * self.oh > 1 and self.flops / _FLOPS_PER_US >= threads_mod.SERIAL_BELOW_US
        want = threads * SLICES_PER_THREAD if split else 1  # tiles wanted for the pool
        if whole_images or (p <= cols and self.n >= (threads if split else 1)):
            # Several images per tile only to reach MIN_TILE_COLS columns: a tile of
            # several images goes through a buffer, one of a single image does not.
            nb = max(1, min(self.n, -(-MIN_TILE_COLS // p), cols // p))
            if split:  # enough tiles for every thread
                nb = max(1, min(nb, -(-self.n // want)))
            self.images_per_tile = nb
            self.tiles = [(i * self.oh, min(self.n, i + nb) * self.oh) for i in range(0, self.n, nb)]
            return
        if not whole_images and split and self.n < threads and self.n * p < threads * MIN_TILE_COLS:
            # Too few pixels to cut into fat tiles (GoogLeNet's 7x7 layers at batch 1
            # ran 2x slower on 2 threads cut into rows): the threads share the
            # output channels instead, after one im2col split over input channels.
            self.mblocks = self._channel_blocks(threads)
            self.images_per_tile = 1
            self.tiles = [(i * self.oh, (i + 1) * self.oh) for i in range(self.n)]
            return
        # Row blocks within each image: a large image, or fewer images than threads
        # (then one block per thread: more, thinner ones cost GEMM speed).
        blocks = min(self.oh, max(-(-p // cols), -(-threads // self.n) if split else 1))
        for i in range(self.n):
            for bk in range(blocks):
                a, b = self.oh * bk // blocks, self.oh * (bk + 1) // blocks
                if b > a:
                    self.tiles.append((i * self.oh + a, i * self.oh + b))

    def _channel_blocks(self, threads):
        """(group, m0, m1) blocks of output channels, one per thread where each keeps
        at least MIN_BLOCK_M channels; [] when fewer than two such blocks exist."""
        g_n, mg = self.group, self.mg
        per = 1 if g_n >= threads else min(-(-threads // g_n), mg // MIN_BLOCK_M)
        if g_n * max(per, 1) < 2:
            return []
        per = max(per, 1)
        return [(g, mg * i // per, mg * (i + 1) // per) for g in range(g_n) for i in range(per)]


_plans: dict = {}


def _plan(xshape, wshape, stride, pad, dilation, group, whole_images) -> _Geometry:
    threads = get_num_threads()
    key = (xshape, wshape, stride, pad, dilation, group, whole_images, threads)
    g = _plans.get(key)
    if g is None:
        if len(_plans) > 512:  # many shapes (a sweep): start over rather than grow
            _plans.clear()
        g = _plans[key] = _Geometry(xshape, wshape, stride, pad, dilation, group, whole_images, threads)
    return g


def _norm(v):
    return v if isinstance(v, tuple) else tuple(pair(v))


def _check_out(name, a, shape, dtype):
    if a is not None and (a.shape != shape or not a.flags.c_contiguous or a.dtype != dtype):
        raise ValueError(f"{name} must be a C-contiguous {shape} {np.dtype(dtype).name} array, "
                         f"got {a.shape} {a.dtype}")


def _out_or_new(out, shape, dtype):
    """The caller's checked ``out`` buffer, or a new array of ``shape``."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    _check_out("out", out, shape, dtype)
    return out


_NO_BIAS = {}


def _no_bias(dtype):
    z = _NO_BIAS.get(np.dtype(dtype).str)
    if z is None:
        z = _NO_BIAS[np.dtype(dtype).str] = np.zeros(1, dtype=dtype)
    return z


# --------------------------------------------------------------------------- forward
def conv_forward(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1, out=None,
                 relu=False):
    """See tinycaffe.kernels.conv_forward."""
    x = np.ascontiguousarray(x)
    dt = x.dtype
    geo = _plan(x.shape, w.shape, _norm(stride), _norm(pad), _norm(dilation), int(group), False)
    n, m, oh, ow = geo.n, geo.m, geo.oh, geo.ow
    shape = (n, m, oh, ow)
    y = _out_or_new(out, shape, dt)
    if not geo.tiles:
        return y
    if numba_patch_conv.eligible(geo.c, m, geo.kh, geo.kw, (geo.sh, geo.sw), (geo.dh, geo.dw), geo.group,
                                 n * oh * ow):
        # Few-channel shapes (cifar10's 5x5 layers): no im2col, no BLAS.
        numba_patch_conv.conv_forward(x, w, b, (geo.sh, geo.sw), (geo.ph, geo.pw), y, relu)
        return y
    p = oh * ow
    wg = np.ascontiguousarray(w, dtype=dt).reshape(geo.group, geo.mg, geo.kg)
    has_bias = b is not None
    bb = np.ascontiguousarray(b, dtype=dt) if has_bias else _no_bias(dt)
    relu = bool(relu)
    y3 = y.reshape(n, m, p)
    x3 = x.reshape(n, geo.c, geo.h * geo.w)
    tiles = geo.tiles
    G, mg, kg, cg = geo.group, geo.mg, geo.kg, geo.cg
    plane_size = (geo.h + 2 * geo.ph) * (geo.w + 2 * geo.pw)
    max_cols = max(r1 - r0 for r0, r1 in tiles) * ow
    # Without groups the bias rides in the GEMM of a single-image tile: a row of
    # ones under the columns and b as an extra weight column, which saves a
    # pass over the tile's output (5% of cifar10_full conv1 when measured).
    # Building that weight matrix costs a copy of w: only worth it when the
    # output is much larger than the weights.
    fold = has_bias and G == 1 and not geo.is_1x1 and n * p >= 4 * (geo.k + 1)
    kf = geo.k + fold
    if fold:
        w_fold = scratch("wfold", m * kf, dt).reshape(m, kf)
        w_fold[:, :geo.k] = wg[0]
        w_fold[:, geo.k] = bb

    if geo.mblocks:
        _forward_by_channels(geo, x, x3, wg, w_fold if fold else None, bb, has_bias, relu, y, y3)
        return y

    def run(lo, hi):
        if not geo.is_1x1:
            colbuf = scratch("col", kf * max_cols, dt)
            plane = scratch("plane", plane_size, dt)
        tmpbuf = scratch("ytile", m * max_cols, dt) if geo.images_per_tile > 1 else None
        for t in range(lo, hi):
            r0, r1 = tiles[t]
            n0, oh0 = divmod(r0, oh)
            ncol = (r1 - r0) * ow
            single = r1 - r0 <= oh and (r1 - 1) // oh == n0  # rows of one image
            if geo.is_1x1:
                if single:
                    p0, p1 = oh0 * ow, oh0 * ow + ncol
                    for g in range(G):
                        np.matmul(wg[g], x3[n0, g * cg:(g + 1) * cg, p0:p1],
                                  out=y3[n0, g * mg:(g + 1) * mg, p0:p1])
                else:
                    n1 = r1 // oh
                    for g in range(G):
                        np.matmul(wg[g], x3[n0:n1, g * cg:(g + 1) * cg],
                                  out=y3[n0:n1, g * mg:(g + 1) * mg])
                if has_bias or relu:
                    bias_relu_rows(y, bb, has_bias, relu, oh, ow, r0, r1, 0, m)
                continue
            col = colbuf[:kf * ncol].reshape(kf, ncol)
            im2col_rows(x, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh, geo.dw,
                        oh, ow, r0, r1, col, plane, 0, geo.c)
            if single:  # straight into y's (strided) view, then bias/ReLU in place
                p0 = oh0 * ow
                if fold:
                    col[geo.k] = 1
                    np.matmul(w_fold, col, out=y3[n0, :, p0:p0 + ncol])
                else:
                    for g in range(G):
                        np.matmul(wg[g], col[g * kg:(g + 1) * kg],
                                  out=y3[n0, g * mg:(g + 1) * mg, p0:p0 + ncol])
                if (has_bias and not fold) or relu:
                    bias_relu_rows(y, bb, has_bias and not fold, relu, oh, ow, r0, r1, 0, m)
            else:
                tmp = tmpbuf[:m * ncol].reshape(m, ncol)
                for g in range(G):
                    np.matmul(wg[g], col[g * kg:(g + 1) * kg], out=tmp[g * mg:(g + 1) * mg])
                scatter_rows(tmp, bb, has_bias, relu, y, oh, ow, r0, r1)

    threads = get_num_threads()
    parallel_for(len(tiles), run, work=geo.flops / _FLOPS_PER_US,
                 chunks=min(len(tiles), threads * SLICES_PER_THREAD))
    return y


def _forward_by_channels(geo, x, x3, wg, w_fold, bb, has_bias, relu, y, y3):
    """conv_forward of a small batch: im2col of the whole batch split over input
    channels, then the GEMMs (and bias/ReLU) split over blocks of output channels."""
    dt = x.dtype
    n, oh, ow = geo.n, geo.oh, geo.ow
    p = oh * ow
    fold = w_fold is not None
    kf = geo.k + fold
    col = None
    if not geo.is_1x1:
        col = scratch("colbatch", kf * n * p, dt).reshape(kf, n * p)
        if fold:
            col[geo.k] = 1
        plane_size = (geo.h + 2 * geo.ph) * (geo.w + 2 * geo.pw)

        def fill(c0, c1):
            im2col_rows(x, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh, geo.dw,
                        oh, ow, 0, n * oh, col, scratch("plane", plane_size, dt), c0, c1)

        parallel_for(geo.c, fill, work=geo.k * n * p / 1000.0)  # ~1 ns per element written
    mg, kg, cg = geo.mg, geo.kg, geo.cg
    blocks = geo.mblocks

    def run(lo, hi):
        for g, m0, m1 in blocks[lo:hi]:
            a = w_fold[m0:m1] if fold else wg[g, m0:m1]
            c0, c1 = g * mg + m0, g * mg + m1
            for i in range(n):
                if geo.is_1x1:
                    src = x3[i, g * cg:(g + 1) * cg]
                elif fold:  # one group: every row of col, the ones row included
                    src = col[:, i * p:(i + 1) * p]
                else:
                    src = col[g * kg:(g + 1) * kg, i * p:(i + 1) * p]
                np.matmul(a, src, out=y3[i, c0:c1])
            if (has_bias and not fold) or relu:
                bias_relu_rows(y, bb, has_bias and not fold, relu, oh, ow, 0, n * oh, c0, c1)

    parallel_for(len(blocks), run, chunks=len(blocks))


# --------------------------------------------------------------------------- backward
def conv_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1,
                  need_dx=True, dx_out=None, dw_out=None, db_out=None):
    """See tinycaffe.kernels.conv_backward."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    dt = x.dtype
    geo = _plan(x.shape, w.shape, _norm(stride), _norm(pad), _norm(dilation), int(group), True)
    n, c, m, oh, ow = geo.n, geo.c, geo.m, geo.oh, geo.ow
    if dy.shape != (n, m, oh, ow):
        raise ValueError(f"dy must have the output's shape {(n, m, oh, ow)}, got {dy.shape}")
    _check_out("dx_out", dx_out, x.shape, dt)
    _check_out("dw_out", dw_out, w.shape, dt)
    _check_out("db_out", db_out, (m,), dt)
    dx = None
    if need_dx:
        dx = dx_out if dx_out is not None else np.empty_like(x)
    p = oh * ow
    G, mg, kg = geo.group, geo.mg, geo.kg
    wg = np.ascontiguousarray(w, dtype=dt).reshape(G, mg, kg)
    dy3 = dy.reshape(n, m, p)
    tiles = geo.tiles
    threads = get_num_threads()
    n_slices = max(1, min(len(tiles), threads * SLICES_PER_THREAD))
    if not will_split(len(tiles), 3 * geo.flops / _FLOPS_PER_US):
        n_slices = 1
    # One weight/bias gradient partial per slice, summed at the end: slices never
    # write the same memory, and the sum's order does not depend on timing.
    # With few output channels BLAS ran dW^T = col @ dy^T 1.3-1.6x faster than
    # dW = dy @ col^T (cifar10_full conv2: 141 vs 89 GF/s); with many they ran
    # alike, and the transposing copy back of a large dW^T then costs more
    # than it saved (VGG conv4_2: 32 ms).  So: transposed only for small M.
    transposed = mg < DW_TRANSPOSED_BELOW
    # float32, one group, NumPy's OpenBLAS found: each slice is one GIL-free Numba
    # call that calls BLAS itself (numba_conv_backward.py says why).
    addr = cblas.sgemm_address() if G == 1 and dt == dy.dtype == np.float32 else 0
    # Without groups, and where dW is computed transposed (few output channels), the
    # bias gradient rides in the weight-gradient GEMM: a row of ones under the column
    # matrix gives sum(dy) as one more row of dW^T, instead of a separate pass over dy
    # per tile (conv1 of cifar10_full: 0.9 of 9 ms).  With many output channels dW is
    # not transposed; a bias column there would make dW non-contiguous (a copy of dW
    # per call), while the separate sum costs little against the GEMM.  The NumPy loop
    # reads a 1x1 convolution's input itself as the column matrix: no row to add.
    fold = G == 1 and transposed and (bool(addr) or not geo.is_1x1)
    kb = kg + fold  # rows of a group's column matrix as the dW GEMM sees it
    part_w = np.empty((n_slices, G, kb, mg) if transposed else (n_slices, G, mg, kb), dtype=dt)
    part_b = np.empty((n_slices, m), dtype=dt)
    bounds = [(len(tiles) * i // n_slices, len(tiles) * (i + 1) // n_slices) for i in range(n_slices)]
    nb_max = max(geo.images_per_tile, 1)
    plane_size = (geo.h + 2 * geo.ph) * (geo.w + 2 * geo.pw)
    x3 = x.reshape(n, c, geo.h * geo.w)
    bb0 = _no_bias(dt)

    def run(s_lo, s_hi):
        ncol_max = nb_max * p
        colbuf = None if geo.is_1x1 and nb_max == 1 else scratch("col", (geo.k + fold) * ncol_max, dt)
        plane = None if geo.is_1x1 else scratch("plane", plane_size, dt)
        dybuf = scratch("dytile", m * ncol_max, dt) if nb_max > 1 else None
        dcolbuf = scratch("dcol", geo.k * ncol_max, dt) if need_dx else None
        gtmp = scratch("dwtmp", mg * kb, dt).reshape(part_w.shape[2:])
        for s in range(s_lo, s_hi):
            for t in range(*bounds[s]):
                first = t == bounds[s][0]  # the slice's partials are written, then added to
                r0, r1 = tiles[t]
                n0, n1 = r0 // oh, r1 // oh
                ncol = (n1 - n0) * p
                if n1 - n0 == 1:  # one image: dy[n0] already is (M, pixels)
                    dyt = dy3[n0]
                else:
                    dyt = dybuf[:m * ncol].reshape(m, ncol)
                    gather_images(dy3, n0, n1, dyt)
                if not fold:
                    if first:
                        np.sum(dyt, axis=1, dtype=dt, out=part_b[s])
                    else:
                        part_b[s] += dyt.sum(axis=1, dtype=dt)
                if geo.is_1x1:  # the input, as (C, pixels), is the column matrix
                    if n1 - n0 == 1:
                        col = x3[n0]
                    else:
                        col = colbuf[:geo.k * ncol].reshape(geo.k, ncol)
                        gather_images(x3, n0, n1, col)
                else:
                    col = colbuf[:(geo.k + fold) * ncol].reshape(geo.k + fold, ncol)
                    im2col_rows(x, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh, geo.dw,
                                oh, ow, r0, r1, col, plane, 0, geo.c)
                    if fold:
                        col[geo.k] = 1
                for g in range(G):
                    colg, dyg = col[g * kg:g * kg + kb], dyt[g * mg:(g + 1) * mg]
                    a, b = (colg, dyg.T) if transposed else (dyg, colg.T)
                    if first:
                        np.matmul(a, b, out=part_w[s, g])
                    else:
                        np.matmul(a, b, out=gtmp)
                        part_w[s, g] += gtmp
                if need_dx:
                    dcol = dcolbuf[:geo.k * ncol].reshape(geo.k, ncol)
                    for g in range(G):
                        np.matmul(wg[g].T, dyt[g * mg:(g + 1) * mg], out=dcol[g * kg:(g + 1) * kg])
                    if geo.is_1x1:  # dx is dcol put back in (N, C, H, W) order
                        scatter_rows(dcol, bb0, False, False, dx, oh, ow, r0, r1)
                    else:
                        col2im_planes(dcol, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh,
                                      geo.dw, oh, ow, dx, n0, n1, plane)

    if addr and tiles:
        from .numba_conv_backward import backward_tiles

        image_tiles = _image_tiles(n, nb_max, n_slices)
        w2 = wg.reshape(m, kg)

        def run_fast(s_lo, s_hi):
            ncol_max = nb_max * p
            colbuf = scratch("col", (geo.k + 1) * ncol_max, dt)
            plane = scratch("plane", plane_size, dt)
            dybuf = scratch("dytile", m * ncol_max if nb_max > 1 else 1, dt)
            dcolbuf = scratch("dcol", geo.k * ncol_max if need_dx else 1, dt)
            for s in range(s_lo, s_hi):
                backward_tiles(addr, x, dy3, w2, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw,
                               geo.dh, geo.dw, oh, ow, image_tiles[s], transposed, geo.is_1x1, need_dx,
                               dx if need_dx else x, part_w[s, 0], part_b[s], colbuf, plane, dybuf,
                               dcolbuf)

        parallel_for(n_slices, run_fast, work=None if n_slices > 1 else 0.0, chunks=n_slices)
    elif tiles:
        parallel_for(n_slices, run, work=None if n_slices > 1 else 0.0, chunks=n_slices)
    if not tiles:  # an empty batch: zero gradients
        part_w[...] = 0
        part_b[...] = 0
    for s in range(1, n_slices):  # fixed order: the sum does not depend on timing
        part_w[0] += part_w[s]
        if not fold:
            part_b[0] += part_b[s]
    if transposed:
        dw_t = part_w[0, :, :kg].transpose(0, 2, 1)  # (G, mg, kg)
        db = part_w[0, 0, kg] if fold else part_b[0]
    else:
        dw_t = part_w[0, :, :, :kg]
        db = part_w[0, 0, :, kg] if fold else part_b[0]
    if dw_out is not None:
        view = dw_out.reshape(G, mg, kg)
        view += dw_t
        dw = dw_out
    else:
        dw = np.ascontiguousarray(dw_t).reshape(w.shape)
    if db_out is not None:
        db_out += db
        db = db_out
    else:
        db = np.ascontiguousarray(db)
    return dx, dw, db


_image_tile_cache: dict = {}


def _image_tiles(n, per_tile, n_slices):
    """Per slice, a (T, 2) int64 array of image ranges [n0, n1): the batch cut into
    ``n_slices`` near-equal runs of images (so slices balance even when ``per_tile``
    does not divide them), each cut into tiles of at most ``per_tile`` images."""
    key = (n, per_tile, n_slices)
    got = _image_tile_cache.get(key)
    if got is None:
        got = []
        for s in range(n_slices):
            a, b = n * s // n_slices, n * (s + 1) // n_slices
            got.append(np.array([(i, min(b, i + per_tile)) for i in range(a, b, per_tile)],
                                dtype=np.int64).reshape(-1, 2))
        if len(_image_tile_cache) > 256:
            _image_tile_cache.clear()
        _image_tile_cache[key] = got
    return got


# --------------------------------------------------------------------------- transpose
def conv_transpose(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1, out_hw=(0, 0),
                   out=None):
    """See tinycaffe.kernels.conv_transpose: the dx of a convolution whose input is
    (N, C, *out_hw) and whose output gradient is ``x``, plus the bias; whole images
    per tile over the pool (BLAS runs one thread, so the pool is what parallelises it)."""
    x = np.ascontiguousarray(x)
    dt = x.dtype
    n, m, h, wd = x.shape
    if w.shape[0] != m:
        raise ValueError(f"conv_transpose: x has {m} channels but w is {w.shape}")
    cg = w.shape[1]
    c = cg * int(group)
    oh_, ow_ = int(out_hw[0]), int(out_hw[1])
    geo = _plan((n, c, oh_, ow_), w.shape, _norm(stride), _norm(pad), _norm(dilation), int(group), True)
    if (geo.oh, geo.ow) != (h, wd):
        raise ValueError(f"conv_transpose: output size {out_hw} does not convolve back to {(h, wd)}")
    shape = (n, c, oh_, ow_)
    y = _out_or_new(out, shape, dt)
    if not geo.tiles:
        return y
    p = h * wd
    G, mg, kg = geo.group, geo.mg, geo.kg
    wg = np.ascontiguousarray(w, dtype=dt).reshape(G, mg, kg)
    x3 = x.reshape(n, m, p)
    tiles = geo.tiles
    has_bias = b is not None
    bb = np.ascontiguousarray(b, dtype=dt) if has_bias else _no_bias(dt)
    ncol_max = max(geo.images_per_tile, 1) * p

    def run(lo, hi):
        xbuf = scratch("dytile", m * ncol_max, dt)
        dcolbuf = scratch("dcol", geo.k * ncol_max, dt)
        plane = None if geo.is_1x1 else scratch("plane", (oh_ + 2 * geo.ph) * (ow_ + 2 * geo.pw), dt)
        for t in range(lo, hi):
            r0, r1 = tiles[t]
            n0, n1 = r0 // h, r1 // h
            ncol = (n1 - n0) * p
            xt = xbuf[:m * ncol].reshape(m, ncol)
            gather_images(x3, n0, n1, xt)
            dcol = dcolbuf[:geo.k * ncol].reshape(geo.k, ncol)
            for g in range(G):
                np.matmul(wg[g].T, xt[g * mg:(g + 1) * mg], out=dcol[g * kg:(g + 1) * kg])
            if geo.is_1x1:
                scatter_rows(dcol, bb, has_bias, False, y, oh_, ow_, n0 * oh_, n1 * oh_)
                continue
            col2im_planes(dcol, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.dh, geo.dw,
                          h, wd, y, n0, n1, plane)
            if has_bias:
                bias_relu_rows(y, bb, True, False, oh_, ow_, n0 * oh_, n1 * oh_, 0, c)

    parallel_for(len(tiles), run, work=geo.flops / _FLOPS_PER_US,
                 chunks=min(len(tiles), get_num_threads() * SLICES_PER_THREAD))
    return y
