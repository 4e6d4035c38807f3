"""Caffe-compatible data input: Datum records, LMDBs, transforms, CIFAR-10."""

from tinycaffe.data.cifar10 import convert_cifar10, read_cifar10_bin
from tinycaffe.data.datum import array_to_datum, datum_to_array
from tinycaffe.data.lmdb_reader import LMDBReader, compute_image_mean, write_lmdb
from tinycaffe.data.transform import DataTransformer

__all__ = [
    "DataTransformer",
    "LMDBReader",
    "array_to_datum",
    "compute_image_mean",
    "convert_cifar10",
    "datum_to_array",
    "read_cifar10_bin",
    "write_lmdb",
]
