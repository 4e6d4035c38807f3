"""pycaffe's ``caffe.draw``: a net definition drawn as a graph (layers as boxes, blobs as octagons).

Needs pydot (``pip install 'tinycaffe[draw]'``); images other than ``.dot``
also need Graphviz's ``dot`` program. ``draw_net_to_file(net_param, path)``
takes a ``caffe_pb2.NetParameter`` (e.g. read with ``tinycaffe.proto.prototxt.read_net``),
as pycaffe's does, or a prototxt path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import TinyCaffeError
from .proto import caffe_pb2

LAYER_STYLE = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}


def _pydot() -> Any:
    try:
        import pydot
    except ImportError:
        raise TinyCaffeError("caffe.draw needs pydot: pip install pydot "
                             "(or pip install 'tinycaffe[draw]'), and Graphviz for images") from None
    return pydot


def _net_param(net: Any) -> caffe_pb2.NetParameter:
    if isinstance(net, caffe_pb2.NetParameter):
        return net
    from .net.build import load_net_param

    return load_net_param(net)


def _in_phase(layer: caffe_pb2.LayerParameter, phase: int | None) -> bool:
    if phase is None:
        return True
    included = not layer.include  # no include rule: in every phase unless excluded
    for rule in layer.include:
        if not rule.HasField("phase") or rule.phase == phase:
            included = True
    for rule in layer.exclude:
        if rule.HasField("phase") and rule.phase == phase:
            included = False
    return included


def _layer_label(layer: caffe_pb2.LayerParameter, rankdir: str, display_lrm: bool) -> str:
    sep = " " if rankdir in ("TB", "BT") else r"\n"
    label = f"{layer.name}{sep}({layer.type})"
    if layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        kernel = p.kernel_size[0] if p.kernel_size else p.kernel_h
        stride = p.stride[0] if p.stride else 1
        pad = p.pad[0] if p.pad else 0
        label += f"{sep}kernel size: {kernel}{sep}stride: {stride}{sep}pad: {pad}"
    elif layer.type == "Pooling":
        p = layer.pooling_param
        pool = caffe_pb2.PoolingParameter.PoolMethod.Name(p.pool)
        label += f"{sep}pool={pool}{sep}kernel size: {p.kernel_size}{sep}stride: {p.stride}{sep}pad: {p.pad}"
    elif layer.type == "InnerProduct":
        label += f"{sep}num_output: {layer.inner_product_param.num_output}"
    if display_lrm and layer.param:
        mults = ", ".join(f"{p.lr_mult:g}" for p in layer.param)
        label += f"{sep}lr mult: {mults}"
    return label


def get_pydot_graph(caffe_net: Any, rankdir: str = "LR", label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> Any:
    """A pydot.Dot of the net: one box per layer (in-place layers too), one octagon per blob.

    ``phase`` (caffe.TRAIN / caffe.TEST) keeps only that phase's layers;
    ``label_edges`` writes blob names on edges; ``display_lrm`` shows lr_mult.
    """
    pydot = _pydot()
    net = _net_param(caffe_net)
    graph = pydot.Dot(net.name or "net", graph_type="digraph", rankdir=rankdir)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str, str]] = []
    for i, layer in enumerate(net.layer):
        if not _in_phase(layer, phase):
            continue
        node = f"{layer.name}_{layer.type}_{i}"
        in_place = len(layer.bottom) == 1 and list(layer.top) == list(layer.bottom)
        style = NEURON_LAYER_STYLE if in_place else LAYER_STYLE
        nodes[node] = pydot.Node(node, label=f'"{_layer_label(layer, rankdir, display_lrm)}"', **style)
        for bottom in layer.bottom:
            blob = f"{bottom}_blob"
            nodes.setdefault(blob, pydot.Node(blob, label=bottom, **BLOB_STYLE))
            edges.append((blob, node, bottom))
        for top in layer.top:
            blob = f"{top}_blob"
            nodes.setdefault(blob, pydot.Node(blob, label=top, **BLOB_STYLE))
            edges.append((node, blob, top))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(src, dst, label=label) if label_edges else pydot.Edge(src, dst))
    return graph


def draw_net(caffe_net: Any, rankdir: str = "LR", ext: str = "png", phase: int | None = None,
             display_lrm: bool = False) -> bytes:
    """The drawing as bytes in format ``ext`` ("dot" needs no Graphviz; "png", "svg", "pdf"... do)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    if ext in ("dot", "gv", "raw"):
        return graph.to_string().encode()
    try:
        return graph.create(format=ext)
    except (OSError, FileNotFoundError) as exc:
        raise TinyCaffeError(f"caffe.draw: Graphviz's 'dot' program is needed for .{ext} images "
                             f"(apt install graphviz), or draw to a .dot file: {exc}") from None


def draw_net_to_file(caffe_net: Any, filename: str | Path, rankdir: str = "LR", phase: int | None = None,
                     display_lrm: bool = False) -> None:
    """Draw the net into ``filename``; its extension picks the format (.png, .svg, .dot...)."""
    ext = Path(filename).suffix.lstrip(".") or "png"
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    Path(filename).write_bytes(data)
