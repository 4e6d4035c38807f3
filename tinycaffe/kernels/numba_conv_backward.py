"""A slice of a convolution's backward as one GIL-free Numba call (BLAS called from inside).

For each tile of whole images in the slice: dy of the tile (read in place for one
image, else gathered to (M, pixels)), im2col of x with a row of ones under it, the
weight gradient (and, from the ones row, the bias gradient) accumulated into the
slice's partial by BLAS with beta = 1, then dx = col2im(W^T @ dy).  Driven from
Python, those five steps per tile each returned to the interpreter; with two
threads a return could wait for the GIL (numba_cblas.py says why this matters).

Used by numba_conv.conv_backward for float32, one-group convolutions when
numba_cblas.sgemm_address() finds NumPy's OpenBLAS; otherwise that function keeps its
NumPy-driven loop, which computes the same products.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .numba_cblas import NO_TRANS, TRANS, sgemm
from .numba_col2im import col2im_planes
from .numba_conv import gather_images, im2col_rows

_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)


@njit(**_JIT)
def _add_row_sums(a, out, first):
    """out[m] = (or +=, unless ``first``) the sum of row m of the 2-D C-contiguous ``a``:
    16 running lanes, then the lanes and the tail in order (a plain running sum
    would not vectorise without fastmath)."""
    m_n, n = a.shape[0], a.shape[1]
    lanes = np.empty(16, a.dtype)
    n16 = n - n % 16
    for m in range(m_n):
        for j in range(16):
            lanes[j] = 0
        for q in range(0, n16, 16):
            for j in range(16):
                lanes[j] += a[m, q + j]
        total = a.dtype.type(0)
        for j in range(16):
            total += lanes[j]
        for q in range(n16, n):
            total += a[m, q]
        out[m] = total if first else out[m] + total


@njit(**_JIT)
def backward_tiles(addr, x, dy3, w2, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, tiles,
                   transposed, is_1x1, need_dx, dx, part, part_b, colbuf, plane, dybuf, dcolbuf):
    """Accumulate one slice's weight/bias gradient into ``part`` and write its images' dx.

    is_1x1: a 1x1, stride-1, unpadded convolution: the tile's input, copied to
    (C, pixels), is its column matrix, and dx is W^T @ dy put back in image order.
    tiles: (T, 2) int64 image ranges [n0, n1), processed in order; the first one
    overwrites ``part``, the others add to it.  w2: (M, K) float32 weights.
    part: (K+1, M) when ``transposed``: dW^T with the bias gradient as row K (from a
    row of ones under the column matrix); else (M, K), dW, and the bias gradient goes
    to part_b (M,) (there M >= 128 and K is large, so a separate sum of dy is cheap,
    and dW stays contiguous).  colbuf >= (K+1)*cols, dybuf >= M*cols (cols: most
    pixels of a tile), dcolbuf >= K*cols when ``need_dx``, plane >= (H+2ph)*(W+2pw)."""
    if addr == 0:  # a call through address 0 would crash the process
        raise ValueError("backward_tiles: no BLAS address (numba_cblas.sgemm_address() returned 0)")
    m_n, k_n = w2.shape[0], w2.shape[1]
    c_n = x.shape[1]
    p_n = oh_n * ow_n
    x3 = x.reshape((x.shape[0], c_n, x.shape[2] * x.shape[3]))
    dx3 = dx.reshape((dx.shape[0], dx.shape[1], dx.shape[2] * dx.shape[3]))
    one = np.float32(1)
    a1 = np.float32(1)
    for t in range(tiles.shape[0]):
        n0, n1 = tiles[t, 0], tiles[t, 1]
        ncol = (n1 - n0) * p_n
        if n1 - n0 == 1:
            dyt = dy3[n0]
        else:
            dyt = dybuf[:m_n * ncol].reshape((m_n, ncol))
            gather_images(dy3, n0, n1, dyt)
        kr = k_n + 1 if transposed else k_n  # rows of the column matrix, with the ones row
        col = colbuf[:kr * ncol].reshape((kr, ncol))
        if is_1x1:  # a copy (under which the row of ones goes)
            gather_images(x3, n0, n1, col)
        else:
            im2col_rows(x, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, n0 * oh_n, n1 * oh_n, col, plane,
                        0, c_n)
        beta = np.float32(0) if t == 0 else np.float32(1)
        if transposed:  # part (K+1, M) = col (K+1, ncol) @ dyt^T
            for q in range(ncol):
                col[k_n, q] = one
            sgemm(addr, np.int32(NO_TRANS), np.int32(TRANS), k_n + 1, m_n, ncol, a1,
                  col.ctypes.data, ncol, dyt.ctypes.data, ncol, beta, part.ctypes.data, m_n)
        else:  # part (M, K) = dyt @ col^T
            sgemm(addr, np.int32(NO_TRANS), np.int32(TRANS), m_n, k_n, ncol, a1,
                  dyt.ctypes.data, ncol, col.ctypes.data, ncol, beta, part.ctypes.data, k_n)
            _add_row_sums(dyt, part_b, t == 0)
        if need_dx and is_1x1 and n1 - n0 == 1:  # dx[n0] (C, pixels) = w2^T @ dyt, in place
            sgemm(addr, np.int32(TRANS), np.int32(NO_TRANS), k_n, ncol, m_n, a1,
                  w2.ctypes.data, k_n, dyt.ctypes.data, ncol, np.float32(0), dx3[n0].ctypes.data, ncol)
        elif need_dx:  # dcol (K, ncol) = w2^T @ dyt, then back onto dx
            dcol = dcolbuf[:k_n * ncol].reshape((k_n, ncol))
            sgemm(addr, np.int32(TRANS), np.int32(NO_TRANS), k_n, ncol, m_n, a1,
                  w2.ctypes.data, k_n, dyt.ctypes.data, ncol, np.float32(0), dcol.ctypes.data, ncol)
            if is_1x1:
                for n in range(n0, n1):
                    for c in range(c_n):
                        for q in range(p_n):
                            dx3[n, c, q] = dcol[c, (n - n0) * p_n + q]
            else:
                col2im_planes(dcol, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, dx, n0, n1, plane)
