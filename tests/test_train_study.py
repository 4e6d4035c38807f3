"""tools/train_study.py: the study's solver, resumable training and the accuracy report.

Trains for a few iterations on a tiny LMDB (a few hundred CIFAR-10 images from
../shared, or random images where ../shared is absent); no long runs.
"""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinycaffe.data.datum import array_to_datum
from tinycaffe.data.lmdb_reader import compute_image_mean, write_lmdb
from tinycaffe.proto.binaryproto import write_blob
from tinycaffe.solver import load_solver_param

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "train_study.py"
SHARED = REPO.parent / "shared"


def _load_script():
    spec = importlib.util.spec_from_file_location("train_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ts = _load_script()


def run(*argv: str) -> int:
    """Run the script in this process (it moves to the repository root; come back after)."""
    cwd = os.getcwd()
    try:
        return ts.main(list(argv))
    finally:
        os.chdir(cwd)


def _images(n: int, batch_file: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    path = SHARED / "data" / "cifar10" / batch_file
    if path.is_file():
        from tinycaffe.data.cifar10 import read_cifar10_bin

        images, labels = read_cifar10_bin(path)
        return images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """data/cifar10's layout with 300 training and 200 test images."""
    d = tmp_path_factory.mktemp("study_data")
    for name, batch_file, n, seed in (("cifar10_train_lmdb", "data_batch_1.bin", 300, 1),
                                      ("cifar10_test_lmdb", "test_batch.bin", 200, 2)):
        images, labels = _images(n, batch_file, seed)
        records = ((f"{i:05d}".encode(), array_to_datum(images[i], int(labels[i])).SerializeToString())
                   for i in range(n))
        write_lmdb(d / name, records, 64 << 20)
    write_blob(d / "mean.binaryproto", compute_image_mean(d / "cifar10_train_lmdb"))
    return d


def _rates(p, iterations) -> list[float]:
    from tinycaffe.solver import learning_rate

    rates, step = [], 0
    for it in iterations:  # the step advances as the solver goes
        rate, step = learning_rate(p, it, step)
        rates.append(rate)
    return rates


@pytest.mark.parametrize("path, steps, max_iter, snapshot, rates", [
    # The study's schedule (Caffe's cifar10_quick one on the full net) ...
    ("prototxt/cifar10_full_study_solver.prototxt", [4000], 5000, 1000,
     {0: 1e-3, 3999: 1e-3, 4000: 1e-4, 4999: 1e-4}),
    # ... and Caffe's own cifar10_full schedule, for --solver.
    ("prototxt/cifar10_full_solver.prototxt", [60000, 65000], 70000, 5000,
     {0: 1e-3, 59999: 1e-3, 60000: 1e-4, 64999: 1e-4, 65000: 1e-5, 69999: 1e-5}),
])
def test_schedules(path, steps, max_iter, snapshot, rates):
    p = load_solver_param(REPO / path)
    assert (p.base_lr, p.lr_policy, p.gamma, list(p.stepvalue), p.max_iter) == \
        (pytest.approx(0.001), "multistep", pytest.approx(0.1), steps, max_iter)
    assert p.momentum == pytest.approx(0.9) and p.weight_decay == pytest.approx(0.004)
    assert (p.test_iter[0], p.snapshot, p.random_seed) == (100, snapshot, 1)
    assert p.snapshot_prefix.startswith("weights/study/")
    assert (REPO / p.net).is_file()
    assert _rates(p, rates) == pytest.approx(list(rates.values()))


def test_default_schedule_is_the_study_solver():
    args = ts.parse(["train"])
    assert args.solver == (REPO / "prototxt" / "cifar10_full_study_solver.prototxt").resolve()


def test_fifteen_models_and_their_nets():
    assert len(ts.MODELS) == 15
    for m in ts.MODELS:
        assert m.net.is_file(), m.net
        text = m.net.read_text()
        conv = re.findall(r'name: "(conv\d)".*?num_output: (\d+)', text, re.S)
        widths = dict((name, int(n)) for name, n in conv)
        assert widths["conv1"] == (m.filters if m.split == 1 else 32)
        assert widths["conv2"] == (m.filters if m.split == 2 else 32)


def test_bytes_match_the_papers_tables():
    for split, rows in ts.PAPER.items():
        for n, (kb, _) in rows.items():
            assert ts.BATCH * n * ts.CUT_HW[split] / 1000 == pytest.approx(kb)
    paper = SHARED / "paper.md"
    if not paper.is_file():
        pytest.skip("../shared/paper.md not found: cannot check the figures against it")
    text = paper.read_text()
    for split in (1, 2):
        block = text.split(f"## Table {split + 1}")[1]
        kb = re.search(r"\| sent \(KB\) \|(.*)\|", block).group(1).split("|")
        acc = re.search(r"\| accuracy \(%\) \|(.*)\|", block).group(1).split("|")
        ours = [ts.PAPER[split][n] for n in (*ts.WIDTHS, ts.FULL)]
        assert [(float(k), float(a)) for k, a in zip(kb, acc)] == ours


def test_train_writes_snapshot_skips_and_resumes(tiny_data, tmp_path, capsys):
    out = tmp_path / "study"
    common = ["--models", "c1_4", "--data", str(tiny_data), "--out", str(out), "--threads", "1"]
    assert run("train", *common, "--max-iter", "2") == 0
    assert (out / "c1_4_iter_2.caffemodel").is_file() and (out / "c1_4_iter_2.solverstate").is_file()
    solver = load_solver_param(out / "c1_4_solver.prototxt")
    assert solver.snapshot_prefix == str(out / "c1_4") and solver.max_iter == 2
    assert load_solver_param(out / "c1_4_solver.prototxt").net == str(out / "c1_4_train_test.prototxt")
    assert str(tiny_data / "cifar10_test_lmdb") in (out / "c1_4_train_test.prototxt").read_text()
    capsys.readouterr()

    assert run("train", *common, "--max-iter", "2") == 0  # final snapshot there: skipped
    assert "skipped" in capsys.readouterr().out

    assert run("train", *common, "--max-iter", "3") == 0  # resumes at iteration 2
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "c1_4_iter_2.solverstate" in printed
    assert "1 iterations in" in printed
    assert (out / "c1_4_iter_3.caffemodel").is_file()
    assert "c1_4_iter_2.solverstate" in (out / "c1_4.log").read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_leaves_a_snapshot_to_resume_from(tiny_data, tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, str(SCRIPT), "train", "--models", "c2_4", "--max-iter", "100000",
           "--data", str(tiny_data), "--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # wait until training has started
            lines.append(line)
            if "lr = " in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(lines) + rest
    states = ts.snapshots(out, ts.BY_NAME["c2_4"], ".solverstate")
    assert len(states) == 1 and 0 < min(states) < 100000
    assert ts.resume_point(out, ts.BY_NAME["c2_4"]) == (min(states), states[min(states)])


def test_report_lists_paper_figures_and_untrained_models(tiny_data, tmp_path, capsys):
    out, report = tmp_path / "study", tmp_path / "accuracy.md"
    assert run("train", "--models", "c2_12", "--max-iter", "1", "--data", str(tiny_data),
               "--out", str(out), "--threads", "1") == 0
    assert run("report", "--data", str(tiny_data), "--out", str(out), "--max-iter", "1",
               "--test-batches", "2", "--output", str(report)) == 0
    text = report.read_text()
    rows = [r for r in text.splitlines() if re.match(r"\| \d+ \| (c[12]_\d+|full) \|", r)]
    assert len(rows) == 16  # 8 per table; the full net in both
    assert sum("not trained yet" in r for r in rows) == 15  # all but c2_12
    (trained,) = [r for r in rows if "| c2_12 |" in r]
    cells = [c.strip() for c in trained.strip("|").split("|")]
    assert cells[:7] == ["12", "c2_12", "76,800", "307.2", "76.8", "76.8", "iter 1 (final)"]
    assert 0 <= float(cells[7]) <= 100 and cells[8] == "77.16"
    assert float(cells[9]) == pytest.approx(float(cells[7]) - 77.16, abs=0.011)
    # max_iter 1 < test_interval: training ran no test, and took about no time.
    assert cells[10] == "" and cells[11] in ("", "0 min")
    for figure in ("73.35", "78.18", "77.99", "78.11", "819.2", "204.8"):
        assert f"| {figure} |" in text
    assert "python tools/train_study.py report" in text and "x0.1 at 4000" in text


def test_report_reads_the_training_runs_last_test_and_time(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "c1_8.log").write_text(
        "2026-11-26T10:00:00 Iteration 1000, Testing net (#0)\n"
        "2026-11-26T10:00:05     Test net output #0: accuracy = 0.5289\n"
        "2026-11-26T10:00:05     Test net output #1: loss = 1.31 (* 1 = 1.31 loss)\n"
        "2026-11-26T10:00:09 1000 iterations in 300 s (300 ms/iteration)\n"
        "2026-11-26T11:00:00 Iteration 2000, Testing net (#0)\n"
        "2026-11-26T11:00:05     Test net output #0: accuracy = 0.6067\n"
        "2026-11-26T11:00:09 1000 iterations in 420 s (420 ms/iteration)\n")
    assert ts.from_log(out, ts.BY_NAME["c1_8"]) == ("60.67 (iter 2,000)", "12 min")
    assert ts.from_log(out, ts.BY_NAME["c1_4"]) == ("", "")
