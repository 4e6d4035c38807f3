"""Insert Split layers where one blob feeds several layers, as Caffe does.

A Split's tops share the bottom's data but each has its own gradient, which
the Split sums on the way back; forward-only runs pay nothing for them.
Names follow Caffe so blob names in ``net.blobs`` match pycaffe's.

In tinycaffe's code "split" means this Caffe layer only; dividing a net into a
client and a cloud part is a "cut" (cut.py), even where the CLI verb and the
study say ``split``.
"""
from __future__ import annotations

from ..errors import NetError


def split_layer_name(layer: str, blob: str, top_idx: int) -> str:
    return f"{blob}_{layer}_{top_idx}_split"


def split_blob_name(layer: str, blob: str, top_idx: int, split_idx: int) -> str:
    return f"{blob}_{layer}_{top_idx}_split_{split_idx}"


def insert_splits(net_param):
    """A copy of ``net_param`` with Split layers after every multiply-consumed top."""
    layers = list(net_param.layer)
    last_top: dict[str, tuple[int, int]] = {}
    source_of: dict[tuple[int, int], tuple[int, int]] = {}
    consumers: dict[tuple[int, int], int] = {}
    loss_weight: dict[tuple[int, int], float] = {}
    produced_later = {}
    for i, layer in enumerate(layers):
        for t in layer.top:
            produced_later.setdefault(t, (i, layer.name))

    for i, layer in enumerate(layers):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                later = produced_later.get(blob)
                if later is not None:
                    raise NetError(
                        f"layer '{layer.name}': bottom blob '{blob}' is produced by layer "
                        f"'{later[1]}', which comes later: the net has a cycle or its layers "
                        "are out of order"
                    )
                raise NetError(
                    f"layer '{layer.name}': unknown bottom blob '{blob}' "
                    f"(no earlier layer produces it; known blobs: {', '.join(sorted(last_top)) or 'none'})"
                )
            src = last_top[blob]
            source_of[(i, j)] = src
            consumers[src] = consumers.get(src, 0) + 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
            if j < len(layer.loss_weight) and layer.loss_weight[j] != 0:
                loss_weight[(i, j)] = layer.loss_weight[j]
                # The loss itself is one more consumer of this top's gradient.
                consumers[(i, j)] = consumers.get((i, j), 0) + 1

    if all(n <= 1 for n in consumers.values()):
        out = type(net_param)()
        out.CopyFrom(net_param)
        return out

    out = type(net_param)()
    out.CopyFrom(net_param)
    del out.layer[:]
    next_split: dict[tuple[int, int], int] = {}
    for i, layer in enumerate(layers):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j, blob in enumerate(layer.bottom):
            src = source_of[(i, j)]
            if consumers.get(src, 0) > 1:
                k = next_split.get(src, 0)
                next_split[src] = k + 1
                new.bottom[j] = split_blob_name(layers[src[0]].name, blob, src[1], k)
        for j, blob in enumerate(layer.top):
            n = consumers.get((i, j), 0)
            if n <= 1:
                continue
            split = out.layer.add()
            split.name = split_layer_name(layer.name, blob, j)
            split.type = "Split"
            split.bottom.append(blob)
            for k in range(n):
                split.top.append(split_blob_name(layer.name, blob, j, k))
            if (i, j) in loss_weight:
                # Caffe moves the loss onto the first split top (zero on the rest)
                # and numbers the real consumers from 1.
                split.loss_weight.extend([loss_weight[(i, j)]] + [0.0] * (n - 1))
                del new.loss_weight[:]
                next_split[(i, j)] = 1
    return out
