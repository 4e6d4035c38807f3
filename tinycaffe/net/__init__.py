"""Building and running nets."""
from ..blob import Blob
from .net import Net

__all__ = ["Blob", "Net"]
