"""Caffe file formats: the schema, prototxt text, caffemodel weights, blobs.

``caffe_pb2`` is generated from caffe.proto by tools/gen_proto.sh.
"""

from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.binaryproto import read_blob, write_blob
from tinycaffe.proto.caffemodel import (
    StoredBlob,
    load_weights,
    parse_weights,
    read_caffemodel,
    read_weights,
    write_caffemodel,
)
from tinycaffe.proto.hdf5 import read_hdf5_weights
from tinycaffe.proto.prototxt import (
    parse_message,
    parse_net,
    read_net,
    read_solver,
    to_text,
    write_prototxt,
)
from tinycaffe.proto.upgrade import net_needs_upgrade, upgrade_net

__all__ = [
    "StoredBlob",
    "caffe_pb2",
    "load_weights",
    "net_needs_upgrade",
    "parse_message",
    "parse_net",
    "parse_weights",
    "read_blob",
    "read_caffemodel",
    "read_hdf5_weights",
    "read_net",
    "read_solver",
    "read_weights",
    "to_text",
    "upgrade_net",
    "write_blob",
    "write_caffemodel",
    "write_prototxt",
]
