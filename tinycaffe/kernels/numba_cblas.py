"""Single-precision GEMM callable from inside Numba kernels: NumPy's own OpenBLAS, by address.

Why: a convolution's backward runs im2col, two GEMMs and col2im per tile.  Driven
from Python, each step returns to the interpreter, and with two threads each
return can wait for the GIL held by the other thread (a futex hand-off, 20-35 us
on the 2-core dev VM; bench/results/train_step.md).  Calling BLAS from the
Numba kernel itself lets one GIL-free call do a whole slice of tiles, and lets
the weight gradient accumulate in place (beta = 1) instead of through a
temporary.

Which BLAS: the one NumPy ships in its wheels (``scipy_openblas64``, ILP64
CBLAS: 64-bit integers), found next to NumPy and called through the address of
``scipy_cblas_sgemm64_``.  It is the library threadpoolctl pins to one thread
(threads.py), so it runs single-threaded inside the pool like every other GEMM
here.  Where NumPy was built against another BLAS (a distribution's NumPy), no
address is found, ``sgemm_address()`` returns 0 and callers keep their NumPy
(``np.matmul``) path.  The address goes into kernels as a plain integer, so
those kernels stay cacheable (a ctypes function as a global would not be).
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enum values

# Tests set this to force the NumPy path where the address is found.
DISABLED = False

_address: int | None = None


def _find_address() -> int:
    """Address of NumPy's bundled ILP64 cblas_sgemm, or 0 (not found, not a 64-bit process,
    or Numba running kernels as plain Python, where the intrinsic cannot be called)."""
    from numba import config

    if np.dtype(np.intp).itemsize != 8 or config.DISABLE_JIT:
        return 0
    here = os.path.dirname(os.path.abspath(np.__file__))
    # Linux wheels keep it in site-packages/numpy.libs, macOS wheels in numpy/.dylibs.
    pattern = "libscipy_openblas64_*"
    paths = (glob.glob(os.path.join(here, os.pardir, "numpy.libs", pattern))
             + glob.glob(os.path.join(here, ".dylibs", pattern)))
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            fn = lib.scipy_cblas_sgemm64_
        except (OSError, AttributeError):
            continue
        return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)
    return 0


def sgemm_address() -> int:
    """The address to pass to ``sgemm`` in a kernel; 0 when there is none (or DISABLED)."""
    global _address
    if _address is None:
        try:
            _address = _find_address()
        except Exception:  # an unusual NumPy layout: use the NumPy path
            _address = 0
    return 0 if DISABLED else _address


@intrinsic
def sgemm(typingctx, addr, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """C = alpha * op(A) @ op(B) + beta * C, row-major, inside a Numba kernel.

    addr: ``sgemm_address()`` (nonzero); trans_a/trans_b: NO_TRANS or TRANS (int32);
    m, n, k, lda, ldb, ldc: int64; alpha, beta: float32; a, b, c: data addresses
    (``arr.ctypes.data``, uintp) of float32 memory laid out as CBLAS expects."""
    sig = types.void(types.int64, types.int32, types.int32, types.int64, types.int64, types.int64,
                     types.float32, types.uintp, types.int64, types.uintp, types.int64, types.float32,
                     types.uintp, types.int64)

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, ptr, i64, ptr, i64,
                                               f32, ptr, i64])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        call_args = [ir.Constant(i32, ROW_MAJOR)] + list(args[1:])
        for i in (7, 9, 12):  # a, b, c: integers to pointers
            call_args[i] = builder.inttoptr(call_args[i], ptr)
        builder.call(fn, call_args)
        return context.get_dummy_value()

    return sig, codegen
