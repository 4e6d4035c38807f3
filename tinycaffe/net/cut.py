"""Cut one net into a client part ending in a Sink and a cloud part starting at a Source.

Every blob produced on the client side and read on the cloud side crosses the
cut (the features, and e.g. the label for an Accuracy layer in the cloud); one
Sink carries them all to one Source. The one caffemodel serves both halves,
since weights are copied by layer name.

Called a "split" by the study and by the ``tinycaffe split`` verb; in the code
"split" is kept for Caffe's Split layer (splits.py), and this is a "cut".
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..errors import NetError
from .filter import filter_layers


def _is_in_place(layer) -> bool:
    return bool(layer.top) and list(layer.top) == list(layer.bottom)[: len(layer.top)]


def cut_point(layers: Sequence, after: str) -> int:
    """Index of the last client layer: ``after`` plus the in-place layers that follow it.

    An in-place ReLU right after the cut layer still belongs to producing that
    blob (the study's cut 1, its "split 1", is after pool1, with relu1 in place on pool1).
    """
    names = [l.name for l in layers]
    if after not in names:
        raise NetError(f"--after {after!r}: no such layer (layers: {', '.join(names)})")
    i = names.index(after)
    produced = set(layers[i].top)
    while i + 1 < len(layers) and _is_in_place(layers[i + 1]) and set(layers[i + 1].bottom) <= produced:
        i += 1
    return i


def crossing_blobs(client: Sequence, cloud: Sequence) -> list[str]:
    """Blobs the client produces that the cloud reads before producing them itself."""
    from_client = {t for l in client for t in l.top}
    crossing: list[str] = []
    made_in_cloud: set[str] = set()
    for layer in cloud:
        for b in layer.bottom:
            if b in made_in_cloud or b in crossing:
                continue
            if b not in from_client:
                raise NetError(f"layer '{layer.name}': bottom blob '{b}' is produced by no layer")
            crossing.append(b)
        made_in_cloud.update(layer.top)
    return crossing


def cut_net(
    net_param,
    after: str,
    shapes: Mapping[str, Sequence[int]],
    *,
    phase: int = 1,
    host: str = "127.0.0.1",
    port: int = 3000,
    bind: str = "127.0.0.1",
    return_top: Sequence[str] = (),
):
    """(client, cloud) NetParameters for ``net_param`` cut after layer ``after``.

    ``net_param`` is an upgraded NetParameter; only the layers of ``phase``
    are kept. ``shapes`` gives each crossing blob's shape (the Source declares
    them, and the HELLO handshake checks them against the Sink's).
    """
    net = filter_layers(net_param, phase)
    layers = list(net.layer)
    i = cut_point(layers, after)
    client, cloud = layers[: i + 1], layers[i + 1:]
    if not cloud:
        raise NetError(f"--after {after!r}: nothing is left for the cloud side")
    crossing = crossing_blobs(client, cloud)
    missing = [b for b in crossing if b not in shapes]
    if missing:
        raise NetError(f"no shape known for crossing blob(s) {', '.join(missing)}")

    client_net = type(net)()
    client_net.name = f"{net.name}_client" if net.name else "client"
    client_net.layer.extend(client)
    sink = client_net.layer.add(name="sink", type="Sink")
    sink.bottom.extend(crossing)
    sink.top.extend(return_top)
    sink.sink_param.host_name = host
    sink.sink_param.port = port
    sink.sink_param.return_top.extend(return_top)

    cloud_net = type(net)()
    cloud_net.name = f"{net.name}_cloud" if net.name else "cloud"
    source = cloud_net.layer.add(name="source", type="Source")
    source.top.extend(crossing)
    source.source_param.port = port
    source.source_param.bind = bind
    source.source_param.return_top.extend(return_top)
    for b in crossing:
        source.input_param.shape.add().dim.extend(int(d) for d in shapes[b])
    cloud_net.layer.extend(cloud)
    return client_net, cloud_net
