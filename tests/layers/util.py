"""Run one layer alone: the way layer tests drive the layer life cycle."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from google.protobuf import text_format

from tinycaffe.layers import create_layer
from tinycaffe.blob import Blob
from tinycaffe.proto import caffe_pb2


def layer_param(text: str) -> "caffe_pb2.LayerParameter":
    """A LayerParameter from prototxt text (the body of a ``layer { }``)."""
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def make_layer(text: str, bottoms: Sequence[np.ndarray], n_tops: int = 1, phase: str = "test", seed: int = 0,
               params: Sequence[np.ndarray] | None = None, in_place: bool = False):
    """Build and set up (counts, setup, reshape) a layer on float32 copies of ``bottoms``; returns (layer, bottoms, tops).

    ``in_place`` makes top i the same blob as bottom i (as a prototxt with
    top == bottom does). ``params`` overwrite the layer's blobs after set-up.
    """
    lp = layer_param(text)
    if not lp.name:
        lp.name = "under_test"
    layer = create_layer(lp, phase, np, rng=np.random.default_rng(seed))
    bottom_blobs = []
    for i, arr in enumerate(bottoms):
        b = Blob(f"b{i}", np, np.shape(arr))
        b.data[...] = np.asarray(arr, dtype=np.float32)
        bottom_blobs.append(b)
    if in_place:
        top_blobs = [bottom_blobs[i] if i < len(bottom_blobs) else Blob(f"t{i}", np) for i in range(n_tops)]
    else:
        top_blobs = [Blob(f"t{i}", np) for i in range(n_tops)]
    layer.set_up(bottom_blobs, top_blobs)  # the life cycle the Net runs: counts -> setup -> reshape
    if params is not None:
        assert len(params) == len(layer.blobs), (len(params), len(layer.blobs))
        for blob, value in zip(layer.blobs, params):
            blob.data[...] = np.asarray(value, dtype=np.float32).reshape(blob.shape)
    return layer, bottom_blobs, top_blobs


def run_layer(text: str, bottoms: Sequence[np.ndarray], n_tops: int = 1, phase: str = "test",
              params: Sequence[np.ndarray] | None = None, seed: int = 0) -> list[np.ndarray]:
    """Forward one layer; ``params`` (if given) overwrite its learnable blobs first."""
    layer, bottom_blobs, top_blobs = make_layer(text, bottoms, n_tops, phase, seed, params)
    layer.forward(bottom_blobs, top_blobs)
    return [np.array(t.data) for t in top_blobs]
