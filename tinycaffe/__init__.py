"""tinycaffe: a small, fast, Caffe-compatible CNN engine.

    import tinycaffe
    net = tinycaffe.Net("deploy.prototxt", weights="model.caffemodel", phase="test")
    out = net.forward(data=images)          # {"prob": array}
"""
from .errors import DataError, FormatError, NetError, ShapeError, TinyCaffeError, WireError
from .net import Blob, Net

__version__ = "0.1.0"
__all__ = [
    "Blob", "Net", "TinyCaffeError", "FormatError", "NetError", "ShapeError", "DataError", "WireError",
]
