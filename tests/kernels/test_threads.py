"""The kernels' thread pool: thread count sources, cgroup quota, work threshold,
dynamic slices, concurrent and nested callers, BLAS held to one thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from tinycaffe import kernels
from tinycaffe.errors import TinyCaffeError
from tinycaffe.kernels import threads


@pytest.fixture
def restore_threads():
    before, threshold = threads.get_num_threads(), threads.SERIAL_BELOW_US
    yield
    threads.set_num_threads(before)
    threads.SERIAL_BELOW_US = threshold


def _blas_visible() -> bool:
    from threadpoolctl import threadpool_info

    return any(i["user_api"] == "blas" for i in threadpool_info())


# Debian's armhf NumPy links the reference BLAS, which threadpoolctl cannot see or limit
# (found by tools/arm_check.sh armv7): there is no BLAS thread count to check.
needs_visible_blas = pytest.mark.skipif(not _blas_visible(),
                                        reason="threadpoolctl sees no BLAS library here: nothing to pin")


def _pool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tinycaffe-") and t.is_alive()]


# -- where the count comes from ----------------------------------------------------------
def test_env_vars_in_order():
    assert threads.threads_from_env({}) is None
    assert threads.threads_from_env({"OMP_NUM_THREADS": "3"}) == 3
    assert threads.threads_from_env({"OMP_NUM_THREADS": "4,2"}) == 4  # nested OpenMP levels
    assert threads.threads_from_env({"TINYCAFFE_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}) == 2
    assert threads.threads_from_env({"TINYCAFFE_NUM_THREADS": " ", "OMP_NUM_THREADS": "6"}) == 6
    # BLAS's own variables limit BLAS, not the program: not read
    assert threads.threads_from_env({"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) is None


@pytest.mark.parametrize("raw", ["zero", "0", "-2", "1.5"])
def test_bad_env_value_names_the_variable(raw):
    with pytest.raises(TinyCaffeError, match="OMP_NUM_THREADS"):
        threads.threads_from_env({"OMP_NUM_THREADS": raw})


@pytest.mark.parametrize("text, expected", [("150000 100000", 2), ("100000 100000", 1),
                                            ("50000 100000", 1), ("max 100000", None), ("", None)])
def test_cgroup_v2_quota(tmp_path, text, expected):
    (tmp_path / "cpu.max").write_text(text + "\n")
    assert threads._cgroup_cpu_limit(str(tmp_path), own="") == expected


def test_cgroup_v2_own_group_and_parents(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "a" / "cpu.max").write_text("300000 100000\n")
    (tmp_path / "a" / "b" / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_cpu_limit(str(tmp_path), own="a/b") == 3  # the parent's quota binds
    (tmp_path / "a" / "b" / "cpu.max").write_text("120000 100000\n")
    assert threads._cgroup_cpu_limit(str(tmp_path), own="a/b") == 2  # the smallest wins
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/a/b\n")
    assert threads._own_cgroup_v2(str(proc)) == "a/b"


def test_cgroup_v1_quota_and_cap(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_cpu_limit(str(tmp_path), own="") == 1
    assert threads.usable_cores(str(tmp_path)) == 1  # the quota caps the affinity count
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert threads._cgroup_cpu_limit(str(tmp_path), own="") is None


def test_no_cgroup_files_means_affinity(tmp_path):
    import os

    assert threads._cgroup_cpu_limit(str(tmp_path), own="") is None
    assert threads.usable_cores(str(tmp_path)) == len(os.sched_getaffinity(0))


@needs_visible_blas
def test_set_num_threads_sizes_the_pool_and_pins_blas(restore_threads):
    from threadpoolctl import threadpool_info

    threads.set_num_threads(3)
    assert kernels.get_num_threads() == 3
    assert len(_pool_threads()) == 2  # the caller is the third thread
    threads.set_num_threads(1)
    for _ in range(100):  # stopped workers exit once they take their signal
        if not _pool_threads():
            break
        threading.Event().wait(0.01)
    assert _pool_threads() == []
    assert kernels.set_num_threads is threads.set_num_threads
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_nonsense(bad):
    with pytest.raises(TinyCaffeError):
        threads.set_num_threads(bad)


def test_set_num_threads_takes_numpy_ints(restore_threads):
    threads.set_num_threads(np.int64(2))
    assert threads.get_num_threads() == 2 and type(threads.get_num_threads()) is int


def test_cli_threads_flag_sets_the_pool(restore_threads):
    from tinycaffe.cli.common import set_threads

    set_threads(2)
    assert threads.get_num_threads() == 2
    with pytest.raises(TinyCaffeError, match="--threads"):
        set_threads(0)


# -- parallel_for ----------------------------------------------------------------------
def test_small_work_stays_on_the_calling_thread(restore_threads):
    threads.set_num_threads(2)
    calls = []
    threads.parallel_for(100, lambda lo, hi: calls.append((lo, hi, threading.current_thread())),
                         work=threads.SERIAL_BELOW_US / 2)
    assert calls == [(0, 100, threading.current_thread())]


@pytest.mark.parametrize("n_threads, chunks", [(1, None), (2, None), (2, 7), (3, 5)])
def test_large_work_covers_every_index_once(restore_threads, n_threads, chunks):
    threads.set_num_threads(n_threads)
    hits = np.zeros(1000, np.int64)
    lock = threading.Lock()

    def fn(lo, hi):
        with lock:
            hits[lo:hi] += 1

    threads.parallel_for(1000, fn, work=1e9, chunks=chunks)
    assert (hits == 1).all()


def test_worker_exception_reaches_the_caller(restore_threads):
    threads.set_num_threads(2)

    def fn(lo, hi):
        if lo > 0:
            raise KeyError("from a slice")

    with pytest.raises(KeyError):
        threads.parallel_for(10, fn, chunks=4)
    hits = []
    threads.parallel_for(4, lambda lo, hi: hits.append((lo, hi)))  # the pool still works
    assert sorted(hits) == [(0, 2), (2, 4)]


def _finishes(target, timeout=30.0):
    done = threading.Event()

    def run():
        target()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return done.wait(timeout)


def test_nested_calls_do_not_deadlock(restore_threads):
    threads.set_num_threads(2)
    total = []

    def inner(lo, hi):
        total.append(hi - lo)

    def outer(lo, hi):
        for _ in range(lo, hi):
            threads.parallel_for(8, inner)

    assert _finishes(lambda: threads.parallel_for(6, outer, chunks=6))
    assert sum(total) == 6 * 8


def test_concurrent_callers_each_get_their_whole_job(restore_threads):
    """Several threads (several Nets) share the pool without a global lock."""
    threads.set_num_threads(2)
    results = {}

    def caller(k):
        acc = np.zeros(64, np.int64)

        def fn(lo, hi):
            acc[lo:hi] += k

        for _ in range(200):
            threads.parallel_for(64, fn, chunks=4)
        results[k] = acc

    callers = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(1, 5)]
    assert _finishes(lambda: ([t.start() for t in callers], [t.join() for t in callers]))
    for k in range(1, 5):
        assert (results[k] == 200 * k).all()


@pytest.mark.skipif(not hasattr(__import__("time"), "pthread_getcpuclockid"), reason="needs per-thread CPU clocks")
def test_idle_workers_do_not_spin(restore_threads):
    """After a job the pool's workers block: a worker burns (almost) no CPU while
    the caller sleeps (an OpenBLAS-style spin would burn a whole core)."""
    import time

    threads.set_num_threads(2)
    threads.parallel_for(64, lambda lo, hi: None, chunks=8)
    clocks = [time.pthread_getcpuclockid(t.ident) for t in _pool_threads()]
    assert clocks
    start = [time.clock_gettime(c) for c in clocks]
    time.sleep(0.3)
    used = max(time.clock_gettime(c) - s for c, s in zip(clocks, start))
    assert used < 0.05


def test_forked_child_gets_a_working_pool(restore_threads):
    import multiprocessing as mp

    threads.set_num_threads(2)
    threads.parallel_for(8, lambda lo, hi: None, chunks=4)  # the parent's worker is running
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        hits = np.zeros(100, np.int64)
        lock = threading.Lock()

        def fn(lo, hi):
            with lock:
                hits[lo:hi] += 1

        threads.parallel_for(100, fn, chunks=5)
        q.put((int(hits.sum()), len(_pool_threads())))

    p = ctx.Process(target=child)
    p.start()
    got = q.get(timeout=60)
    p.join(60)
    assert got == (100, 1)  # every index once, and the child started its own worker


@pytest.mark.parametrize("env, expected", [({"TINYCAFFE_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, 3),
                                           ({"OMP_NUM_THREADS": "1"}, 1)])
def test_a_fresh_process_reads_the_environment(env, expected):
    """End to end: the variables decide the count, and BLAS is held to one thread."""
    import os
    import subprocess
    import sys

    code = ("import tinycaffe, threadpoolctl; n = tinycaffe.kernels.get_num_threads(); "
            "b = {i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'}; "
            "print(n, sorted(b))")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TINYCAFFE_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split(maxsplit=1)
    assert int(out[0]) == expected
    assert out[1].strip() == ("[1]" if _blas_visible() else "[]")


@needs_visible_blas
def test_blas_threads_lends_blas_the_count_then_takes_it_back(restore_threads):
    from threadpoolctl import threadpool_info

    def blas():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    threads.set_num_threads(2)
    assert blas() == {1}
    with threads.blas_threads(2):
        assert blas() == {2}
    assert blas() == {1}


def test_numpy_fallback_conv_runs_blas_on_the_thread_count(restore_threads, monkeypatch):
    """Without Numba the NumPy kernels have no pool: their GEMMs get BLAS's threads."""
    from tinycaffe.kernels import numpy_kernels

    seen = []
    real = threads.blas_threads

    def spy(n):
        seen.append(n)
        return real(n)

    monkeypatch.setattr(threads, "blas_threads", spy)
    threads.set_num_threads(2)
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    numpy_kernels.conv_forward(x, w, None)
    assert seen == [2]
    threads.set_num_threads(1)
    numpy_kernels.conv_forward(x, w, None)
    assert seen == [2]  # one thread: BLAS stays at one, no context switch
