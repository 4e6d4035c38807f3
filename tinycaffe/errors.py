"""Errors tinycaffe raises on bad input.

Every error a user can provoke with a bad file, shape or peer is one of these,
so callers (and the CLI) can catch ``TinyCaffeError`` and print one clear line
instead of a traceback from deep inside NumPy or protobuf.
"""


class TinyCaffeError(Exception):
    """Base class of every error tinycaffe raises on purpose."""


class FormatError(TinyCaffeError):
    """A prototxt, caffemodel, binaryproto or HDF5 file that cannot be read."""


class NetError(TinyCaffeError):
    """A net definition that cannot be built (unknown type, missing blob, cycle...)."""


class ShapeError(NetError):
    """Shapes that do not fit together; the message names the layer and shapes."""


class DataError(TinyCaffeError):
    """A data source that cannot be read (missing LMDB, bad record, bad batch)."""


class WireError(TinyCaffeError):
    """A protocol or transport failure between a Sink and a Source."""


class EndOfStream(WireError):
    """A Source's peer said BYE: no more batches will come (not a failure)."""
