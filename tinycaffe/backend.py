"""The one place that chooses the array module (NumPy or CuPy).

Layer and kernel code never imports CuPy itself: it asks ``get_array_module``
for the module that owns its arrays, so the same code runs on both.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

_cupy: ModuleType | None = None
_cupy_checked = False


def cupy_module() -> ModuleType | None:
    """CuPy if it imports and sees a GPU, else None (checked once)."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # type: ignore[import-not-found]

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy = cupy
        except Exception:  # no CuPy, no driver, or no device: all mean "no GPU"
            _cupy = None
    return _cupy


def gpu_available() -> bool:
    """True when CuPy is installed and a CUDA device is visible."""
    return cupy_module() is not None


def get_array_module(*arrays: Any) -> ModuleType:
    """NumPy, or CuPy when any of ``arrays`` lives on the GPU."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return cupy_module() or np
    return np


def xp_for_device(device: str) -> ModuleType:
    """The array module for ``device`` ("cpu" or "gpu"); a clear error if no GPU."""
    if device == "cpu":
        return np
    if device == "gpu":
        cp = cupy_module()
        if cp is None:
            from .errors import TinyCaffeError

            raise TinyCaffeError(
                "--device gpu asked for, but CuPy with a CUDA device is not available "
                "(install the 'gpu' extra: pip install 'tinycaffe[gpu]')"
            )
        return cp
    from .errors import TinyCaffeError

    raise TinyCaffeError(f"unknown device {device!r}: use 'cpu' or 'gpu'")


def asnumpy(a: Any) -> np.ndarray:
    """A NumPy copy (or view) of ``a`` wherever it lives."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def kernel_preference() -> str:
    """Which CPU kernels to use: "numba" (default) or "numpy" (TINYCAFFE_KERNELS=numpy)."""
    return os.environ.get("TINYCAFFE_KERNELS", "numba").lower()


def kernel_summary(device: str = "cpu") -> str:
    """One line saying which kernels run on ``device`` and with how many threads.

    ``tinycaffe test`` prints it, so a run on a machine without Numba (32-bit
    Raspberry Pi OS, where PyPI has no numba) says it used the NumPy kernels.
    """
    if device == "gpu":
        return "kernels: cupy (GPU)"
    import importlib.util

    from . import kernels

    impl = kernels.implementation(np.empty(0, dtype=np.float32))
    if impl is kernels.numba_kernels:
        n = kernels.get_num_threads()
        return f"kernels: numba ({n} thread{'s' if n != 1 else ''})"
    if kernel_preference() != "numba":
        why = f"TINYCAFFE_KERNELS={os.environ.get('TINYCAFFE_KERNELS')}"
    elif kernels.numba_unused_because:
        why = kernels.numba_unused_because
    elif importlib.util.find_spec("numba") is None:
        why = "numba is not installed"
    else:
        why = "numba failed to import"
    return f"kernels: numpy ({why})"
