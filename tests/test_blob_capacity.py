"""Blob's capacity rule (Caffe's Blob::Reshape): the buffer is kept while the new count fits."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tinycaffe.blob import Blob
from tinycaffe.errors import ShapeError


def test_a_new_blob_is_zeroed_and_its_capacity_is_its_count():
    b = Blob("b", shape=(2, 3))
    assert b.shape == (2, 3) and b.count == 6 and b.capacity == 6
    assert not b.data.any()
    assert Blob("scalar").capacity == 1 and Blob("scalar").shape == ()


def test_shrinking_keeps_the_buffer_and_its_stale_values():
    b = Blob("b", shape=(4, 3))
    b.data[...] = np.arange(12, dtype=np.float32).reshape(4, 3)
    b.reshape(2, 3)
    assert b.capacity == 12 and b.shape == (2, 3)
    # The first count elements of the same buffer, not zeros: Caffe's semantics.
    np.testing.assert_array_equal(b.data, np.arange(6, dtype=np.float32).reshape(2, 3))
    b.reshape(3, 2)  # any shape whose count fits
    np.testing.assert_array_equal(b.data.ravel(), np.arange(6, dtype=np.float32))
    b.reshape(4, 3)  # back to the capacity: nothing was lost or reallocated
    np.testing.assert_array_equal(b.data.ravel(), np.arange(12, dtype=np.float32))
    assert b.capacity == 12


def test_growing_allocates_a_zeroed_buffer_of_exactly_the_new_count():
    b = Blob("b", shape=(2, 3))
    b.data[...] = 7
    b.reshape(5, 3)
    assert b.capacity == 15 and b.shape == (5, 3)
    assert not b.data.any()


def test_the_same_shape_keeps_the_same_array_and_a_new_shape_gives_a_new_view():
    b = Blob("b", shape=(4, 3))
    first = b.data
    b.reshape(4, 3)
    assert b.data is first
    b.reshape(2, 3)
    assert b.data is not first and np.shares_memory(b.data, first)
    assert b.data.flags.c_contiguous


def test_memory_is_not_given_back_and_reshape_within_capacity_allocates_nothing():
    b = Blob("b", shape=(256, 1024))  # 1 MiB
    b.diff  # noqa: B018 - allocate the diff buffer too
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for n in (1, 100, 7, 256, 3, 200):
            b.reshape(n, 1024)
            b.diff[...] = 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < 64 * 1024, f"reshapes within capacity allocated {peak - before} bytes"
    assert b.capacity == 256 * 1024


def test_diff_is_lazy_and_follows_the_same_rule():
    b = Blob("b", shape=(4, 3))
    assert b._diff_buf is None  # inference never pays for a diff
    b.diff[...] = np.arange(12, dtype=np.float32).reshape(4, 3)
    b.reshape(2, 3)
    assert b.diff.shape == (2, 3)
    np.testing.assert_array_equal(b.diff.ravel(), np.arange(6, dtype=np.float32))
    b.reshape(6, 3)
    assert b.diff.shape == (6, 3) and not b.diff.any()


def test_set_view_then_reshape_gives_the_blob_its_own_buffer_again():
    b = Blob("b", shape=(4, 3))
    other = np.ones((2, 3), np.float32)
    b.set_view(other)
    assert b.data is other and b.capacity == 0  # its own buffer was dropped
    b.reshape(2, 3)  # even at the same shape, a reshape leaves the view
    assert not np.shares_memory(b.data, other) and b.capacity == 6
    b.data[...] = 5
    assert (other == 1).all()


def test_adopted_array_is_the_buffer_later_reshapes_reuse():
    b = Blob("b", shape=(4, 3))
    arr = np.arange(12, dtype=np.float32).reshape(4, 3)
    b.adopt(arr)
    assert b.data is arr and b.capacity == 12
    b.reshape(3, 2)
    assert np.shares_memory(b.data, arr)
    strided = np.zeros((4, 6), np.float32)[:, ::2]
    b.reshape(4, 3)
    b.adopt(strided)  # not one flat block: used as it is, and the next new shape allocates
    assert b.data is strided and b.capacity == 0
    b.reshape(2, 3)
    assert not np.shares_memory(b.data, strided) and b.capacity == 6


def test_bad_shapes_are_refused():
    b = Blob("b", shape=(2,))
    with pytest.raises(ShapeError, match="negative dimension"):
        b.reshape(-1, 2)
    with pytest.raises(ShapeError, match="call reshape first"):
        b.data = np.zeros(3)
