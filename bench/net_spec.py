"""A tinycaffe Net (TEST phase) as a plain, engine-neutral list of layers plus its weights.

The peers in bench/forward.py (ONNX Runtime, PyTorch) are built from this list, so
all three engines run the same graph on the same weights. Only the layer types of
the benchmarked nets are described (Input, Convolution, Pooling, LRN, ReLU,
InnerProduct, Softmax, Concat, Split, Dropout, Flatten); any other type raises.
Caffe's own semantics are kept in the fields: ceil-rounded pooling (``round_mode``),
LRN's region, the clipped AVE divisor (only pad 0 is described, where every engine
agrees on it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinycaffe.proto import caffe_pb2

Layer = dict[str, Any]


def net_spec(net) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """(layers, weights) of ``net``: each layer a dict with type, name, bottoms, tops and
    its hyper-parameters; weights keyed ``"<layer>.<i>"``."""
    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    for layer, bottoms, tops in zip(net.layers, net.bottom_names, net.top_names):
        spec: Layer = {"type": layer.type, "name": layer.name, "bottoms": list(bottoms), "tops": list(tops),
                       "top_shapes": [list(net.blobs[n].shape) for n in tops]}
        t = layer.type
        if t == "Input":
            spec["shapes"] = [list(net.blobs[n].shape) for n in tops]
        elif t == "Convolution":
            spec.update(kernel=list(layer.kernel), stride=list(layer.stride), pad=list(layer.pad),
                        dilation=list(layer.dilation), group=layer.group, bias=layer.bias_term)
        elif t == "Pooling":
            if layer.round_mode != caffe_pb2.PoolingParameter.CEIL:
                raise ValueError(f"layer '{layer.name}': only CEIL pooling is described")
            method = "max" if layer.method == caffe_pb2.PoolingParameter.MAX else "ave"
            if method == "ave" and layer.pad != (0, 0):
                # Caffe's divisor clips the window to the padded input; the peers' do not agree.
                raise ValueError(f"layer '{layer.name}': AVE pooling with padding is not described")
            spec.update(method=method, kernel=list(layer.kernel), stride=list(layer.stride),
                        pad=list(layer.pad), global_pooling=layer.global_pooling)
        elif t == "LRN":
            spec.update(size=layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k, region=layer.region)
        elif t == "ReLU":
            spec["slope"] = layer.slope
        elif t == "InnerProduct":
            if layer.axis != 1 or layer.transpose:
                raise ValueError(f"layer '{layer.name}': only axis 1, untransposed InnerProduct is described")
            spec["bias"] = layer.bias_term
        elif t == "Softmax":
            spec["axis"] = layer.axis
        elif t == "Concat":
            spec["axis"] = layer.axis
        elif t in ("Split", "Dropout", "Flatten"):
            pass  # Dropout is the identity in the TEST phase
        else:
            raise ValueError(f"layer '{layer.name}': type {t} is not described for the peers")
        for i, blob in enumerate(layer.blobs):
            weights[f"{layer.name}.{i}"] = np.ascontiguousarray(blob.data, dtype=np.float32)
        layers.append(spec)
    return layers, weights
