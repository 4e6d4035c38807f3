"""Tile: repeat along an axis, gradient sums the copies, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .gradcheck import check_gradient
from .reference_ops import random_array, tile
from .util import make_layer, run_layer

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), seeds, st.integers(1, 4), st.data())
def test_forward_matches_reference(shape, seed, tiles, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    written = data.draw(st.sampled_from([axis, axis - len(shape)]))
    x = random_array(seed, shape)
    (y,) = run_layer(f'type: "Tile" tile_param {{ axis: {written} tiles: {tiles} }}', [x])
    np.testing.assert_array_equal(y, tile(x, axis, tiles))


def test_caffe_layout():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    (y,) = run_layer('type: "Tile" tile_param { tiles: 2 }', [x])
    np.testing.assert_array_equal(y, [[1, 2, 1, 2], [3, 4, 3, 4]])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), seeds, st.integers(1, 3), st.data())
def test_gradient(shape, seed, tiles, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    check_gradient(f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}', [random_array(seed, shape)])


@pytest.mark.parametrize("param, msg", [("", "required"), ("tiles: 0", "positive"), ("tiles: -2", "positive")])
def test_bad_tiles(param, msg):
    with pytest.raises(NetError, match=msg):
        make_layer(f'type: "Tile" tile_param {{ {param} }}', [np.zeros((2, 3))])


def test_axis_out_of_range():
    with pytest.raises(NetError, match="out of range"):
        make_layer('type: "Tile" tile_param { tiles: 2 axis: 2 }', [np.zeros((2, 3))])
