"""The train net and the test nets a SolverParameter names (Caffe's InitTrainNet / InitTestNets).

Nets come from ``net`` / ``net_param`` (one definition for training and
testing), or ``train_net`` / ``train_net_param`` and ``test_net`` /
``test_net_param``. File paths are used as given, i.e. relative to the
current directory, as Caffe does. Each net's state is the phase (TRAIN or
TEST), overridden by the net's own ``state``, overridden by the solver's
``train_state`` / ``test_state``.
"""
from __future__ import annotations

import os
from typing import Any

from ..proto import caffe_pb2
from .params import SolverError

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _state(phase: int, net_param: caffe_pb2.NetParameter, override: caffe_pb2.NetState | None):
    state = caffe_pb2.NetState(phase=phase)
    state.MergeFrom(net_param.state)
    if override is not None:
        state.MergeFrom(override)
    return state


def _read(path: str) -> caffe_pb2.NetParameter:
    from ..proto.prototxt import read_net

    if not os.path.isfile(path):
        raise SolverError(f"net file {path!r} not found (paths in a solver are relative to the "
                          f"current directory, {os.getcwd()})")
    return read_net(path)


def _build(model: Any, state: caffe_pb2.NetState, device: str, seed: int):
    from ..net import Net

    phase = "train" if state.phase == TRAIN else "test"
    net = Net(model, phase=phase, device=device, level=state.level, stages=tuple(state.stage), seed=seed)
    net.let_data_wrap()  # test passes during training walk on through the data, as Caffe's do
    return net


def build_train_net(param: caffe_pb2.SolverParameter, device: str, seed: int):
    """The train net, from exactly one of net, net_param, train_net, train_net_param."""
    fields = [f for f in ("net", "net_param", "train_net", "train_net_param") if param.HasField(f)]
    if len(fields) != 1:
        what = "no" if not fields else f"{len(fields)} ({', '.join(fields)})"
        raise SolverError(f"the solver must name one train net with net, net_param, train_net or "
                          f"train_net_param; it names {what}")
    field = fields[0]
    if field in ("net", "train_net"):
        path = getattr(param, field)
        net_param, model = _read(path), path
    else:
        net_param = getattr(param, field)
        model = net_param
    state = _state(TRAIN, net_param, param.train_state if param.HasField("train_state") else None)
    return _build(model, state, device, seed)


def build_test_nets(param: caffe_pb2.SolverParameter, device: str, seed: int) -> list:
    """One test net per test_iter: test_net_param, then test_net, then copies of net / net_param."""
    if param.HasField("net") and param.HasField("net_param"):
        raise SolverError("give the solver's net once: both net and net_param are set")
    specific: list[tuple[Any, caffe_pb2.NetParameter]] = [(p, p) for p in param.test_net_param]
    specific += [(path, _read(path)) for path in param.test_net]
    generic = param.HasField("net") or param.HasField("net_param")
    n_iter = len(param.test_iter)
    if (n_iter < len(specific)) if generic else (n_iter != len(specific)):
        raise SolverError(f"give one test_iter per test net: {len(specific)} test net(s) "
                          f"but {n_iter} test_iter value(s)")
    sources = list(specific)
    for _ in range(n_iter - len(specific)):
        if param.HasField("net"):
            sources.append((param.net, _read(param.net)))
        else:
            sources.append((param.net_param, param.net_param))
    if param.test_state and len(param.test_state) != len(sources):
        raise SolverError(f"give test_state once per test net ({len(sources)}) or not at all; "
                          f"got {len(param.test_state)}")
    if sources and param.test_interval <= 0:
        raise SolverError("the solver has test nets (test_iter) but no positive test_interval")
    nets = []
    for i, (model, net_param) in enumerate(sources):
        override = param.test_state[i] if param.test_state else None
        nets.append(_build(model, _state(TEST, net_param, override), device, seed + 1 + i))
    return nets
