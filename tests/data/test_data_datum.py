"""Datum <-> array conversion."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinycaffe.data.datum import array_to_datum, datum_to_array
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2

shapes = st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9))


@settings(max_examples=60, deadline=None)
@given(arr=hnp.arrays(np.uint8, shapes), label=st.integers(-2**31, 2**31 - 1))
def test_round_trip_through_bytes(arr, label):
    d = caffe_pb2.Datum()
    d.ParseFromString(array_to_datum(arr, label).SerializeToString())
    out, out_label = datum_to_array(d)
    assert out.dtype == np.uint8 and out_label == label
    np.testing.assert_array_equal(out, arr)


@settings(max_examples=30, deadline=None)
@given(arr=hnp.arrays(np.float32, shapes, elements=st.floats(-1e6, 1e6, width=32)))
def test_float_data(arr):
    d = caffe_pb2.Datum(channels=arr.shape[0], height=arr.shape[1], width=arr.shape[2],
                        float_data=arr.ravel().tolist(), label=3)
    out, label = datum_to_array(d)
    assert out.dtype == np.float32 and label == 3
    np.testing.assert_array_equal(out, arr)


def test_serialized_layout_matches_caffe_converters():
    # channels=3, height=32, width=32, data (3072 bytes), label=7: field order 1..5.
    raw = array_to_datum(np.zeros((3, 32, 32), np.uint8), 7).SerializeToString()
    assert raw[:9] == bytes([0x08, 3, 0x10, 32, 0x18, 32, 0x22, 0x80, 0x18])
    assert raw[-2:] == bytes([0x28, 7]) and len(raw) == 9 + 3072 + 2


def test_label_zero_is_written():
    raw = array_to_datum(np.zeros((1, 1, 1), np.uint8), 0).SerializeToString()
    assert raw.endswith(bytes([0x28, 0]))


def test_undecodable_encoded_datum_names_its_key():
    d = caffe_pb2.Datum(channels=3, height=2, width=2, data=b"\xff\xd8\xff", encoded=True)
    with pytest.raises(DataError, match=r"some/key \(encoded datum\): cannot decode image"):
        datum_to_array(d, "some/key")


@pytest.mark.parametrize("datum", [
    caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abc"),
    caffe_pb2.Datum(channels=1, height=2, width=2, float_data=[1.0]),
    caffe_pb2.Datum(channels=1, height=2, width=2),
    caffe_pb2.Datum(channels=0, height=2, width=2, data=b""),
])
def test_bad_datums(datum):
    with pytest.raises(DataError, match="where-it-is"):
        datum_to_array(datum, "where-it-is")


def test_array_to_datum_rejects_non_uint8():
    with pytest.raises(DataError):
        array_to_datum(np.zeros((1, 2, 2), np.float32), 0)
    with pytest.raises(DataError):
        array_to_datum(np.zeros((2, 2), np.uint8), 0)
