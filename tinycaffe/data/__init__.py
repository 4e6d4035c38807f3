"""Caffe-compatible data input: Datum records, LMDB/LevelDB databases, images, transforms, CIFAR-10."""

from tinycaffe.data.cifar10 import convert_cifar10, read_cifar10_bin
from tinycaffe.data.datum import array_to_datum, datum_to_array, encoded_datum
from tinycaffe.data.datum_reader import DatumReader
from tinycaffe.data.db import DatumWriter, open_reader
from tinycaffe.data.image import decode_image, encode_image, read_image, resize_linear
from tinycaffe.data.image_list import read_image_list
from tinycaffe.data.leveldb_reader import LevelDBReader
from tinycaffe.data.lmdb_reader import LMDBReader, compute_image_mean, write_lmdb
from tinycaffe.data.transform import DataTransformer

__all__ = [
    "DataTransformer",
    "DatumReader",
    "DatumWriter",
    "LMDBReader",
    "LevelDBReader",
    "array_to_datum",
    "compute_image_mean",
    "convert_cifar10",
    "datum_to_array",
    "decode_image",
    "encode_image",
    "encoded_datum",
    "open_reader",
    "read_cifar10_bin",
    "read_image",
    "read_image_list",
    "resize_linear",
    "write_lmdb",
]
