"""CPU kernels compiled with Numba, for the loops BLAS cannot do for us.

Convolution lives in numba_conv.py, pooling in numba_pool.py and LRN in
numba_lrn.py, all re-exported below; matrix products stay with NumPy's
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

# Re-exported: the same API as numpy_kernels.
from .numba_conv import conv_backward, conv_forward, conv_transpose  # noqa: F401
from .numba_lrn import lrn_backward, lrn_forward  # noqa: F401  (re-exported, likewise)
from .numba_pool import pool_backward, pool_forward  # noqa: F401  (re-exported, likewise)

# All JIT options in one place.  fastmath stays off: results must match Caffe
# to ~1e-6.  error_model="numpy" makes x/0 give inf/nan as in Caffe instead
# of raising, and drops the zero-division checks from hot loops.
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

FLT_MAX = np.float32(np.finfo(np.float32).max)
