"""DummyData: shapes (new and legacy), fillers (none, one, per top), refill rule, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError

from .util import make_layer, run_layer


def shape_text(shape):
    return "shape { " + " ".join(f"dim: {d}" for d in shape) + " }"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple), min_size=1, max_size=3),
       st.floats(-5, 5, allow_nan=False, width=32))
def test_shapes_and_constant_filler(shapes, value):
    body = " ".join(shape_text(s) for s in shapes)
    body += f' data_filler {{ type: "constant" value: {value!r} }}'
    tops = run_layer(f"type: 'DummyData' dummy_data_param {{ {body} }}", [], n_tops=len(shapes))
    for t, s in zip(tops, shapes):
        assert t.shape == s
        np.testing.assert_array_equal(t, np.float32(value))


def test_one_shape_for_all_tops_and_default_zero():
    a, b = run_layer("type: 'DummyData' dummy_data_param { shape { dim: 2 dim: 3 } }", [], n_tops=2)
    assert a.shape == b.shape == (2, 3)
    assert not a.any() and not b.any()


def test_legacy_dims():
    a, b = run_layer("type: 'DummyData' dummy_data_param { num: 2 num: 5 channels: 3 height: 4 width: 1 }",
                     [], n_tops=2)
    assert a.shape == (2, 3, 4, 1) and b.shape == (5, 3, 4, 1)


def test_random_tops_refill_and_constant_tops_do_not():
    text = ("type: 'DummyData' dummy_data_param { shape { dim: 50 } "
            "data_filler { type: 'gaussian' std: 2 } data_filler { type: 'constant' value: 1 } }")
    layer, b, t = make_layer(text, [], n_tops=2)
    layer.forward(b, t)
    first = t[0].data.copy()
    assert 1.0 < first.std() < 3.0
    t[1].data[...] = 9.0  # Caffe fills constant tops once, at setup
    layer.forward(b, t)
    assert not np.array_equal(first, t[0].data)
    np.testing.assert_array_equal(t[1].data, 9.0)


def test_one_filler_for_all_tops():
    text = "type: 'DummyData' dummy_data_param { shape { dim: 3 } data_filler { type: 'uniform' min: 2 max: 3 } }"
    a, b = run_layer(text, [], n_tops=2)
    assert np.all((a >= 2) & (a <= 3)) and np.all((b >= 2) & (b <= 3))


@pytest.mark.parametrize("body, msg", [
    ("shape { dim: 2 } data_filler {} data_filler {}", "data_filler"),
    ("shape { dim: 2 } shape { dim: 2 }", "shape"),
    ("", "shape"),
    ("shape { dim: 2 } num: 1 channels: 1 height: 1 width: 1", "not both"),
    ("num: 1 num: 2 num: 3 channels: 1 height: 1 width: 1", "'num'"),
    ("num: 1 channels: 1 height: 1", "'width'"),
    ("shape { dim: -1 }", "negative"),
])
def test_bad_parameters(body, msg):
    with pytest.raises(NetError, match=msg):
        make_layer(f"type: 'DummyData' dummy_data_param {{ {body} }}", [], n_tops=2 if "num: 3" in body else 1)
