"""The two prototxts of a chosen cut, written by the same code as ``tinycaffe split``.

A cut that is a prefix of the net's layer order is exactly ``split --after X``
(same NetParameter in, same :func:`tinycaffe.net.cut.cut_net` call, same
writer). A cut of a DAG that is not a prefix (one inception branch on the
client, the other in the cloud) is first put in a net order that keeps the
client's layers first -- still a valid order, since the cut is closed under
predecessors -- and then cut the same way.
"""
from __future__ import annotations

from typing import Sequence

from ..net.build import PHASES, load_net_param
from ..net.cut import cut_net
from ..net.filter import filter_layers
from .cuts import CutGraph
from .errors import PlanError

_WIRE_ENUM = {"float32": "FLOAT32", "float16": "FLOAT16", "uint8": "UINT8"}


def cut_params(model, graph: CutGraph, client, *, wire: str = "float32", host: str = "127.0.0.1",
               port: int = 3000, bind: str = "127.0.0.1", return_top: Sequence[str] = ()):
    """(client, cloud) NetParameters for keeping the groups ``client`` of ``graph`` on the client."""
    from ..net import Net
    from ..proto import caffe_pb2

    client = frozenset(client)
    if client == graph.all_groups:
        raise PlanError("this option runs the whole net on the client: there is nothing to split "
                        "(use the model as it is)")
    if not graph.is_cut(client):
        raise PlanError("not a valid cut: every layer on the client needs its inputs on the client")
    # As split does: build the whole net once to learn every crossing blob's shape.
    net = Net(model, phase=graph.phase)
    shapes = {name: blob.shape for name, blob in net.blobs.items()}
    net.close()
    phase = PHASES[graph.phase]
    if graph.is_prefix(client):
        param = load_net_param(model)
    else:
        param = filter_layers(load_net_param(model), phase)
        client_layers, cloud_layers = graph.partition_layers(client)
        del param.layer[:]
        param.layer.extend(client_layers + cloud_layers)
    # The client's last group comes last on the client side in either order; cut after its head
    # (cut_point then keeps exactly that group's in-place followers).
    after = graph.groups[max(client)].name
    client_net, cloud_net = cut_net(param, after, shapes, phase=phase, host=host, port=port, bind=bind,
                                    return_top=return_top)
    wanted = [l.name for l in graph.partition_layers(client)[0]]
    got = [l.name for l in client_net.layer[:-1]]
    if got != wanted:
        raise PlanError(f"cannot write this cut with split's rules (client layers would be {got}, not {wanted})")
    if wire != "float32":
        sink = client_net.layer[-1]
        sink.sink_param.wire_dtype = getattr(caffe_pb2.SinkParameter, _WIRE_ENUM[wire])
    return client_net, cloud_net


def write_cut(model, graph: CutGraph, client, paths: Sequence[str], **kwargs) -> tuple[object, object]:
    """Write the two prototxts of a cut to ``paths`` (client, cloud); returns the NetParameters."""
    from ..proto.prototxt import write_prototxt

    client_net, cloud_net = cut_params(model, graph, client, **kwargs)
    write_prototxt(client_net, paths[0])
    write_prototxt(cloud_net, paths[1])
    return client_net, cloud_net
