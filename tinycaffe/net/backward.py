"""What a backward pass needs: shared parameters, learning-rate multipliers, and which
layers and bottoms need gradients (Caffe's Net::Init bookkeeping)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ShapeError
from ..blob import Blob


@dataclass
class LearnableParam:
    """One parameter blob the solver updates, with its multipliers from ``param { }``."""

    blob: Blob
    lr_mult: float
    decay_mult: float
    name: str  # "<layer>.<index>", or the shared name given in the prototxt


def share_named_params(net) -> list[LearnableParam]:
    """Make layers that name the same ``param { name: }`` use one Blob; list the owners.

    The first layer to use a name owns the blob; later layers get the very same
    Blob object, so data and gradients are shared, as in Caffe.
    """
    owners: dict[str, Blob] = {}
    learnable: list[LearnableParam] = []
    for lp, layer in zip(net.param.layer, net.layers):
        specs = list(lp.param)
        for j, blob in enumerate(list(layer.blobs)):
            spec = specs[j] if j < len(specs) else None
            shared_name = spec.name if spec is not None and spec.name else ""
            if shared_name and shared_name in owners:
                owner = owners[shared_name]
                if owner.shape != blob.shape:
                    raise ShapeError(
                        f"layer '{lp.name}': shared parameter '{shared_name}' has shape "
                        f"{owner.shape} in its first layer but {blob.shape} here"
                    )
                layer.blobs[j] = owner
                continue
            if shared_name:
                owners[shared_name] = blob
            lr = spec.lr_mult if spec is not None else 1.0
            decay = spec.decay_mult if spec is not None else 1.0
            learnable.append(LearnableParam(blob, lr, decay, shared_name or f"{lp.name}.{j}"))
    return learnable


def plan_backward(net) -> tuple[list[bool], list[list[bool]]]:
    """(layer needs backward, per-bottom propagate_down) for every layer.

    A blob needs a gradient when a layer that needs backward produced it; a
    layer needs backward when a bottom or a learnable (lr_mult != 0) parameter
    does; ``propagate_down: false`` in the prototxt turns a bottom off; and
    layers that no loss depends on are skipped altogether.

    ``force_backward: true`` (Caffe's NetParameter field) then turns every
    layer on and every bottom the layer allows (not a loss layer's labels),
    so that a net without a loss (a deploy net) gives gradients with respect
    to its input for top diffs set by hand: saliency maps, deep dream.
    Layers without bottoms or parameters (data layers) have nothing to do.
    """
    lr_of = {id(p.blob): p.lr_mult for p in net.learnable_params}
    blob_needs: set[str] = set()
    need = []
    prop = []
    for lp, layer in zip(net.param.layer, net.layers):
        has_params = any(lr_of.get(id(b), 0.0) != 0.0 for b in layer.blobs)
        pd = [b in blob_needs for b in lp.bottom]
        if lp.propagate_down:
            pd = [p and bool(flag) for p, flag in zip(pd, lp.propagate_down)]
        n = has_params or any(pd)
        need.append(n)
        prop.append(pd)
        if n:
            blob_needs.update(lp.top)
    # Prune layers whose tops reach no loss (walking back from the loss layers).
    contributes: set[str] = set()
    for i in range(len(net.layers) - 1, -1, -1):
        lp = net.param.layer[i]
        weights = net._loss_weights[i]
        reaches = any(weights) or any(t in contributes for t in lp.top)
        if not reaches:
            need[i] = False
            prop[i] = [False] * len(lp.bottom)
            continue
        contributes.update(lp.bottom)
    if net.param.force_backward:
        for i, (lp, layer) in enumerate(zip(net.param.layer, net.layers)):
            prop[i] = [p or layer.allow_force_backward(j) for j, p in enumerate(prop[i])]
            need[i] = bool(lp.bottom) or bool(layer.blobs)
    return need, prop
