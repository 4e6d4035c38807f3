"""From a model (path, text or message) to the layer list a Net builds.

parse -> upgrade legacy syntax; the Net then filters layers by phase/level/stage
(filter.py) and inserts Split layers (splits.py). Each step is a plain function
of a NetParameter.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FormatError

PHASES = {"train": 0, "test": 1}  # caffe.Phase values


def load_net_param(model: str | Path | Any):
    """A modern (upgraded) NetParameter from a path, prototxt text or a message."""
    from ..proto import caffe_pb2
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
