"""tinycaffe: a small, fast, Caffe-compatible CNN engine.

    import tinycaffe
    net = tinycaffe.Net("deploy.prototxt", weights="model.caffemodel", phase="test")
    out = net.forward(data=images)          # {"prob": array}

pycaffe scripts run with ``import tinycaffe as caffe``:

    net = caffe.Net("deploy.prototxt", "model.caffemodel", caffe.TEST)
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    solver = caffe.SGDSolver("solver.prototxt"); solver.step(100)
"""
from . import draw, io
from .classifier import Classifier
from .errors import DataError, FormatError, NetError, ShapeError, TinyCaffeError, WireError
from .kernels import get_num_threads, set_num_threads
from .net import Blob, Net

# pycaffe's ``caffe.layers`` is net_spec's layer factory, but importing the
# ``tinycaffe.layers`` subpackage for the first time would set this package's
# ``layers`` attribute to the subpackage. Import it now, so the name bound
# below stays the factory however the process imports things later.
from . import layers as _layer_types  # noqa: F401,E402
from .net_spec import NetSpec, layers, params, to_proto  # noqa: E402
from .proto import caffe_pb2
from .pycaffe import layer_type_list, set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from .pysolver import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver, RMSPropSolver,
                       SGDSolver, get_solver)

__version__ = "0.1.0"
# pycaffe's caffe.TRAIN / caffe.TEST are Caffe's Phase enum values (0 / 1); Net also takes "train" / "test".
TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
__all__ = [
    "TRAIN", "TEST", "Blob", "Net", "Classifier", "TinyCaffeError", "FormatError", "NetError", "ShapeError",
    "DataError", "WireError", "draw", "io", "caffe_pb2", "get_num_threads", "set_num_threads",
    "NetSpec", "layers", "params", "to_proto", "layer_type_list", "set_device", "set_mode_cpu", "set_mode_gpu", "set_random_seed",
    "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "get_solver",
]
