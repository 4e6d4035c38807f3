"""How parallel_for's caller waits for the workers (threads._wait_for): it polls a job's
state without the GIL until the job is done and its workers have left it, then blocks on
the job's Event; the result never depends on which of the two noticed first."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tinycaffe.kernels import threads


@pytest.fixture
def two_threads():
    before, polls = threads.get_num_threads(), threads.WAIT_SPIN_POLLS
    threads.set_num_threads(2)
    yield
    threads.WAIT_SPIN_POLLS = polls
    threads.set_num_threads(before)


def test_poller_waits_for_done_and_for_the_workers_to_leave():
    poll = threads._poller()
    if poll is None:
        pytest.skip("numba not importable: the caller blocks on the Event instead")
    state = np.zeros(3, np.int64)
    assert not poll(state, threads._SCRATCH, 1000)  # not done
    state[threads._DONE] = 1
    state[threads._INSIDE] = 1
    assert not poll(state, threads._SCRATCH, 1000)  # done, but a worker is still inside
    state[threads._INSIDE] = 0
    assert poll(state, threads._SCRATCH, 1000)
    assert state[threads._SCRATCH] == 2000  # it polled the whole budget both times it failed


@pytest.mark.parametrize("polls", [0, 10, 200_000])
@pytest.mark.parametrize("numba", [True, False])
def test_the_caller_returns_only_after_a_slow_worker_slice(two_threads, monkeypatch, polls, numba):
    """The worker's slice outlasts both the poll budget and the caller's own slice, so
    every way of waiting (polling only, polling then blocking, blocking only) is used."""
    threads.WAIT_SPIN_POLLS = polls
    if not numba:
        monkeypatch.setattr(threads, "_poll", False)
    finished = []
    main = threading.get_ident()

    def fn(lo, hi):
        if threading.get_ident() != main:
            time.sleep(0.02)  # releases the GIL, as a kernel does
        finished.append((lo, hi))

    for _ in range(5):
        finished.clear()
        threads.parallel_for(2, fn, work=1e6)
        assert sorted(finished) == [(0, 1), (1, 2)]


def test_a_job_state_ends_done_with_no_worker_inside(two_threads):
    jobs = []
    real = threads._Job

    class Recorded(real):
        __slots__ = ()

        def __init__(self, *a):
            super().__init__(*a)
            jobs.append(self)

    threads._Job = Recorded
    try:
        out = np.zeros(1000)

        def fn(lo, hi):
            time.sleep(0.002)
            out[lo:hi] += 1

        for _ in range(10):
            threads.parallel_for(1000, fn, work=1e6)
    finally:
        threads._Job = real
    assert (out == 10).all()
    assert jobs and all(j.state[threads._DONE] == 1 for j in jobs)
    deadline = time.monotonic() + 5
    while any(j.state[threads._INSIDE] for j in jobs) and time.monotonic() < deadline:
        time.sleep(0.01)  # a worker may still be between its last slice and the queue
    assert not any(j.state[threads._INSIDE] for j in jobs)
