"""The layer list of bench/net_spec.py run by PyTorch (CPU), for bench/forward.py.

One torch op per Caffe layer, walked in the net's order, with Caffe's semantics:
ceil-mode pooling (pad 0 for AVE: torch's divisor then is the window clipped to the
input, as Caffe's), LRN across channels -> F.local_response_norm (k + alpha/size *
sum), LRN within a channel -> x * (1 + alpha * avg_pool(x*x)) ^ -beta with the
padding counted, InnerProduct -> linear on the flattened input. torch is imported by
the caller and passed in.
"""
from __future__ import annotations

import numpy as np


def spec_to_torch(torch, layers: list[dict], weights: dict[str, np.ndarray], extra: list[str] = ()):
    """A callable ``run(data=x) -> {blob: tensor}`` (call it under no_grad / inference_mode)
    giving the net's outputs and the blobs named in ``extra``."""
    F = torch.nn.functional
    w = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    consumed = {b for ly in layers for b in ly["bottoms"]}
    outputs = sorted(({t for ly in layers for t in ly["tops"]} - consumed) | set(extra))
    inputs = [t for ly in layers if ly["type"] == "Input" for t in ly["tops"]]

    def step(ly):
        t, name = ly["type"], ly["name"]
        if t == "Convolution":
            weight, bias = w[f"{name}.0"], w.get(f"{name}.1") if ly["bias"] else None
            args = dict(stride=tuple(ly["stride"]), padding=tuple(ly["pad"]), dilation=tuple(ly["dilation"]),
                        groups=ly["group"])
            return lambda x: F.conv2d(x, weight, bias, **args)
        if t == "Pooling":
            if ly["global_pooling"]:
                return (lambda x: F.adaptive_max_pool2d(x, 1)) if ly["method"] == "max" else \
                    (lambda x: F.adaptive_avg_pool2d(x, 1))
            k, s, p = tuple(ly["kernel"]), tuple(ly["stride"]), tuple(ly["pad"])
            if ly["method"] == "max":
                return lambda x: F.max_pool2d(x, k, s, p, ceil_mode=True)
            return lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=True)
        if t == "LRN":
            size, alpha, beta, k = ly["size"], ly["alpha"], ly["beta"], ly["k"]
            if ly["region"] == "across":
                return lambda x: F.local_response_norm(x, size, alpha, beta, k)
            pad = (size - 1) // 2
            return lambda x: x * (1 + alpha * F.avg_pool2d(x * x, size, 1, pad, count_include_pad=True)) ** -beta
        if t == "ReLU":  # in place when Caffe's is (as nn.ReLU(inplace=True) would run)
            slope = ly["slope"]
            if ly["tops"] == ly["bottoms"]:
                return (lambda x: F.leaky_relu_(x, slope)) if slope else torch.relu_
            return (lambda x: F.leaky_relu(x, slope)) if slope else F.relu
        if t == "InnerProduct":
            weight, bias = w[f"{name}.0"], w.get(f"{name}.1") if ly["bias"] else None
            return lambda x: F.linear(x.flatten(1), weight, bias)
        if t == "Softmax":
            axis = ly["axis"]
            return lambda x: F.softmax(x, axis)
        if t == "Flatten":
            return lambda x: x.flatten(1)
        raise ValueError(f"layer '{name}': type {t} has no torch form here")

    plan = []
    for ly in layers:
        if ly["type"] == "Input":
            continue
        if ly["type"] in ("Split", "Dropout"):
            plan.append(("alias", ly["bottoms"][0], ly["tops"]))
        elif ly["type"] == "Concat":
            axis = ly["axis"]
            plan.append(("concat", ly["bottoms"], ly["tops"][0], axis))
        else:
            plan.append(("op", step(ly), ly["bottoms"][0], ly["tops"][0]))

    def run(**feeds):
        blobs = {name: feeds[name] for name in inputs}
        for item in plan:
            if item[0] == "op":
                _, fn, bottom, top = item
                blobs[top] = fn(blobs[bottom])
            elif item[0] == "alias":
                for top in item[2]:
                    blobs[top] = blobs[item[1]]
            else:
                _, bottoms, top, axis = item
                blobs[top] = torch.cat([blobs[b] for b in bottoms], axis)
        return {name: blobs[name] for name in outputs}

    return run
