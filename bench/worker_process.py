"""Run one measurement of a benchmark in a fresh process, with its thread count set everywhere.

A library's thread pool must not spin beside another's timing, so each system and thread
count runs as ``python SCRIPT --worker JOB`` and prints its result as the last JSON line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

# Every thread setting the measured libraries read at start-up.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "TINYCAFFE_NUM_THREADS")


def run_worker(script: str, job: dict, label: str, cwd: str | None = None) -> dict:
    """``script --worker JOB`` with ``job["threads"]`` in every THREAD_VARS; its last stdout line, parsed."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(job["threads"])
    proc = subprocess.run([sys.executable, script, "--worker", json.dumps(job)],
                          env=env, capture_output=True, text=True, timeout=900, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
