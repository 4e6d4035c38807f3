"""Reading and checking solver definitions: clear errors, Caffe's upgrades and defaults."""
from __future__ import annotations

import pytest

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.solver import Solver, SolverError, load_solver_param
from tinycaffe.solver.smoothed_loss import SmoothedLoss

from .helpers import NET, solver_param


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_field_names_file_and_line(tmp_path):
    path = _write(tmp_path, "solver.prototxt", 'net: "n.prototxt"\nbase_lr: 0.1\nbogus_field: 3\n')
    with pytest.raises(FormatError, match=rf"^{path}:3:\d+: .*bogus_field"):
        load_solver_param(path)


def test_missing_file():
    with pytest.raises(SolverError, match="no such solver file"):
        load_solver_param("/nonexistent/solver.prototxt")


def test_legacy_solver_type_becomes_type():
    p = load_solver_param('solver_type: ADAM\nlr_policy: "fixed"\n')
    assert p.type == "Adam" and not p.HasField("solver_type")
    with pytest.raises(SolverError, match="both set"):
        load_solver_param('solver_type: ADAM\ntype: "Adam"\nlr_policy: "fixed"\n')


def test_snapshot_prefix_defaults_to_the_solver_file(tmp_path):
    p = load_solver_param(_write(tmp_path, "my_solver.prototxt", 'lr_policy: "fixed"\n'))
    assert p.snapshot_prefix == str(tmp_path / "my_solver")
    (tmp_path / "snaps").mkdir()
    text = f'lr_policy: "fixed"\nsnapshot_prefix: "{tmp_path / "snaps"}"\n'
    p = load_solver_param(_write(tmp_path, "other.prototxt", text))
    assert p.snapshot_prefix == str(tmp_path / "snaps" / "other")


@pytest.mark.parametrize("text, message", [
    ('type: "Adagrad2"\nlr_policy: "fixed"\n', "unknown solver type 'Adagrad2'"),
    ('type: "AdaGrad"\nmomentum: 0.9\nlr_policy: "fixed"\n', "momentum cannot be used with AdaGrad"),
    ('type: "RMSProp"\nrms_decay: 1.5\nlr_policy: "fixed"\n', "rms_decay"),
    ('lr_policy: "fixed"\naverage_loss: 0\n', "average_loss"),
    ('lr_policy: "fixed"\niter_size: 0\n', "iter_size"),
    ('lr_policy: "fixed"\nregularization_type: "L3"\n', "regularization_type"),
    ('lr_policy: "fixed"\nsnapshot: 10\n', "snapshot_prefix"),
])
def test_bad_values_are_refused(text, message):
    with pytest.raises(SolverError, match=message):
        load_solver_param(text)


def test_solver_type_is_case_insensitive():
    assert Solver(solver_param(type="adam"), log=lambda s: None).type == "Adam"


def test_net_definition_errors(tmp_path):
    with pytest.raises(SolverError, match="it names no"):
        Solver(caffe_pb2.SolverParameter(lr_policy="fixed"))
    p = solver_param(train_net="x.prototxt")
    with pytest.raises(SolverError, match="it names 2"):
        Solver(p)
    with pytest.raises(SolverError, match="not found"):
        Solver(caffe_pb2.SolverParameter(lr_policy="fixed", net=str(tmp_path / "missing.prototxt")))


def test_test_nets_need_test_iter_and_interval():
    p = solver_param(test_interval=0, test_iter=[2])
    with pytest.raises(SolverError, match="test_interval"):
        Solver(p)
    p = solver_param(test_iter=[1])
    p.test_net_param.add().CopyFrom(p.net_param)
    p.test_net_param.add().CopyFrom(p.net_param)
    p.test_interval = 5
    with pytest.raises(SolverError, match="one test_iter per test net"):
        Solver(p)


def test_unwritable_snapshot_prefix_fails_early(tmp_path):
    p = solver_param(snapshot=5, snapshot_prefix=str(tmp_path / "no" / "such" / "dir" / "x"))
    with pytest.raises(SolverError, match="cannot write to snapshot prefix"):
        Solver(p)


def test_train_and_test_states(tmp_path):
    net = NET + """
layer { name: "only_test" type: "Silence" bottom: "ip2" include { phase: TEST } }
layer { name: "only_stage" type: "Silence" bottom: "ip2" include { stage: "extra" } }
"""
    p = solver_param(net, test_iter=[1, 1], test_interval=100)
    p.test_state.add()
    p.test_state.add().stage.append("extra")
    s = Solver(p, log=lambda line: None)
    assert "only_test" not in s.net.layer_names
    assert "only_test" in s.test_nets[0].layer_names and "only_stage" not in s.test_nets[0].layer_names
    assert "only_stage" in s.test_nets[1].layer_names
    assert s.test_nets[0].params["ip1"][0] is s.net.params["ip1"][0]  # weights shared
    s.close()


def test_smoothed_loss_matches_caffe():
    sm = SmoothedLoss(3)
    values = [sm.update(x, i) for i, x in enumerate([3.0, 6.0, 9.0, 12.0, 0.0])]
    assert values == pytest.approx([3.0, 4.5, 6.0, 9.0, 7.0])
