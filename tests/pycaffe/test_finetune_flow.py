"""The BVLC fine-tuning notebook's flow: a new last layer on a trained net, trained with
``caffe.SGDSolver(...).step()``; plus the solver classes and callbacks pycaffe has.

Data: the bundled 1,000-image CIFAR-10 sample (train and test read the same
records here: the point is the flow, not a score).
"""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe as caffe
from tinycaffe.solver import SolverError

from .conftest import SAMPLE_LMDB, SAMPLE_MEAN, STUDY_WEIGHTS
from tests.conftest import REPO


def write_finetune(tmp_path, solver_type: str = "SGD", batch: int = 25) -> str:
    """A train/test net whose classifier is a new layer ``ip1_ft``, and its solver file."""
    text = (REPO / "prototxt" / "cifar10_full_sample.prototxt").read_text()
    for old in ('"data/cifar10/cifar10_train_lmdb"', '"tinycaffe/sample/cifar10_test_lmdb"'):
        text = text.replace(old, f'"{SAMPLE_LMDB}"')
    text = text.replace('"tinycaffe/sample/mean.binaryproto"', f'"{SAMPLE_MEAN}"')
    text = text.replace("batch_size: 100", f"batch_size: {batch}")
    text = text.replace('name: "ip1"', 'name: "ip1_ft"').replace('top: "ip1"', 'top: "ip1_ft"')
    text = text.replace('bottom: "ip1"', 'bottom: "ip1_ft"')
    assert "ip1_ft" in text and str(SAMPLE_LMDB) in text
    net = tmp_path / "finetune_train_test.prototxt"
    net.write_text(text)
    solver = tmp_path / "finetune_solver.prototxt"
    solver.write_text(
        f'net: "{net}"\ntest_iter: 1\ntest_interval: 1000\nbase_lr: 0.001\nmomentum: 0.9\n'
        f'weight_decay: 0.004\nlr_policy: "fixed"\nmax_iter: 100\ndisplay: 0\nrandom_seed: 1\n'
        f'type: "{solver_type}"\nsnapshot_prefix: "{tmp_path / "ft"}"\n'
    )
    return str(solver)


def test_new_classifier_layer_learns_with_sgdsolver_step(tmp_path):
    solver = caffe.SGDSolver(write_finetune(tmp_path))
    filled = solver.net.copy_from(str(STUDY_WEIGHTS))  # the notebook's solver.net.copy_from(weights)
    assert "conv1" in filled and "ip1_ft" not in filled  # the new layer keeps its random start
    assert solver.test_nets[0].params["conv1"][0] is solver.net.params["conv1"][0]  # shared
    starts, grads = [], []
    solver.add_callback(lambda: starts.append(solver.iter),
                        lambda: grads.append(float(np.abs(solver.net.params["ip1_ft"][0].diff).sum())))
    losses = []
    for _ in range(24):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    assert solver.iter == 24
    assert starts == list(range(24))                  # on_start before each iteration
    assert len(grads) == 24 and min(grads) > 0        # gradients ready before each update
    # A freshly initialised classifier on trained features: the loss falls from ln(10).
    assert losses[0] == pytest.approx(np.log(10), abs=0.1)
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.3, losses
    solver.close()


def test_snapshot_and_restore_resume_the_iteration(tmp_path):
    path = write_finetune(tmp_path, batch=10)
    solver = caffe.SGDSolver(path)
    solver.step(2)
    model, state = solver.snapshot()
    weights = solver.net.params["ip1_ft"][0].data.copy()
    solver.close()
    again = caffe.SGDSolver(path)
    again.restore(state)
    assert again.iter == 2
    np.testing.assert_array_equal(again.net.params["ip1_ft"][0].data, weights)
    again.close()


@pytest.mark.parametrize("cls, kind", [(caffe.SGDSolver, "SGD"), (caffe.NesterovSolver, "Nesterov"),
                                       (caffe.AdamSolver, "Adam"), (caffe.AdaDeltaSolver, "AdaDelta")])
def test_solver_classes_use_their_own_rule_whatever_the_file_says(tmp_path, cls, kind):
    # RMSProp refuses momentum, but pycaffe's SGDSolver & co. never look at the file's type.
    solver = cls(write_finetune(tmp_path, solver_type="RMSProp", batch=5))
    assert solver.type == kind
    solver.close()


def test_get_solver_uses_the_files_type(tmp_path):
    path = write_finetune(tmp_path, solver_type="RMSProp", batch=5)
    with pytest.raises(SolverError, match="momentum cannot be used with RMSProp"):
        caffe.get_solver(path)
    no_momentum = tmp_path / "adagrad_solver.prototxt"
    no_momentum.write_text(open(path).read().replace("momentum: 0.9\n", "").replace("RMSProp", "AdaGrad"))
    solver = caffe.get_solver(str(no_momentum))
    assert solver.type == "AdaGrad"
    solver.close()


def test_add_callback_takes_an_object_and_refuses_non_callables(tmp_path):
    solver = caffe.SGDSolver(write_finetune(tmp_path, batch=5))

    class Counter:
        def __init__(self):
            self.calls = []

        def on_start(self):
            self.calls.append("start")

        def on_gradients_ready(self):
            self.calls.append("gradients")

    counter = Counter()
    solver.add_callback(counter)
    solver.step(2)
    assert counter.calls == ["start", "gradients"] * 2
    with pytest.raises(SolverError, match="on_start and on_gradients_ready"):
        solver.add_callback(1, 2)
    with pytest.raises(SolverError, match="two callables"):
        solver.add_callback(object())
    solver.close()
