"""Lossy wire dtypes: uint8 linear quantisation and float16."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinycaffe.wire import Decoder, Encoding, LocalProtocolError, dequantize_u8, encode_data, join, quantize_u8

from .wire_helpers import drain, examples

SETTINGS = settings(max_examples=examples(100), deadline=None)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=8)


def finite(dtype, width, limit=None):
    return hnp.arrays(dtype, shapes, elements=st.floats(-limit if limit else None, limit,
                                                          allow_nan=False, allow_infinity=False, width=width))


def bound(a: np.ndarray, scale: float) -> float:
    """scale/2, plus the float rounding of computing and storing q*scale + offset."""
    info = np.finfo(a.dtype)
    mag = float(np.max(np.abs(a.astype(np.float64)))) if a.size else 0.0
    return scale / 2 * (1 + 1e-4) + 3 * mag * float(info.eps) + float(info.smallest_subnormal)


def through_wire(blobs, wire):
    dec = Decoder()
    dec.feed(join(encode_data(0, blobs, wire)))
    (ev,) = drain(dec)
    return ev.blobs


@SETTINGS
@given(finite(np.float32, 32, limit=2.0 ** 126))  # a range reaching float32's max may be refused (tested below)
def test_uint8_error_is_within_half_a_step(a):
    q, scale, offset = quantize_u8(a)
    back = dequantize_u8(q, scale, offset, np.empty_like(a))
    assert q.dtype == np.uint8 and q.shape == a.shape
    assert np.max(np.abs(back.astype(np.float64) - a)) <= bound(a, scale)


@SETTINGS
@given(finite(np.float64, 64, limit=4e307))  # wider ranges are refused (next tests)
def test_uint8_error_bound_for_float64(a):
    q, scale, offset = quantize_u8(a)
    back = dequantize_u8(q, scale, offset, np.empty_like(a))
    assert np.all(np.abs(back - a) <= bound(a, scale))


@SETTINGS
@given(finite(np.float32, 32, limit=float(np.float32(1e38))))  # wider ranges are refused at the sender
def test_uint8_through_the_codec(a):
    got = through_wire({"x": a}, Encoding.UINT8)["x"]
    assert got.dtype == np.float32 and got.shape == a.shape
    _, scale, _ = quantize_u8(a)
    assert np.max(np.abs(got.astype(np.float64) - a)) <= bound(a, scale)


def test_uint8_maps_min_and_max_to_the_ends():
    a = np.array([-1.0, 0.5, 3.0], np.float32)
    q, scale, offset = quantize_u8(a)
    assert q[0] == 0 and q[-1] == 255 and offset == -1.0 and scale == pytest.approx(4 / 255)


def test_uint8_constant_and_empty_blobs():
    a = np.full((3, 3), 7.5, np.float32)
    np.testing.assert_array_equal(through_wire({"c": a}, Encoding.UINT8)["c"], a)
    e = np.zeros((0, 4), np.float32)
    assert through_wire({"e": e}, Encoding.UINT8)["e"].shape == (0, 4)


def test_uint8_refuses_non_finite_blobs():
    with pytest.raises(LocalProtocolError, match="NaN or infinity"):
        encode_data(0, {"x": np.array([1.0, np.nan], np.float32)}, Encoding.UINT8)
    with pytest.raises(LocalProtocolError, match="too wide"):
        encode_data(0, {"x": np.array([-1.7e308, 1.7e308])}, Encoding.UINT8)


def test_uint8_full_float32_range_does_not_overflow():
    big = float(np.finfo(np.float32).max)
    a = np.array([-big, 0.0, big], np.float32)
    got = through_wire({"x": a}, Encoding.UINT8)["x"]
    assert np.all(np.isfinite(got))
    _, scale, _ = quantize_u8(a)
    assert np.max(np.abs(got.astype(np.float64) - a)) <= bound(a, scale)


def test_lossy_encodings_leave_integer_blobs_exact():
    labels = np.arange(-3, 300, dtype=np.int32)
    for wire in (Encoding.UINT8, Encoding.FLOAT16):
        np.testing.assert_array_equal(through_wire({"l": labels}, wire)["l"], labels)


@SETTINGS
@given(hnp.arrays(np.float32, shapes, elements=st.floats(width=32)))
def test_float16_round_trip_equals_numpy_cast(a):
    got = through_wire({"x": a}, Encoding.FLOAT16)["x"]
    assert got.dtype == np.float32
    with np.errstate(over="ignore"):
        want = a.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, want)  # NaNs compare equal here


def test_uint8_halves_and_quarters_the_bytes():
    a = np.random.default_rng(0).standard_normal((100, 32, 16, 16), dtype=np.float32)
    sizes = {w: sum(len(b) for b in encode_data(0, {"x": a}, w)) for w in Encoding}
    assert sizes[Encoding.FLOAT16] < sizes[Encoding.RAW] / 2 + 200
    assert sizes[Encoding.UINT8] < sizes[Encoding.RAW] / 4 + 200


def test_uint8_carries_labels_exactly():
    # A label blob crosses the cut beside the features: it must not come back as 0.988.
    labels = np.arange(10, dtype=np.float32)
    assert np.array_equal(through_wire({"label": labels}, Encoding.UINT8)["label"], labels)
    ids = np.array([3.0, 258.0, 100.0], np.float32)  # a 255-wide span of whole numbers
    assert np.array_equal(through_wire({"ids": ids}, Encoding.UINT8)["ids"], ids)
