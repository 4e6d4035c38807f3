"""Old home of Blob, kept so ``from tinycaffe.net.blob import Blob`` still works."""
from ..blob import Blob

__all__ = ["Blob"]
