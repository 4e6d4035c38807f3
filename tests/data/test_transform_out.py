"""DataTransformer's ``out=``: the batch lands in the given buffer, equal to a fresh
result, in every branch (shared window, per-image crops, mirror, no mean); a wrong
buffer is refused with a DataError."""
import numpy as np
import pytest

from tinycaffe.data.transform import DataTransformer
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("crop", [0, 5])
@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("mean", [None, [10.0, 20.0, 30.0]])
def test_out_holds_what_a_fresh_call_returns(phase, crop, mirror, mean):
    batch = np.random.default_rng(0).integers(0, 256, (6, 3, 8, 9), dtype=np.uint8)
    p = caffe_pb2.TransformationParameter(scale=0.25, mirror=mirror, crop_size=crop)
    if mean is not None:
        p.mean_value.extend(mean)
    fresh = DataTransformer(p, phase, seed=3)(batch)
    out = np.full(fresh.shape, np.nan, np.float32)
    got = DataTransformer(p, phase, seed=3)(batch, out=out)  # same seed: same crops and flips
    assert got is out
    np.testing.assert_array_equal(out, fresh)


@pytest.mark.parametrize("bad", [np.empty((2, 3, 4, 4), np.float64), np.empty((2, 3, 4, 5), np.float32),
                                 np.empty((2, 3, 4, 8), np.float32)[..., ::2]])
def test_a_wrong_out_is_refused(bad):
    t = DataTransformer(caffe_pb2.TransformationParameter(), "TEST")
    with pytest.raises(DataError, match="out must be"):
        t(np.zeros((2, 3, 4, 4), np.uint8), out=bad)
