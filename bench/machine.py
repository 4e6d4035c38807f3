"""What every CPU benchmark prints first: the machine, its load and which BLAS runs."""
from __future__ import annotations

import os
import platform

import numpy as np


def print_machine_info() -> None:
    """CPU, Python/NumPy versions, BLAS libraries (threadpoolctl), BLAS env vars and load."""
    import threadpoolctl

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
        print(f"cpu: {model}")
    except (OSError, StopIteration):
        pass
    for lib in threadpoolctl.threadpool_info():
        print("threadpool: " + ", ".join(f"{k}={lib.get(k)}" for k in
                                         ("internal_api", "version", "architecture", "num_threads", "filepath")))
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS") if k in os.environ}
    print(f"BLAS-related environment: {env or 'none set'}")
    if hasattr(os, "getloadavg"):
        print("load average (1/5/15 min): %.2f %.2f %.2f" % os.getloadavg())
