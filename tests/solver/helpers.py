"""A tiny trainable net with fixed inputs, and solvers built around it."""
from __future__ import annotations

import numpy as np

from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.prototxt import parse_message
from tinycaffe.solver import Solver

BATCH, FEATURES, CLASSES = 6, 4, 3

NET = f"""
name: "tiny"
layer {{ name: "in" type: "Input" top: "data" top: "label"
        input_param {{ shape {{ dim: [{BATCH}, {FEATURES}] }} shape {{ dim: [{BATCH}] }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0.5 }}
        inner_product_param {{ num_output: 5 weight_filler {{ type: "gaussian" std: 0.5 }}
                               bias_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "act" type: "TanH" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param {{ num_output: {CLASSES} weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""


def fixed_inputs(net, seed: int = 0) -> None:
    """Fill the Input blobs with the same batch every time (the Input layer keeps it)."""
    rng = np.random.default_rng(seed)
    net.blobs["data"].data[...] = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    net.blobs["label"].data[...] = rng.integers(0, CLASSES, BATCH).astype(np.float32)


def solver_param(net_text: str = NET, **fields) -> caffe_pb2.SolverParameter:
    """A SolverParameter training ``net_text`` (net_param), quiet and without snapshots by default."""
    p = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", max_iter=10, display=0,
                                  snapshot_after_train=False, random_seed=7)
    parse_message(net_text, p.net_param, "<tiny net>")
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(p, name).extend(value)
        else:
            setattr(p, name, value)
    return p


def tiny_solver(**fields) -> Solver:
    solver = Solver(solver_param(**fields), log=lambda line: None)
    fixed_inputs(solver.net)
    return solver


def weights(net) -> list[np.ndarray]:
    return [p.blob.data.copy() for p in net.learnable_params]


def gradients(net) -> list[np.ndarray]:
    """The loss gradient at the current weights (one forward/backward on the fixed batch)."""
    net.clear_param_diffs()
    net.forward()
    net.backward()
    return [p.blob.diff.copy() for p in net.learnable_params]
