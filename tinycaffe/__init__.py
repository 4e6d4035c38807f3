"""tinycaffe: a small, fast, Caffe-compatible CNN engine.

    import tinycaffe
    net = tinycaffe.Net("deploy.prototxt", weights="model.caffemodel", phase="test")
    out = net.forward(data=images)          # {"prob": array}
"""
from .errors import DataError, FormatError, NetError, ShapeError, TinyCaffeError, WireError
from .net import Blob, Net

__version__ = "0.1.0"
TRAIN, TEST = "train", "test"  # pycaffe's caffe.TRAIN / caffe.TEST
__all__ = [
    "TRAIN", "TEST", "Blob", "Net", "TinyCaffeError", "FormatError", "NetError", "ShapeError", "DataError", "WireError",
]
