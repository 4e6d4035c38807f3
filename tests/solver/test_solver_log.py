"""tinycaffe.solver.log: test scores read back from a Solver's log."""
from __future__ import annotations

import numpy as np

from tinycaffe.solver import log as solver_log


def test_scores_by_iteration_with_prefixes():
    lines = [
        "2026-11-26T10:00:00 Iteration 1000, Testing net (#0)",
        "2026-11-26T10:00:05     Test net output #0: accuracy = 0.5289",
        "[full]     Test net output #1: loss = 1.31 (* 1 = 1.31 loss)",
        "    Train net output #0: loss = 2.0 (* 1 = 2.0 loss)",  # training outputs are not tests
        "Iteration 2000, Testing net (#0)",
        "    Test net output #0: accuracy = 0.6067",
        "    Test net output #1: loss = nan (* 1 = nan loss)",
    ]
    scores = solver_log.scores_by_iteration(lines)
    assert list(scores) == [1000, 2000]
    assert scores[1000] == {"accuracy": 0.5289, "loss": 1.31}
    assert scores[2000]["accuracy"] == 0.6067 and np.isnan(scores[2000]["loss"])
    assert solver_log.scores_by_iteration(["    Test net output #0: accuracy = 0.5"]) == {}  # no iteration seen yet


def test_solver_log_reads_back(tmp_path):
    from tinycaffe.proto import caffe_pb2
    from tinycaffe.solver import Solver

    net = caffe_pb2.NetParameter()
    inp = net.layer.add(name="in", type="DummyData", top=["x", "label"])
    inp.dummy_data_param.shape.add().dim.extend([4, 3])
    inp.dummy_data_param.shape.add().dim.extend([4])
    ip = net.layer.add(name="ip", type="InnerProduct", bottom=["x"], top=["y"])
    ip.inner_product_param.num_output = 2
    net.layer.add(name="acc", type="Accuracy", bottom=["y", "label"], top=["accuracy"])
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["y", "label"], top=["loss"])
    p = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="fixed", max_iter=4, test_interval=2,
                                  display=0, snapshot_after_train=False)
    p.test_iter.append(1)
    p.net_param.CopyFrom(net)
    lines: list[str] = []
    solver = Solver(p, log=lines.append)
    try:
        solver.solve()
    finally:
        solver.close()
    scores = solver_log.scores_by_iteration(lines)
    assert sorted(scores) == [0, 2, 4]
    assert all(set(s) == {"accuracy", "loss"} for s in scores.values())
