"""The ``tinycaffe`` command: test, time, data (and the verbs later issues add)."""
from .main import main

__all__ = ["main"]
