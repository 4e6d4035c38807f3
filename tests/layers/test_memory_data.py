"""MemoryData: arrays handed over from Python, served batch by batch (set_input_arrays)."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe
from tinycaffe.errors import DataError, NetError

NET = """
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""


def test_batches_in_order_and_wrapping():
    net = tinycaffe.Net(NET)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    net.set_input_arrays(data, np.array([0, 1, 2, 0]))
    seen = []
    for _ in range(3):
        net.forward()
        seen.append(net.blobs["data"].data.copy())
    np.testing.assert_array_equal(seen[0], data[:2])
    np.testing.assert_array_equal(seen[1], data[2:])
    np.testing.assert_array_equal(seen[2], data[:2])
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 1])


def test_clear_errors():
    net = tinycaffe.Net(NET)
    with pytest.raises(DataError, match="no data yet"):
        net.forward()
    with pytest.raises(DataError, match=r"not a positive multiple of the batch size 2"):
        net.set_input_arrays(np.zeros((3, 1, 2, 2)), np.zeros(3))
    with pytest.raises(DataError, match=r"expected \(N, 1, 2, 2\)"):
        net.set_input_arrays(np.zeros((2, 3, 2, 2)), np.zeros(2))
    with pytest.raises(NetError, match="has no MemoryData layer"):
        tinycaffe.Net('layer { name: "d" type: "Input" top: "x" input_param { shape { dim: [1] } } }').set_input_arrays(
            np.zeros((2, 1, 2, 2)), np.zeros(2))
