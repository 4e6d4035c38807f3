"""Bring old-style net definitions up to the current NetParameter form.

Caffe rewrites a net on load (util/upgrade_proto.cpp) so that the rest of the
code only ever sees ``layer`` entries with string types and an Input layer.
``upgrade_net`` performs the same steps, in Caffe's order:

1. V1 ``layers`` (enum types, blobs_lr, ...)    -> ``layer``, with the old
   preprocessing fields of V1 data layers moved into ``transform_param``
2. net-level ``input`` + shapes                 -> a leading Input layer
3. BatchNorm layers with three param specs      -> lr_mult/decay_mult 0

V0 nets (a ``layer`` message nested inside each V1 layer) are not supported.
"""

from __future__ import annotations

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2

_V1 = caffe_pb2.V1LayerParameter

# V1 enum value -> the string type Caffe registers the layer under.
V1_TYPE_NAMES: dict[int, str] = {
    _V1.NONE: "",
    _V1.ABSVAL: "AbsVal",
    _V1.ACCURACY: "Accuracy",
    _V1.ARGMAX: "ArgMax",
    _V1.BNLL: "BNLL",
    _V1.CONCAT: "Concat",
    _V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    _V1.CONVOLUTION: "Convolution",
    _V1.DECONVOLUTION: "Deconvolution",
    _V1.DATA: "Data",
    _V1.DROPOUT: "Dropout",
    _V1.DUMMY_DATA: "DummyData",
    _V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    _V1.ELTWISE: "Eltwise",
    _V1.EXP: "Exp",
    _V1.FLATTEN: "Flatten",
    _V1.HDF5_DATA: "HDF5Data",
    _V1.HDF5_OUTPUT: "HDF5Output",
    _V1.HINGE_LOSS: "HingeLoss",
    _V1.IM2COL: "Im2col",
    _V1.IMAGE_DATA: "ImageData",
    _V1.INFOGAIN_LOSS: "InfogainLoss",
    _V1.INNER_PRODUCT: "InnerProduct",
    _V1.LRN: "LRN",
    _V1.MEMORY_DATA: "MemoryData",
    _V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    _V1.MVN: "MVN",
    _V1.POOLING: "Pooling",
    _V1.POWER: "Power",
    _V1.RELU: "ReLU",
    _V1.SIGMOID: "Sigmoid",
    _V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    _V1.SILENCE: "Silence",
    _V1.SOFTMAX: "Softmax",
    _V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    _V1.SPLIT: "Split",
    _V1.SLICE: "Slice",
    _V1.TANH: "TanH",
    _V1.WINDOW_DATA: "WindowData",
    _V1.THRESHOLD: "Threshold",
}

# Data layers whose own message still carries the pre-transform_param fields.
_DATA_PARAM_OF_TYPE = {
    _V1.DATA: "data_param",
    _V1.IMAGE_DATA: "image_data_param",
    _V1.WINDOW_DATA: "window_data_param",
}
_MOVED_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def net_needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """True if ``upgrade_net`` would change ``net``."""
    return bool(net.layers) or bool(net.input) or any(
        _is_old_batch_norm(layer) for layer in net.layer
    )


def upgrade_net(net: caffe_pb2.NetParameter, source: str = "<net>") -> caffe_pb2.NetParameter:
    """Return an upgraded copy of ``net``; ``net`` itself is left untouched.

    ``source`` names the net in error messages.  Raises FormatError for V0
    nets, for nets mixing ``layer`` and ``layers``, and for input shapes that
    do not match the input names.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layer")
    out.ClearField("layers")
    if net.input:
        input_layer = _input_layer(net, source)
        if input_layer is not None:
            out.layer.append(input_layer)
        # Names without shapes (old caffemodels) just disappear, as in Caffe.
        out.ClearField("input")
        out.ClearField("input_shape")
        out.ClearField("input_dim")
    if net.layers:
        if any(v1.HasField("layer") for v1 in net.layers):
            raise FormatError(f"{source}: V0 nets not supported (upgrade it with Caffe's upgrade_net_proto_text)")
        if net.layer:
            # Caffe would drop the `layer` entries with only a log line;
            # losing layers silently is worse than refusing.
            raise FormatError(f"{source}: net mixes V1 'layers' and current 'layer' entries")
        for v1 in net.layers:
            _upgrade_v1_layer(v1, out.layer.add(), source)
    else:
        out.layer.extend(net.layer)
    for layer in out.layer:
        if _is_old_batch_norm(layer):
            # Old BatchNorm nets froze the statistics blobs through param specs;
            # Caffe now requires those to have zero learning rate.
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
    return out


def _is_old_batch_norm(layer: caffe_pb2.LayerParameter) -> bool:
    return layer.type == "BatchNorm" and len(layer.param) == 3


def _move_transform_fields(v1_type: int, layer: caffe_pb2.LayerParameter) -> None:
    field = _DATA_PARAM_OF_TYPE.get(v1_type)
    if field is None or not layer.HasField(field):
        return
    params = getattr(layer, field)
    for name in _MOVED_TRANSFORM_FIELDS:
        if params.HasField(name):
            setattr(layer.transform_param, name, getattr(params, name))
            params.ClearField(name)


def _upgrade_v1_layer(v1: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter, source: str) -> None:
    """Fill ``layer`` from the V1 description ``v1``."""
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        try:
            layer.type = V1_TYPE_NAMES[v1.type]
        except KeyError:
            raise FormatError(f"{source}: layer {v1.name!r}: unknown V1 layer type {v1.type}") from None
    layer.blobs.extend(v1.blobs)

    def spec(i: int) -> caffe_pb2.ParamSpec:
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        # The two DimCheckMode enums share their numbering.
        spec(i).share_mode = mode
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)

    # Every *_param of V1LayerParameter has a same-named field in
    # LayerParameter, so copy whichever are present by name.
    for fd, value in v1.ListFields():
        if fd.name.endswith("_param"):
            getattr(layer, fd.name).CopyFrom(value)
    _move_transform_fields(v1.type, layer)


def _input_layer(net: caffe_pb2.NetParameter, source: str) -> caffe_pb2.LayerParameter | None:
    """The Input layer that replaces net-level input declarations, if shaped."""
    names = list(net.input)
    shapes = [list(s.dim) for s in net.input_shape]
    dims = list(net.input_dim)
    if not shapes and not dims:
        return None
    if shapes:
        if len(shapes) < len(names):
            raise FormatError(f"{source}: {len(names)} inputs but {len(shapes)} input_shape entries")
    else:
        if len(dims) < 4 * len(names):
            raise FormatError(
                f"{source}: {len(names)} inputs need {4 * len(names)} input_dim values, got {len(dims)}"
            )
        shapes = [dims[4 * i : 4 * i + 4] for i in range(len(names))]
    layer = caffe_pb2.LayerParameter(name="input", type="Input")
    layer.top.extend(names)
    for shape in shapes[: len(names)]:
        layer.input_param.shape.add().dim.extend(shape)
    return layer
