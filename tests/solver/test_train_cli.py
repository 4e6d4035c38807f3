"""``tinycaffe train`` end to end: logs, snapshots, fine-tuning, resuming, errors, Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinycaffe.cli.main import main

NET = """
name: "dummy"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 5 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip1" bottom: "label" top: "acc" include { phase: TEST } }
"""

SOLVER = """net: "net.prototxt"
test_iter: 2
test_interval: 10
base_lr: 0.1
momentum: 0.9
lr_policy: "fixed"
display: 5
max_iter: MAX_ITER
snapshot: SNAPSHOT
snapshot_prefix: "snaps/dummy"
random_seed: 1
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the net and a solver; paths in the solver are relative to it, as in Caffe."""
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "snaps").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _solver(workdir: Path, max_iter=20, snapshot=10, name="solver.prototxt") -> str:
    text = SOLVER.replace("MAX_ITER", str(max_iter)).replace("SNAPSHOT", str(snapshot))
    (workdir / name).write_text(text)
    return name


def test_train_logs_like_caffe_and_snapshots(workdir, capsys):
    assert main(["train", "--solver", _solver(workdir)]) == 0
    out = capsys.readouterr().out
    assert "Iteration 0, Testing net (#0)" in out
    assert "    Test net output #0: acc = " in out
    assert "Iteration 5 (" in out and "iter/s" in out and "), loss = " in out
    assert "    Train net output #0: loss = " in out and "(* 1 = " in out
    assert "Iteration 5, lr = 0.1" in out
    assert "Snapshotting to binary proto file snaps/dummy_iter_10.caffemodel" in out
    assert out.rstrip().endswith("Optimization Done.")
    for it in (10, 20):
        assert (workdir / f"snaps/dummy_iter_{it}.caffemodel").is_file()
        assert (workdir / f"snaps/dummy_iter_{it}.solverstate").is_file()


def test_resume_and_finetune(workdir, capsys):
    assert main(["train", "--solver", _solver(workdir, max_iter=10)]) == 0
    solver = _solver(workdir, max_iter=20, name="more.prototxt")
    assert main(["train", "--solver", solver, "--snapshot", "snaps/dummy_iter_10.solverstate"]) == 0
    out = capsys.readouterr().out
    assert "Restoring previous solver status from snaps/dummy_iter_10.solverstate" in out
    assert "Iteration 0," not in out.split("Restoring")[1]  # it went on from iteration 10
    assert (workdir / "snaps/dummy_iter_20.solverstate").is_file()
    assert main(["train", "--solver", solver, "--weights", "snaps/dummy_iter_20.caffemodel"]) == 0
    assert "Finetuning from snaps/dummy_iter_20.caffemodel" in capsys.readouterr().out


def test_solver_prototxt_error_names_file_and_line(workdir, capsys):
    (workdir / "bad.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\nmax_iterations: 5\n')
    assert main(["train", "--solver", "bad.prototxt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinycaffe: error: bad.prototxt:3:")
    assert "max_iterations" in err


def test_missing_weights_is_a_clear_error(workdir, capsys):
    assert main(["train", "--solver", _solver(workdir), "--weights", "nope.caffemodel"]) == 1
    assert "nope.caffemodel" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize("effect, snapshots", [("snapshot", 1), ("stop", 0)])
def test_ctrl_c_exits_cleanly(workdir, effect, snapshots):
    """snapshot: snapshot then stop; stop: just stop (snapshot_after_train is off here)."""
    solver = _solver(workdir, max_iter=10**8, snapshot=0)
    if effect == "stop":
        (workdir / solver).write_text((workdir / solver).read_text() + "snapshot_after_train: false\n")
    code = "import sys; from tinycaffe.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "train", "--solver", solver, "--sigint-effect", effect],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir)
    try:
        # Wait until training runs (the first display line), then press "Ctrl-C".
        for line in proc.stdout:
            if line.startswith("Iteration 5 ("):
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Optimization stopped early." in out
    states = list((workdir / "snaps").glob("dummy_iter_*.solverstate"))
    models = list((workdir / "snaps").glob("dummy_iter_*.caffemodel"))
    assert len(states) == len(models) == snapshots
    if snapshots:
        assert states[0].name.replace(".solverstate", ".caffemodel") == models[0].name
