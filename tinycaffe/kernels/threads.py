"""The one owner of the CPU cores: tinycaffe's thread pool and the BLAS thread count.

Design (after ONNX Runtime's MLAS: one pool for the process, BLAS kept
single-threaded inside it, small work on the calling thread):

* **BLAS runs on one thread** from the first kernel call (or the first
  ``set_num_threads``) on; the parallelism comes from this pool, which hands
  each thread its own slices of the batch (or of an image's output rows).
  Measured on the 2-core dev machine (bench/results/conv_profile.md,
  cifar10_full's convolutions at batch 100): with 2 threads our pool spends
  the same CPU time as 1 thread (conv2 forward 14.9 vs 14.6 ms), while 1 pool
  thread driving a 2-thread OpenBLAS spent 9x the CPU time (132 ms) and ran
  3-10x slower: OpenBLAS's idle workers spin between calls, and it splits each
  GEMM statically, so a core busy with another process stalls every call.
  Our slices are claimed dynamically (below), so a busy core costs only its
  share.  The review behind this design measured ip1 (100x1024 by 1024x10)
  at 5-8 ms instead of 0.13 ms while OpenBLAS kept n threads.
* **No dispatch below a threshold.**  Waking a worker costs tens of
  microseconds; a job whose estimated single-thread time (``work``, in
  microseconds) is under ``SERIAL_BELOW_US`` runs on the calling thread in
  one call.  At batch 1 this keeps every cifar10_full layer on the calling
  thread, so 2 threads cost nothing there.
* **Dynamic claiming, no process-wide lock.**  A job's slices are claimed one
  by one from a shared counter by the calling thread *and* the workers; the
  caller never waits idle while a slice is unclaimed.  A worker that wakes
  late (the other core busy with another process) simply finds nothing left;
  concurrent callers (several Nets in several threads) and nested calls
  cannot deadlock, since every caller can finish its own job alone.
* **Thread count resolved once**: ``set_num_threads``, else
  TINYCAFFE_NUM_THREADS, else OMP_NUM_THREADS, else the usable cores: the
  affinity mask, capped by the cgroup CPU quota (``cpu.max`` in cgroup v2,
  ``cpu.cfs_quota_us`` in v1), rounded up.
* Workers block on a queue when idle (never spin); a forked child starts
  with an empty pool and grows its own.
* **The caller waits without the GIL.**  Each thread hand-off (a blocked
  thread woken through a futex, for the Event or for the GIL) cost 20-35 us
  on the 2-core dev VM.  A caller whose own slices are done polls the job's
  state in a GIL-free Numba loop until the job is done and its workers have
  left it (so the GIL is free as well), for at most WAIT_SPIN_POLLS polls
  (~0.4 ms), and only then blocks.  A 400 us job on 2 threads went from 266
  to 242 us, a 100 us one from 131 to 96 us (bench/results/train_step.md).
"""
from __future__ import annotations

import math
import numbers
import os
import queue
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np

from ..errors import TinyCaffeError

# How long (in polls of a flag, roughly 1-4 ns each) a caller whose own slices are
# done watches for the workers to finish before it blocks; about 0.3-1 ms.
WAIT_SPIN_POLLS = 200_000

# Jobs estimated to take less than this on one thread run on the caller: waking
# a worker and joining it costs tens of microseconds (6 us with nothing to do,
# 15-40 us around real slices on the loaded dev machine; conv_profile.md).
SERIAL_BELOW_US = 150.0

# BLAS's own variables (OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) are not read: people
# set them to 1 to stop BLAS oversubscribing, not to limit the whole program, and
# BLAS runs one thread inside the pool anyway.
ENV_VARS = ("TINYCAFFE_NUM_THREADS", "OMP_NUM_THREADS")

_config_lock = threading.Lock()  # guards the settings below, never held while kernels run
_n_threads: Optional[int] = None
_workers: list[threading.Thread] = []
_queue: "queue.SimpleQueue[Optional[_Job]]" = queue.SimpleQueue()
_blas_pinned: Optional[bool] = None  # None: not tried yet
_local = threading.local()  # .in_worker on pool threads


# --------------------------------------------------------------------------- count
def _own_cgroup_v2(proc_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's cgroup v2 path ("0::/a/b" -> "a/b"); "" for the root or unknown."""
    try:
        with open(proc_cgroup) as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip().strip("/")
    except OSError:
        pass
    return ""


def _cgroup_cpu_limit(root: str = "/sys/fs/cgroup", own: Optional[str] = None) -> Optional[int]:
    """CPUs allowed by the cgroup quota, rounded up (None: no quota or unreadable).

    cgroup v2: ``cpu.max`` ("quota period" or "max period") of this process's own
    cgroup (``own``, from /proc/self/cgroup) and of each parent up to ``root``
    (in a container, ``root`` itself is the container's cgroup); the smallest
    quota wins.  cgroup v1: ``cpu/cpu.cfs_quota_us`` over ``cpu.cfs_period_us``."""
    own = _own_cgroup_v2() if own is None else own
    parts = [q for q in own.split("/") if q]
    limits = []
    for depth in range(len(parts), -1, -1):
        try:
            with open(os.path.join(root, *parts[:depth], "cpu.max")) as f:
                quota, period = f.read().split()[:2]
            if quota != "max" and int(period) > 0:
                limits.append(max(1, math.ceil(int(quota) / int(period))))
        except (OSError, ValueError):
            continue
    if limits:
        return min(limits)
    try:  # cgroup v1
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
            quota_us = int(f.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
        if quota_us > 0 and period_us > 0:
            return max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        pass
    return None


def usable_cores(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Cores this process may run on: the affinity mask, capped by the cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cgroup_root)
    return max(1, min(n, limit) if limit else n)


def threads_from_env(environ=os.environ) -> Optional[int]:
    """The thread count the first set variable of ENV_VARS asks for (None: none set)."""
    for var in ENV_VARS:
        raw = environ.get(var, "").strip()
        if not raw:
            continue
        try:
            n = int(raw.split(",")[0])  # OMP_NUM_THREADS may list nesting levels: "4,2"
        except ValueError:
            raise TinyCaffeError(f"{var}={raw!r}: expected a positive integer thread count") from None
        if n <= 0:
            raise TinyCaffeError(f"{var}={raw!r}: expected a positive integer thread count")
        return n
    return None


def get_num_threads() -> int:
    """Threads the CPU kernels use (see the module docstring for how it is chosen).
    The first call also holds BLAS to one thread (``pin_blas``)."""
    global _n_threads
    n = _n_threads
    if n is None:
        with _config_lock:
            if _n_threads is None:
                _n_threads = threads_from_env() or usable_cores()
            n = _n_threads
        pin_blas()  # every kernel asks for the count first: from here on BLAS is ours
    return n


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (the caller plus n-1 pool workers) for the CPU kernels from
    now on, and hold BLAS to one thread inside them.  ``n`` must be a positive int."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise TinyCaffeError(f"thread count must be a positive integer, got {n!r}")
    n = int(n)
    global _n_threads
    with _config_lock:
        _n_threads = n
        _resize_pool(n - 1)
    pin_blas()


# --------------------------------------------------------------------------- BLAS
def pin_blas() -> bool:
    """Hold every loaded BLAS to one thread for the rest of the process (once).
    Returns False when that is impossible (threadpoolctl missing or failing)."""
    global _blas_pinned
    if _blas_pinned is None:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")
            _blas_pinned = True
        except Exception:  # no threadpoolctl, or a BLAS it cannot drive: tried once only
            _blas_pinned = False
    return _blas_pinned


def can_pin_blas() -> bool:
    """True when BLAS is (or can be) held to one thread."""
    return pin_blas()


_blas_libs: Optional[list] = None


def _blas_lib_controllers() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded now (found once:
    a fresh scan costs ~0.2 ms, too much per kernel call)."""
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas_libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # no threadpoolctl, or one without this API
            _blas_libs = []
    return _blas_libs


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS on ``n`` threads for the duration, then back to one.  For the NumPy
    fallback kernels (no Numba: 32-bit Raspberry Pi OS), whose only parallelism
    is BLAS's own; a no-op without threadpoolctl."""
    pin_blas()
    libs = _blas_lib_controllers()
    for lib in libs:
        lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib in libs:
            lib.set_num_threads(1)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread for the duration.  Kept for callers of the old API: BLAS
    is now pinned to one thread for good, so after the first call this is free."""
    pin_blas()
    yield


# --------------------------------------------------------------------------- pool
class _Job:
    """fn over a list of ranges; slices are claimed by whichever thread asks first."""

    __slots__ = ("fn", "ranges", "_next", "_left", "_lock", "done", "error", "state")

    def __init__(self, fn: Callable[[int, int], None], ranges: list[tuple[int, int]]):
        self.fn, self.ranges = fn, ranges
        self._next = 0
        self._left = len(ranges)
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.error: Optional[BaseException] = None
        # Read by the caller's GIL-free wait (_wait_for): [DONE] turns 1 with ``done``,
        # [INSIDE] counts workers still inside the job (changed under the GIL only),
        # [SCRATCH] is the waiting loop's own counter.
        self.state = np.zeros(3, np.int64)

    def run_some(self) -> None:
        """Claim and run slices until none is left unclaimed."""
        while True:
            with self._lock:
                i = self._next
                if i >= len(self.ranges):
                    return
                self._next = i + 1
            try:
                if self.error is None:  # after a failure the rest is skipped, not run
                    self.fn(*self.ranges[i])
            except BaseException as e:  # re-raised in the caller
                if self.error is None:
                    self.error = e
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self.done.set()
                    self.state[_DONE] = 1


_DONE, _SCRATCH, _INSIDE = 0, 1, 2


def _worker() -> None:
    _local.in_worker = True
    while True:
        job = _queue.get()
        if job is None:  # shutdown signal for one worker
            return
        job.state[_INSIDE] += 1
        job.run_some()
        # From here to blocking in get() (which releases the GIL) is a few bytecodes.
        job.state[_INSIDE] -= 1


_poll: Optional[Callable] = None


def _poller() -> Optional[Callable]:
    """A GIL-free loop that waits for state[DONE] == 1 and state[INSIDE] == 0, at most
    ``polls`` times (Numba, compiled on first use; None without Numba)."""
    global _poll
    if _poll is None:
        # Only where the kernels package uses Numba: it refuses a Numba too old to
        # trust (one aborted inside LLVM on armv7), and this loop is compiled too.
        package = sys.modules.get(__package__ or "")
        if getattr(package, "numba_kernels", None) is None:
            return None  # asked again later: the package may still be importing
        try:
            from numba import config, njit
        except ImportError:
            _poll = False  # type: ignore[assignment]
        else:
            if config.DISABLE_JIT:  # as plain Python the loop would hold the GIL
                _poll = False  # type: ignore[assignment]
                return None

            def poll(state, scratch, polls):
                for _ in range(polls):
                    if state[0] == 1 and state[2] == 0:
                        return True
                    # A store the compiler cannot prove misses state[0] and state[2]
                    # (scratch is 1 at run time), so both are read again each time.
                    state[scratch] += 1
                return False
            _poll = njit(nogil=True, cache=True)(poll)
    return _poll or None


def _wait_for(job: _Job) -> None:
    """Wait until every slice of ``job`` is done.

    Blocking on the Event (or on the GIL, when the worker still holds it) costs a
    thread wake-up: 20-35 us on the 2-core dev VM, two per job, which made a
    2-thread job 60-80 us slower than half its 1-thread time.  So the caller first
    polls, without the GIL, until the job is done *and* its workers have left it
    (then the GIL is free too), for at most WAIT_SPIN_POLLS polls; then it blocks."""
    if not job.done.is_set():
        poll = _poller()
        if poll is not None:
            poll(job.state, _SCRATCH, WAIT_SPIN_POLLS)
    job.done.wait()


def _resize_pool(n_workers: int) -> None:
    """Start or stop workers so that exactly ``n_workers`` run (call with _config_lock)."""
    while len(_workers) > n_workers:
        _queue.put(None)  # whichever worker takes it exits; idle ones are blocked in get()
        _workers.pop()
    while len(_workers) < n_workers:
        t = threading.Thread(target=_worker, name=f"tinycaffe-{len(_workers)}", daemon=True)
        t.start()
        _workers.append(t)


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's worker threads: start from an empty
    pool (the next parallel_for starts workers again)."""
    global _queue, _config_lock
    _workers.clear()
    _queue = queue.SimpleQueue()
    _config_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into at most ``parts`` contiguous, non-empty, near-equal ranges."""
    if n <= 0:
        return []
    parts = max(1, min(parts, n))
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def will_split(n: int, work: Optional[float] = None) -> bool:
    """Whether parallel_for(n, ..., work=work) would use more than the calling thread."""
    if n <= 1 or get_num_threads() <= 1 or getattr(_local, "in_worker", False):
        return False
    return work is None or work >= SERIAL_BELOW_US


def parallel_for(n: int, fn: Callable[[int, int], None], blas_single: bool = False, *,
                 work: Optional[float] = None, chunks: Optional[int] = None) -> None:
    """Run fn(lo, hi) over contiguous slices covering range(n), in parallel.

    ``work``: the job's estimated single-thread time in microseconds; below
    SERIAL_BELOW_US (or with one thread, or n <= 1, or when called from a pool
    worker) fn(0, n) runs once on the calling thread.  None means "large".
    ``chunks``: number of slices (default: the thread count); more slices
    balance better when a core is busy, each costs one more fn call.
    The calling thread works too; a worker's exception is re-raised here.
    ``blas_single`` is accepted for compatibility: BLAS is always held to one
    thread while the pool runs (module docstring).
    """
    if n <= 0:
        return
    if not will_split(n, work):
        fn(0, n)
        return
    threads = get_num_threads()
    ranges = split(n, chunks or threads)
    if len(ranges) == 1:
        fn(0, n)
        return
    pin_blas()
    if len(_workers) != threads - 1:
        with _config_lock:
            _resize_pool(get_num_threads() - 1)
    job = _Job(fn, ranges)
    for _ in range(min(len(_workers), len(ranges) - 1)):
        _queue.put(job)
    job.run_some()
    _wait_for(job)
    if job.error is not None:
        raise job.error
