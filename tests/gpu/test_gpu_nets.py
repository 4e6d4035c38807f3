"""The same nets on CuPy and on NumPy give the same numbers (needs a GPU: -m gpu)."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe
from tinycaffe.backend import asnumpy, gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no CuPy / GPU")]

# Most layer types in one small net, forward and backward.
MIXED = """
layer { name: "d" type: "Input" top: "data" top: "label"
        input_param { shape { dim: [4, 3, 12, 12] } shape { dim: [4] } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 1 weight_filler { type: "xavier" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { use_global_stats: false } }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "lrn" type: "LRN" bottom: "pool" top: "lrn" lrn_param { local_size: 3 } }
layer { name: "gconv" type: "Convolution" bottom: "lrn" top: "gconv"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2 weight_filler { type: "msra" } } }
layer { name: "sum" type: "Eltwise" bottom: "lrn" bottom: "gconv" top: "sum" }
layer { name: "cat" type: "Concat" bottom: "sum" bottom: "lrn" top: "cat" }
layer { name: "tanh" type: "TanH" bottom: "cat" top: "cat" }
layer { name: "ave" type: "Pooling" bottom: "cat" top: "ave" pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip" type: "InnerProduct" bottom: "ave" top: "ip" inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""


def _run(device):
    net = tinycaffe.Net(MIXED, phase="train", device=device, seed=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 12, 12)).astype(np.float32)
    out = net.forward(data=x, label=np.array([0, 1, 2, 3], np.float32))
    net.clear_param_diffs()
    net.backward()
    return {k: asnumpy(v) for k, v in out.items()}, {
        p.name: asnumpy(p.blob.diff) for p in net.learnable_params
    }


def test_mixed_net_forward_and_backward_match_cpu():
    cpu_out, cpu_grads = _run("cpu")
    gpu_out, gpu_grads = _run("gpu")
    for k in cpu_out:
        np.testing.assert_allclose(gpu_out[k], cpu_out[k], rtol=1e-4, atol=1e-5)
    for k in cpu_grads:
        scale = max(float(np.abs(cpu_grads[k]).max()), 1e-6)
        assert float(np.abs(gpu_grads[k] - cpu_grads[k]).max()) <= 1e-3 * scale, k


def test_reference_models_on_gpu_match_real_caffe():
    from tests.reference.conftest import MODELS, REFERENCE, weights_file

    if not MODELS:
        pytest.skip("../shared not found: the real-Caffe reference checks need it")
    for model in MODELS:
        folder = REFERENCE / model
        ref = np.load(folder / "reference.npz")
        net = tinycaffe.Net(str(folder / "deploy.prototxt"), weights=str(weights_file(folder)), device="gpu")
        prob = asnumpy(net.forward(data=ref["input"])["prob"])
        err = float(np.abs(prob - ref["prob"]).max()) / float(np.abs(ref["prob"]).max())
        assert err <= 1e-4, (model, err)
