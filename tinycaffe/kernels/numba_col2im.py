"""col2im through a zero-bordered plane: the adjoint of im2col, for the convolution backward.

Each column-matrix row (channel c, kernel tap i, j) is one output-sized plane
of gradients that lands on the input shifted by (i*dh, j*dw) and strided by
(sh, sw).  Added straight into dx, every output row first had to be clipped
to the input's columns, and its inner loop ran with a stride only known at run
time, so it did not vectorise.  Here each channel is accumulated into a small
scratch plane that carries the padding as a border (h+2ph by w+2pw, in L1
for the Caffe shapes), where no tap falls outside, with a unit-stride inner
loop when sw == 1; then the plane's inside is copied to dx.  The additions
happen in the same order as before (taps i, j in turn), so dx is bitwise what
the clipped version gave.  Measured on cifar10_full's conv2 at batch 100, one
thread: 4.9 -> 3.5 ms (bench/results/train_step.md, "conv backward").
"""
from __future__ import annotations

from numba import njit, uint64

# fastmath off: the sums keep Caffe's float32 rounding, term by term.
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)


@njit(**_JIT)
def col2im_planes(col, kh, kw, sh, sw, ph, pw, dh, dw, oh_n, ow_n, dx, n0, n1, plane):
    """dx[n] = col2im(col's columns of image n) for the whole images n in [n0, n1).

    col: C-contiguous (C*kh*kw, >= (n1-n0)*oh_n*ow_n); its column (n-n0)*oh_n*ow_n
    + oh*ow_n + ow holds output pixel (oh, ow) of image n.  dx: (N, C, H, W),
    C-contiguous; the planes of images [n0, n1) are overwritten, others left alone.
    plane: 1-D scratch of at least (H+2ph)*(W+2pw) elements."""
    c_n, h_n, w_n = dx.shape[1], dx.shape[2], dx.shape[3]
    wp = w_n + 2 * pw
    size = uint64((h_n + 2 * ph) * wp)
    p_n = oh_n * ow_n
    ncol = col.shape[1]
    xf = dx.reshape(dx.size)
    cf = col.reshape(col.size)
    zero = xf.dtype.type(0)
    uow, uw, usw = uint64(ow_n), uint64(w_n), uint64(sw)
    for n in range(n0, n1):
        cb = (n - n0) * p_n
        for c in range(c_n):
            for q in range(size):
                plane[q] = zero
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oh in range(oh_n):
                        s = uint64(row * ncol + cb + oh * ow_n)
                        d = uint64((oh * sh + i * dh) * wp + j * dw)
                        if sw == 1:
                            for q in range(uow):
                                plane[d + q] += cf[s + q]
                        else:
                            for q in range(uow):
                                plane[d + q * usw] += cf[s + q]
            base = (n * c_n + c) * h_n * w_n
            for h in range(h_n):
                d = uint64(base + h * w_n)
                s = uint64((h + ph) * wp + pw)
                for q in range(uw):
                    xf[d + q] = plane[s + q]
