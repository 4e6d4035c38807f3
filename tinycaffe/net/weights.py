"""Copy trained blobs into a Net by layer name, and save them back."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..backend import asnumpy
from ..errors import FormatError, ShapeError


def _fits(stored_shape: tuple[int, ...], legacy: bool, target: tuple[int, ...]) -> bool:
    if stored_shape == target:
        return True
    # Caffe accepts a legacy (num, channels, height, width) blob for a target of
    # up to 4 axes when the target, padded with leading 1s, has the same dims.
    if legacy and len(target) <= 4:
        return stored_shape == (1,) * (4 - len(target)) + tuple(target)
    return False


def copy_weights(net, weights: str | Path | Mapping[str, list]) -> list[str]:
    """Fill ``net``'s layers from a caffemodel / .h5 path or a name -> blobs map."""
    source = "<weights>"
    if isinstance(weights, (str, Path)):
        from ..proto.caffemodel import load_weights

        source = str(weights)
        if not Path(weights).exists():
            raise FormatError(f"{weights}: no such weights file")
        stored = load_weights(weights)
    else:
        stored = weights
    filled = []
    layers = dict(zip(net.layer_names, net.layers))
    for name, blobs in stored.items():
        layer = layers.get(name)
        if layer is None:
            continue  # Caffe ignores source layers the net does not have
        if len(blobs) != len(layer.blobs):
            raise ShapeError(
                f"{source}: layer '{name}' has {len(blobs)} blob(s) in the file but the net's "
                f"layer expects {len(layer.blobs)}"
            )
        for i, (src, dst) in enumerate(zip(blobs, layer.blobs)):
            data, legacy = (src.data, src.legacy) if hasattr(src, "legacy") else (np.asarray(src), False)
            if not _fits(tuple(data.shape), legacy, dst.shape):
                raise ShapeError(
                    f"{source}: layer '{name}' blob {i}: the file has shape {tuple(data.shape)}, "
                    f"the net expects {dst.shape}"
                )
            dst.data[...] = net.xp.asarray(data.reshape(dst.shape), dtype=np.float32)
        filled.append(name)
    return filled


def save_weights(net, path: str | Path) -> None:
    """Write ``net`` (definition + learned blobs) as a binary V2 caffemodel."""
    from ..proto.caffemodel import write_caffemodel

    weights = {
        name: [asnumpy(b.data) for b in blobs] for name, blobs in net.params.items()
    }
    write_caffemodel(path, net.param, weights)
