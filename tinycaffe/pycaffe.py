"""pycaffe's process-wide settings: ``caffe.set_mode_cpu()``, ``set_mode_gpu()``,
``set_device(i)`` and ``set_random_seed(s)``.

Caffe keeps the mode and seed in a global that every Net built afterwards
reads; so do we: a ``Net`` built without ``device=`` or ``seed=`` takes them
from here. A Net's own ``device=`` / ``seed=`` always win.
"""
from __future__ import annotations

from .errors import TinyCaffeError

_settings = {"device": "cpu", "gpu_id": 0, "seed": None}


def set_mode_cpu() -> None:
    """Build later nets on the CPU (the default)."""
    _settings["device"] = "cpu"


def set_mode_gpu() -> None:
    """Build later nets on the GPU (CuPy); a clear error now if there is none."""
    from .backend import gpu_available

    if not gpu_available():
        raise TinyCaffeError(
            "set_mode_gpu(): CuPy with a CUDA device is not available "
            "(install the 'gpu' extra: pip install 'tinycaffe[gpu]'), or stay on set_mode_cpu()"
        )
    _settings["device"] = "gpu"


def set_device(device_id: int) -> None:
    """Choose the GPU that later GPU work runs on (Caffe's ``SetDevice``)."""
    if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
        raise TinyCaffeError(f"set_device(): the device id must be an int >= 0, got {device_id!r}")
    from .backend import cupy_module

    cp = cupy_module()
    if cp is not None:
        count = cp.cuda.runtime.getDeviceCount()
        if device_id >= count:
            raise TinyCaffeError(f"set_device({device_id}): only {count} CUDA device(s) are visible")
        cp.cuda.Device(device_id).use()
    _settings["gpu_id"] = device_id


def set_random_seed(seed: int) -> None:
    """Seed the fillers (and Dropout, random crops) of nets built from now on."""
    _settings["seed"] = int(seed)


def layer_type_list() -> list[str]:
    """The layer types nets can use (pycaffe's ``caffe.layer_type_list()``)."""
    from .layers import known_types

    return sorted(known_types())


def mode_device() -> str:
    """"cpu" or "gpu", as the last set_mode_* call left it."""
    return str(_settings["device"])


def mode_seed() -> int:
    """The seed a Net built without ``seed=`` uses: set_random_seed's, else 0."""
    seed = _settings["seed"]
    return 0 if seed is None else int(seed)
