"""The layer list of bench/net_spec.py as an ONNX graph, built with the ``onnx`` helpers.

Dev-only (``pip install onnx``). Caffe -> ONNX, as ONNX Runtime runs it:
Convolution -> Conv; Pooling -> MaxPool/AveragePool with ceil_mode=1 (pad 0 for AVE,
count_include_pad=0: the window clipped to the input, Caffe's divisor there), global
pooling -> GlobalMax/AveragePool; LRN across channels -> LRN (same formula: k +
alpha/size * sum); LRN within a channel -> x * (1 + alpha * AveragePool(x*x, size,
pad (size-1)/2, count_include_pad=1)) ^ -beta, since ONNX's LRN op is across-channel
only; InnerProduct -> Flatten + Gemm(transB); Split and Dropout -> Identity.
The batch axis is symbolic ("N").
"""
from __future__ import annotations

import numpy as np


def spec_to_onnx(layers: list[dict], weights: dict[str, np.ndarray], opset: int = 17,
                 extra: list[str] = ()):
    """An ``onnx.ModelProto`` computing the net's outputs (blobs no layer consumes), and
    the blobs named in ``extra`` (their final values) as further outputs ``<blob>:out``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    consumed, produced = set(), []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def tmp(layer: dict, what: str) -> str:
        return f"{layer['name']}/{what}"

    inputs = []
    for ly in layers:
        t, name, bot, top = ly["type"], ly["name"], ly["bottoms"], ly["tops"]
        consumed.update(bot)
        produced.extend(top)
        if t == "Input":
            for blob, shape in zip(top, ly["shapes"]):
                inputs.append(helper.make_tensor_value_info(blob, TensorProto.FLOAT, ["N", *shape[1:]]))
        elif t == "Convolution":
            w = [const(f"{name}.0", weights[f"{name}.0"])]
            if ly["bias"]:
                w.append(const(f"{name}.1", weights[f"{name}.1"]))
            ph, pw = ly["pad"]
            nodes.append(helper.make_node(
                "Conv", [bot[0], *w], [top[0]], name=name, kernel_shape=ly["kernel"], strides=ly["stride"],
                pads=[ph, pw, ph, pw], dilations=ly["dilation"], group=ly["group"]))
        elif t == "Pooling":
            if ly["global_pooling"]:
                op = "GlobalMaxPool" if ly["method"] == "max" else "GlobalAveragePool"
                nodes.append(helper.make_node(op, [bot[0]], [top[0]], name=name))
                continue
            ph, pw = ly["pad"]
            attrs = dict(kernel_shape=ly["kernel"], strides=ly["stride"], pads=[ph, pw, ph, pw], ceil_mode=1)
            if ly["method"] == "max":
                nodes.append(helper.make_node("MaxPool", [bot[0]], [top[0]], name=name, **attrs))
            else:
                nodes.append(helper.make_node("AveragePool", [bot[0]], [top[0]], name=name,
                                              count_include_pad=0, **attrs))
        elif t == "LRN":
            if ly["region"] == "across":
                nodes.append(helper.make_node("LRN", [bot[0]], [top[0]], name=name, size=ly["size"],
                                              alpha=ly["alpha"], beta=ly["beta"], bias=ly["k"]))
            else:
                s, p = ly["size"], (ly["size"] - 1) // 2
                sq, avg, scaled, base = tmp(ly, "sq"), tmp(ly, "avg"), tmp(ly, "scaled"), tmp(ly, "base")
                powed = tmp(ly, "pow")
                nodes += [
                    helper.make_node("Mul", [bot[0], bot[0]], [sq]),
                    helper.make_node("AveragePool", [sq], [avg], kernel_shape=[s, s], strides=[1, 1],
                                     pads=[p, p, p, p], count_include_pad=1),
                    helper.make_node("Mul", [avg, const(tmp(ly, "alpha"), ly["alpha"])], [scaled]),
                    helper.make_node("Add", [scaled, const(tmp(ly, "one"), 1.0)], [base]),
                    helper.make_node("Pow", [base, const(tmp(ly, "negbeta"), -ly["beta"])], [powed]),
                    helper.make_node("Mul", [bot[0], powed], [top[0]], name=name),
                ]
        elif t == "ReLU":
            if ly["slope"]:
                nodes.append(helper.make_node("LeakyRelu", [bot[0]], [top[0]], name=name, alpha=ly["slope"]))
            else:
                nodes.append(helper.make_node("Relu", [bot[0]], [top[0]], name=name))
        elif t == "InnerProduct":
            flat = tmp(ly, "flat")
            w = [const(f"{name}.0", weights[f"{name}.0"])]
            if ly["bias"]:
                w.append(const(f"{name}.1", weights[f"{name}.1"]))
            nodes += [helper.make_node("Flatten", [bot[0]], [flat], axis=1),
                      helper.make_node("Gemm", [flat, *w], [top[0]], name=name, transB=1)]
        elif t == "Softmax":
            nodes.append(helper.make_node("Softmax", [bot[0]], [top[0]], name=name, axis=ly["axis"]))
        elif t == "Concat":
            nodes.append(helper.make_node("Concat", list(bot), [top[0]], name=name, axis=ly["axis"]))
        elif t == "Flatten":
            nodes.append(helper.make_node("Flatten", [bot[0]], [top[0]], name=name, axis=1))
        elif t in ("Split", "Dropout"):
            for j, out in enumerate(top):
                nodes.append(helper.make_node("Identity", [bot[0]], [out], name=f"{name}/{j}"))
        else:
            raise ValueError(f"layer '{name}': type {t} has no ONNX form here")
    # In-place layers reuse a blob name; ONNX needs SSA names, so rename each rewrite.
    nodes = _ssa(nodes, [i.name for i in inputs])
    outputs_blobs = sorted((set(produced) - consumed) | set(extra))
    shapes = {t: shape for ly in layers for t, shape in zip(ly["tops"], ly["top_shapes"])}
    final = {}
    for node in nodes:
        for o in node.output:
            final[o.split("@")[0]] = o
    outputs = []
    for blob in outputs_blobs:
        nodes.append(helper.make_node("Identity", [final[blob]], [f"{blob}:out"]))
        outputs.append(helper.make_tensor_value_info(f"{blob}:out", TensorProto.FLOAT, ["N", *shapes[blob][1:]]))
    graph = helper.make_graph(nodes, "caffe_net", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _ssa(nodes, input_names):
    """Give every write of a blob name its own version (``blob@k``), reads the latest."""
    current = {n: n for n in input_names}
    count: dict[str, int] = {}
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = current.get(name, name)
        for i, name in enumerate(node.output):
            if name in current or name in count:
                count[name] = count.get(name, 0) + 1
                new = f"{name}@{count[name]}"
            else:
                count[name] = 0
                new = name
            current[name] = new
            node.output[i] = new
    return nodes
