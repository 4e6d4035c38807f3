"""Layer types by Caffe type name, as Caffe's layer factory keeps them."""
from __future__ import annotations

from types import ModuleType
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..errors import NetError
from .base import Layer

_REGISTRY: dict[str, type[Layer]] = {}
L = TypeVar("L", bound=type[Layer])


def register(type_name: str) -> Callable[[L], L]:
    """Class decorator: make a layer class available under ``type_name``."""

    def deco(cls: L) -> L:
        if type_name in _REGISTRY:
            raise RuntimeError(f"layer type {type_name!r} registered twice")
        cls.type = type_name
        _REGISTRY[type_name] = cls
        return cls

    return deco


def known_types() -> list[str]:
    """Every registered layer type name, sorted."""
    return sorted(_REGISTRY)


def create_layer(
    param,
    phase: str = "test",
    xp: ModuleType = np,
    rng: np.random.Generator | None = None,
    bottom_names: Sequence[str] | None = None,
    fill_params: bool = True,
) -> Layer:
    """Instantiate the layer ``param.type``; an unknown type lists the known ones.

    ``rng``, ``bottom_names`` and ``fill_params`` go to the Layer constructor.
    """
    cls = _REGISTRY.get(param.type)
    if cls is None:
        raise NetError(
            f"layer '{param.name}': unknown layer type {param.type!r}; "
            f"known types: {', '.join(known_types())}"
        )
    return cls(param, phase, xp, rng=rng, bottom_names=bottom_names, fill_params=fill_params)
