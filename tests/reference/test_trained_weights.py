"""The study's nets trained by tinycaffe (weights/study/) score, through ``tinycaffe
test`` on all 10,000 CIFAR-10 test images, exactly what their training run's own
last test reported in its log (weights/study/<model>.log).

The full-width net runs by default; the other 14 are marked slow (about 10 s each).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinycaffe.cli import main as cli_main
from tinycaffe.proto.prototxt import read_net, to_text
from tinycaffe.solver import log as solver_log

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "weights" / "study"
MEAN = REPO / "tinycaffe" / "sample" / "mean.binaryproto"  # the training set's mean, as trained with
WIDTHS = (4, 8, 12, 16, 20, 24, 28)
MODELS = [pytest.param("full", id="full")] + [
    pytest.param(f"c{s}_{n}", marks=pytest.mark.slow, id=f"c{s}_{n}") for s in (1, 2) for n in WIDTHS]


def _last_test(log: Path) -> tuple[float, float]:
    """(accuracy, loss) of the log's last test."""
    scores = solver_log.scores_by_iteration(log.read_text(encoding="utf-8").splitlines())
    assert scores, f"{log}: no test results"
    return scores[max(scores)]["accuracy"], scores[max(scores)]["loss"]


@pytest.mark.parametrize("model", MODELS)
def test_trained_net_scores_what_its_training_reported(model, cifar10_test_lmdb, tmp_path, capsys):
    net_file = REPO / "prototxt" / ("cifar10_full_train_test.prototxt" if model == "full"
                                    else f"cifar10_full_{model}.prototxt")
    net = read_net(net_file)
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(cifar10_test_lmdb)
            layer.transform_param.mean_file = str(MEAN)
    prototxt = tmp_path / "test.prototxt"
    prototxt.write_text(to_text(net))
    weights = STUDY / f"{model}_iter_5000.caffemodel"
    assert cli_main(["test", str(prototxt), "--weights", str(weights), "--iterations", "100",
                     "--quiet"]) == 0
    printed = capsys.readouterr().out
    ours_acc = re.search(r"^accuracy = ([0-9.e-]+)", printed, re.M).group(1)
    ours_loss = re.search(r"^loss = ([0-9.e-]+)", printed, re.M).group(1)
    acc, loss = _last_test(STUDY / f"{model}.log")
    assert float(ours_acc) == acc, f"{model}: accuracy {ours_acc}, training's last test {acc}"
    assert float(ours_loss) == pytest.approx(loss, rel=1e-6), f"{model}: loss {ours_loss} vs {loss}"
