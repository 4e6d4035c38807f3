"""Snapshot at N, resume, continue to M == an uninterrupted run to M; the files Caffe would write."""
from __future__ import annotations

import numpy as np
import pytest

from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.caffemodel import load_weights
from tinycaffe.solver import Solver, SolverError, read_state

from .helpers import fixed_inputs, solver_param, weights

N, M = 5, 12
HDF5, BINARY = caffe_pb2.SolverParameter.HDF5, caffe_pb2.SolverParameter.BINARYPROTO


def _param(tmp_path, kind, fmt, seed=7):
    fields = dict(type=kind, max_iter=M, snapshot=N, snapshot_prefix=str(tmp_path / "tiny"),
                  snapshot_format=fmt, weight_decay=0.01, random_seed=seed,
                  lr_policy="multistep", gamma=0.5, stepvalue=[3, 8])
    if kind in ("SGD", "Nesterov"):
        fields["momentum"] = 0.9
    if kind == "AdaDelta":
        fields.update(momentum=0.95, base_lr=1.0)
    if kind == "Adam":
        fields.update(momentum=0.9, base_lr=0.01)
    return solver_param(**fields)


def _solver(param):
    s = Solver(param, log=lambda line: None)
    fixed_inputs(s.net)
    return s


@pytest.mark.parametrize("kind, fmt", [("SGD", BINARY), ("Nesterov", HDF5), ("Adam", BINARY),
                                       ("AdaDelta", HDF5)])
def test_resume_continues_exactly(tmp_path, kind, fmt):
    whole = _solver(_param(tmp_path, kind, fmt))
    whole.solve()
    expected = weights(whole.net)
    whole.close()

    ext = ".solverstate.h5" if fmt == HDF5 else ".solverstate"
    resumed = _solver(_param(tmp_path, kind, fmt, seed=99))  # other initial weights: all must come from the file
    resumed.solve(resume_file=str(tmp_path / f"tiny_iter_{N}{ext}"))
    assert resumed.iter == M
    for a, b in zip(weights(resumed.net), expected):
        np.testing.assert_array_equal(a, b)
    resumed.close()


def test_binary_snapshot_files(tmp_path):
    s = _solver(_param(tmp_path, "Adam", BINARY))
    s.step(N)
    model, state_path = s.snapshot()
    assert model == str(tmp_path / f"tiny_iter_{N}.caffemodel")
    state = caffe_pb2.SolverState()
    state.ParseFromString(open(state_path, "rb").read())
    assert (state.iter, state.learned_net, state.current_step) == (N, model, 1)
    assert len(state.history) == 2 * len(s.params)  # Adam: all m's, then all v's, as Caffe
    assert list(state.history[0].shape.dim) == list(s.params[0].blob.shape)
    np.testing.assert_array_equal(np.asarray(state.history[len(s.params)].data).reshape(s.history[len(s.params)].shape),
                                  s.history[len(s.params)])
    stored = load_weights(model)
    np.testing.assert_array_equal(stored["ip1"][0].data, s.net.params["ip1"][0].data)
    s.close()


def test_hdf5_snapshot_files(tmp_path):
    h5py = pytest.importorskip("h5py")
    s = _solver(_param(tmp_path, "SGD", HDF5))
    s.step(N)
    model, state_path = s.snapshot()
    with h5py.File(state_path, "r") as f:
        assert int(f["iter"][()]) == N and int(f["current_step"][()]) == 1
        assert f["learned_net"][()].decode() == model
        assert sorted(f["history"]) == ["0", "1", "2", "3"]
    stored = load_weights(model)
    np.testing.assert_array_equal(stored["ip2"][0].data, s.net.params["ip2"][0].data)
    assert read_state(state_path).iter == N
    s.close()


def test_snapshot_after_train_and_final_iteration(tmp_path):
    p = _param(tmp_path, "SGD", BINARY)
    p.snapshot, p.max_iter, p.snapshot_after_train = 0, 4, True
    s = _solver(p)
    s.solve()
    assert (tmp_path / "tiny_iter_4.caffemodel").exists()
    assert (tmp_path / "tiny_iter_4.solverstate").exists()
    s.close()


def test_restore_refuses_a_state_of_another_solver_type(tmp_path):
    s = _solver(_param(tmp_path, "SGD", BINARY))
    s.step(1)
    _, state = s.snapshot()
    s.close()
    adam = _solver(_param(tmp_path, "Adam", BINARY))
    with pytest.raises(SolverError, match="history blobs"):
        adam.restore(state)
    adam.close()


def test_resume_finds_the_model_beside_a_moved_state(tmp_path):
    s = _solver(_param(tmp_path, "SGD", BINARY))
    s.step(2)
    model, state = s.snapshot()
    s.close()
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in (model, state):
        (tmp_path / f).rename(moved / (tmp_path / f).name)
    r = _solver(_param(tmp_path, "SGD", BINARY))
    r.restore(moved / "tiny_iter_2.solverstate")
    assert r.iter == 2
    r.close()
