"""Layer types. Importing this package registers every layer module in it."""
from importlib import import_module
from pkgutil import iter_modules

from .base import Layer
from .registry import create_layer, known_types, register

_NOT_LAYERS = {"base", "registry", "params", "loss_common"}
for _mod in iter_modules(__path__):
    if _mod.name not in _NOT_LAYERS and not _mod.name.startswith("_"):
        import_module(f"{__name__}.{_mod.name}")

__all__ = ["Layer", "create_layer", "known_types", "register"]
