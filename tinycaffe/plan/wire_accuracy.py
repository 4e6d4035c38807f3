"""The accuracy cost of a lossy wire, measured on a validation net (``plan --val``).

For each option (a cut and an encoding) the validation net runs batch by batch:
one full float32 forward gives the baseline, then the cut's crossing blobs are
sent through the wire's own quantiser and back (:func:`roundtrip`: float16
casts, or :func:`tinycaffe.wire.quant.quantize_u8` / ``dequantize_u8``) and the
cloud's layers are run again on them. The Accuracy layers' outputs, averaged
over the batches, give the accuracy with and without the wire; nothing is
estimated. float32 on the wire is a byte copy, so its options need no run.

The validation net may differ from the planned one (a data layer and an
Accuracy layer instead of an Input layer): an option's client layers are
matched by name, and the validation net's own input layers stay on the client,
so its label crosses too, as it would in a real split.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..wire.dtypes import Encoding, encoding_for, parse_wire
from ..wire.errors import LocalProtocolError
from ..wire.quant import dequantize_u8, quantize_u8
from .cuts import CutGraph
from .errors import PlanError
from .planner import Accuracy


def roundtrip(a: np.ndarray, wire: str) -> np.ndarray:
    """``a`` as the receiver gets it after crossing a wire of this encoding (a new array)."""
    a = np.asarray(a)
    enc = encoding_for(a.dtype, parse_wire(wire))
    if enc == Encoding.FLOAT16:
        with np.errstate(over="ignore"):  # float16 overflows to inf, as the wire's cast does
            return a.astype("<f2").astype(a.dtype)
    if enc == Encoding.UINT8:
        try:
            q, scale, offset = quantize_u8(a)
        except LocalProtocolError as exc:
            raise PlanError(f"cannot send this blob as uint8: {exc}") from None
        return dequantize_u8(q, scale, offset, np.empty_like(a))
    return a.copy()


def val_cut(val_graph: CutGraph, layer_names: Iterable[str]) -> frozenset[int]:
    """The validation net's cut holding the layers of these names that it has (and its inputs)."""
    groups = {val_graph.group_of_layer[n] for n in layer_names if n in val_graph.group_of_layer}
    return val_graph.closure(groups)


def measure_wire_accuracy(
    val_model: str,
    weights: str | None,
    options: Iterable[tuple[frozenset[str], str]],
    iterations: int,
    phase: str = "test",
) -> dict[tuple[frozenset[str], str], Accuracy]:
    """Accuracy of the validation net for each (client layer names, wire) option.

    Returns one :class:`Accuracy` per option, keyed as given. The first
    Accuracy layer's top is the metric.
    """
    from ..net import Net

    if iterations <= 0:
        raise PlanError(f"--val-iterations must be positive, got {iterations}")
    options = list(dict.fromkeys(options))
    graph = CutGraph.from_model(val_model, phase)
    net = Net(val_model, weights=weights, phase=phase)
    try:
        metrics = [t for layer, tops in zip(net.layers, net.top_names) if layer.type == "Accuracy" for t in tops]
        if not metrics:
            raise PlanError(f"{val_model}: the validation net has no Accuracy layer to measure")
        metric = metrics[0]
        net.let_data_wrap()
        split_tops = {t for layer, tops in zip(net.layers, net.top_names) if layer.type == "Split" for t in tops}
        plans = []
        for names, wire in options:
            cut = val_cut(graph, names)
            if cut == graph.all_groups or wire == "float32":
                plans.append(None)  # nothing lossy crosses: the baseline is the answer
                continue
            client_layers = {n for g in cut for n in graph.groups[g].layers}
            cloud = [n for n, layer in zip(net.layer_names, net.layers)
                     if layer.type != "Split" and n not in client_layers]
            plans.append((sorted(graph.crossing_set(cut)), cloud, wire))
        base_sum, sums = 0.0, [0.0] * len(options)
        for _ in range(iterations):
            net.forward()
            base = float(net.blobs[metric].data.reshape(-1)[0])
            base_sum += base
            saved = {n: net.xp.array(b.data, copy=True) for n, b in net.blobs.items() if n not in split_tops}
            for k, plan in enumerate(plans):
                if plan is None:
                    sums[k] += base
                    continue
                crossing, cloud, wire = plan
                for n, data in saved.items():  # undo the previous option's cloud run
                    net.blobs[n].data[...] = data
                for b in crossing:
                    net.blobs[b].data[...] = roundtrip(saved[b], wire)
                for name in cloud:
                    net.forward(start=name, end=name)
                sums[k] += float(net.blobs[metric].data.reshape(-1)[0])
    finally:
        net.close()
    baseline = base_sum / iterations
    return {opt: Accuracy(metric, baseline, s / iterations, iterations) for opt, s in zip(options, sums)}
