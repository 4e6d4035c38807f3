"""Which implementation runs, out= buffers, argument forms, threads."""
from __future__ import annotations

import numpy as np
import pytest

from tinycaffe import kernels
from tinycaffe.kernels import numba_kernels, numpy_kernels, reference as ref, threads

from .helpers import assert_close, requires_numba


def test_without_usable_numba_the_numpy_kernels_run(monkeypatch):
    if numba_kernels is not None:
        pytest.skip("numba is usable here")
    monkeypatch.delenv("TINYCAFFE_KERNELS", raising=False)
    assert kernels.implementation(np.zeros(1, np.float32)) is numpy_kernels


def test_numba_older_than_the_minimum_is_not_trusted():
    assert kernels._version("0.56.4") < kernels.MIN_NUMBA <= kernels._version("0.58.0rc1")
    assert kernels._version("1.0") > kernels.MIN_NUMBA


@requires_numba
def test_numpy_arrays_go_to_numba_by_default(monkeypatch):
    monkeypatch.delenv("TINYCAFFE_KERNELS", raising=False)
    assert kernels.implementation(np.zeros(1, np.float32)) is numba_kernels
    monkeypatch.setenv("TINYCAFFE_KERNELS", "numpy")
    assert kernels.implementation(np.zeros(1, np.float32)) is numpy_kernels


@pytest.mark.parametrize("pref", [pytest.param("numba", marks=requires_numba), "numpy"])
def test_public_api_matches_reference(monkeypatch, pref):
    monkeypatch.setenv("TINYCAFFE_KERNELS", pref)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    out = np.full((2, 6, 5, 4), np.nan, np.float32)
    y = kernels.conv_forward(x, w, b, (2, 2), (1, 1), (1, 1), 2, out=out)
    assert y is out
    assert_close(out, ref.conv_forward(x.astype(np.float64), w, b, 2, 1, 1, 2))
    dx, dw, db = kernels.conv_backward(x, w, out, 2, 1, 1, 2, need_dx=False)
    assert dx is None and dw.shape == w.shape
    assert_close(kernels.pool_forward(x, "max", (3, 2), (2, 1), (1, 0)),
                 ref.pool_forward(x, "max", (3, 2), (2, 1), (1, 0)))
    assert_close(kernels.lrn_forward(x, 5, 1e-2, 0.75, 2.0, "across"),
                 ref.lrn_forward(x.astype(np.float64), 5, 1e-2, 0.75, 2.0, "across"))


@requires_numba
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_thread_counts_and_batch_sizes_agree(n_threads, batch):
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    w1 = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(n_threads)
        y = numba_kernels.conv_forward(x, w, b, 1, 2)
        y1 = numba_kernels.conv_forward(x, w1, b)  # the 1x1 no-im2col path
        dx, dw, db = numba_kernels.conv_backward(x, w, y, 1, 2)
    finally:
        threads.set_num_threads(before)
    x64 = x.astype(np.float64)
    assert_close(y, ref.conv_forward(x64, w, b, 1, 2))
    assert_close(y1, ref.conv_forward(x64, w1, b))
    rdx, rdw, rdb = ref.conv_backward(x64, w, y.astype(np.float64), 1, 2)
    assert_close(dx, rdx, rtol=1e-4, atol=1e-4)
    assert_close(dw, rdw, rtol=1e-4, atol=1e-3)


def test_split_covers_range():
    assert threads.split(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert threads.split(2, 4) == [(0, 1), (1, 2)]
    assert threads.split(0, 2) == []


def test_worker_exceptions_propagate():
    def boom(lo, hi):
        raise ValueError("from a worker")
    with pytest.raises(ValueError):
        threads.parallel_for(8, boom)


@pytest.mark.parametrize("module", [pytest.param(numba_kernels, marks=requires_numba, id="numba"),
                                    pytest.param(numpy_kernels, id="numpy")])
def test_empty_batch_and_bad_out(module):
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    assert module.conv_forward(x, w, None, 1, 1).shape == (0, 3, 5, 5)
    assert module.pool_forward(x, "max", 3, 2, 0).shape == (0, 2, 2, 2)
    assert module.lrn_forward(x, 3, 1.0, 0.75, 1.0, "across").shape == x.shape
    x1 = np.ones((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError):
        module.conv_forward(x1, w, None, 1, 1, out=np.zeros((1, 5, 5, 3), np.float32).transpose(0, 3, 1, 2))
