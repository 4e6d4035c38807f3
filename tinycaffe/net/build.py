"""The steps that build a Net, in Caffe's order, each a named function.

parse (``load_net_param``: read, upgrade legacy syntax) -> filter by
phase/level/stage (filter.py) -> insert Split layers (splits.py) -> for each
layer: create it (``create``), wire its bottoms/tops by name (``wire``), set it
up (``set_up``: counts, setup, reshape) -> name the outputs -> plan training
(``plan_training``: loss weights, learnable params, backward plan) -> load the
weights. ``Net.__init__`` calls these in that order; ``net_args`` sorts out the
constructor's argument forms (pycaffe's and tinycaffe's).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blob import Blob
from ..errors import FormatError, NetError
from ..layers import Layer, create_layer  # importing the package registers every layer type
from ..proto import caffe_pb2
from .backward import plan_backward, share_named_params
from .pycaffe_surface import NamesByLayer
from .weights import WeightsForNet

if TYPE_CHECKING:
    from .net import Net

PHASES = {"train": caffe_pb2.TRAIN, "test": caffe_pb2.TEST}  # caffe.Phase values


def _is_phase(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # "test" is a phase, unless a weights file of that very name sits in the current directory.
    return isinstance(value, str) and value.lower() in PHASES and not Path(value).is_file()


def phase_name(phase: Any) -> str:
    """'train' or 'test' from caffe.TRAIN / caffe.TEST (0 / 1) or either name in any case."""
    if isinstance(phase, int) and not isinstance(phase, bool):
        names = {v: k for k, v in PHASES.items()}
        if phase in names:
            return names[phase]
    elif isinstance(phase, str) and phase.lower() in PHASES:
        return phase.lower()
    raise NetError(f"unknown phase {phase!r}: use caffe.TRAIN / caffe.TEST, or 'train' / 'test'")


def net_args(args: tuple, weights: Any, phase: Any) -> tuple[Any, str]:
    """(weights, phase name) from the positional forms pycaffe and tinycaffe accept.

    ``Net(model, phase)``, ``Net(model, weights, phase)`` (pycaffe's old form),
    ``Net(model, weights)`` (tinycaffe's), each with ``weights=`` / ``phase=``
    keywords for what the positions leave out; the phase defaults to TEST.
    """
    if len(args) > 2:
        raise NetError(f"Net() takes a model and at most a weights file and a phase, got {len(args) + 1} arguments")
    given_weights, given_phase = None, None
    if len(args) == 1:
        if _is_phase(args[0]):
            given_phase = args[0]
        else:
            given_weights = args[0]
    elif len(args) == 2:
        given_weights, given_phase = args
    if given_weights is not None and weights is not None:
        raise NetError("Net(): the weights are given twice (by position and as weights=)")
    if given_phase is not None and phase is not None:
        raise NetError("Net(): the phase is given twice (by position and as phase=)")
    weights = given_weights if given_weights is not None else weights
    phase = given_phase if given_phase is not None else phase
    return weights, phase_name("test" if phase is None else phase)


def load_net_param(model: str | Path | Any):
    """A modern (upgraded) NetParameter from a path, prototxt text or a message."""
    from ..proto.prototxt import parse_net, read_net
    from ..proto.upgrade import upgrade_net

    if isinstance(model, caffe_pb2.NetParameter):
        return upgrade_net(model, "<NetParameter>")
    if isinstance(model, Path) or (isinstance(model, str) and "\n" not in model and "{" not in model):
        path = Path(model)
        if not path.exists():
            raise FormatError(f"{path}: no such model file")
        return upgrade_net(read_net(path), str(path))
    if isinstance(model, str):
        return upgrade_net(parse_net(model, "<string>"), "<string>")
    raise FormatError(f"cannot build a net from a {type(model).__name__}")


def open_weights(weights: Any, xp) -> WeightsForNet | None:
    """The weights file (or mapping) opened before building: the layers it covers need no fillers."""
    return WeightsForNet(weights, xp) if weights is not None else None


def given_bottom_names(filtered) -> dict[str, list[str]]:
    """Each layer's bottom names as the prototxt gave them, before Split layers renamed them."""
    return {lp.name: list(lp.bottom) for lp in filtered.layer}


def start_empty(net: "Net") -> None:
    """The containers ``create``/``wire`` fill, one entry per layer in order."""
    net.layers = []
    net.layer_names = []
    net.bottom_names = []
    net.top_names = []
    net.blobs = OrderedDict()
    net._bottoms = []
    net._tops = []
    net.inputs = []
    net.layer_times = {}
    net.backward_times = {}


def create(net: "Net", lp, given_bottoms: dict[str, list[str]], stored: WeightsForNet | None) -> Layer:
    """Instantiate layer ``lp`` with the net's generator; it skips fillers the weights make useless."""
    if lp.name in net.layer_names:
        raise NetError(f"two layers are named '{lp.name}': layer names must be unique")
    return create_layer(
        lp, net.phase, net.xp, rng=net.rng,
        bottom_names=given_bottoms.get(lp.name, list(lp.bottom)),
        fill_params=stored is None or not stored.covers(lp.name),
    )


def wire(net: "Net", lp, layer: Layer) -> int:
    """Connect ``layer`` to its blobs by name, making the tops it produces; returns its index.

    A top with the bottom's name at the same position is computed in place,
    which only in-place layers allow; any other reuse of a blob name is an error.
    """
    bottoms = [net.blobs[b] for b in lp.bottom]  # insert_splits checked they exist
    tops = []
    for j, t in enumerate(lp.top):
        in_place = j < len(lp.bottom) and lp.bottom[j] == t
        if in_place:
            if not layer.in_place_ok:
                raise NetError(
                    f"layer '{lp.name}' (type {lp.type}) cannot compute in place: "
                    f"give its top a name other than '{t}'"
                )
            tops.append(net.blobs[t])
        elif t in net.blobs:
            raise NetError(
                f"layer '{lp.name}': top blob '{t}' is already produced by an earlier "
                "layer (only in-place layers may reuse a blob name, at the same position)"
            )
        else:
            blob = Blob(t, net.xp)
            net.blobs[t] = blob
            tops.append(blob)
    if lp.type == "Input":
        net.inputs.extend(lp.top)
    net.layers.append(layer)
    net.layer_names.append(lp.name)
    net.bottom_names.append(list(lp.bottom))
    net.top_names.append(list(lp.top))
    net._bottoms.append(bottoms)
    net._tops.append(tops)
    return len(net.layers) - 1


def set_up(net: "Net", i: int) -> None:
    """Run layer i's life cycle (counts -> setup -> reshape) and tell the planner its shapes are new."""
    net.layers[i].set_up(net._bottoms[i], net._tops[i])  # errors name the layer
    net._planner.reshaped(i)


def output_names(param) -> list[str]:
    """The blobs no later layer consumes, in name order (Caffe keeps them in a sorted set)."""
    available: list[str] = []
    for lp in param.layer:
        for b in lp.bottom:
            if b in available:
                available.remove(b)
        available.extend(t for t in lp.top if t not in available)
    return sorted(available)


def name_outputs(net: "Net") -> None:
    """Set ``outputs``; index the top/bottom names by layer name too (pycaffe's way) as well as by position."""
    net.outputs = output_names(net.param)
    net.top_names = NamesByLayer(net.layer_names, net.top_names)
    net.bottom_names = NamesByLayer(net.layer_names, net.bottom_names)


def top_loss_weights(lp, layer: Layer) -> list[float]:
    """The loss weight of each top: the prototxt's, else the layer type's default (1 on a loss's first top)."""
    n = len(lp.top)
    if len(lp.loss_weight) not in (0, n):
        raise NetError(
            f"layer '{lp.name}': loss_weight must be given once per top ({n}), "
            f"got {len(lp.loss_weight)}"
        )
    if lp.loss_weight:
        return list(lp.loss_weight)
    return [layer.default_loss_weight(j) for j in range(n)]


def plan_training(net: "Net") -> None:
    """Loss weights, the learnable (shared) params, ``params`` by layer, and which layers need backward."""
    net._loss_weights = [top_loss_weights(lp, layer) for lp, layer in zip(net.param.layer, net.layers)]
    net.learnable_params = share_named_params(net)
    net.params = OrderedDict(
        (name, layer.blobs) for name, layer in zip(net.layer_names, net.layers) if layer.blobs
    )
    net._need_backward, net._propagate_down = plan_backward(net)
