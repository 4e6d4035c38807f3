"""The command line: `time` output, Caffe's spellings, and clean errors."""
from __future__ import annotations

import contextlib
import io

import pytest

from tinycaffe.cli import main

NET = """
name: "tiny"
layer { name: "d" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: [4, 3, 8, 8] } shape { dim: [4] }
                           data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    return str(path)


def test_time_prints_every_layer_and_the_totals(model):
    code, out, _ = run(["time", model, "--iterations", "3", "--phase", "train", "--backward"])
    assert code == 0
    for layer in ("d", "conv", "ip", "loss"):
        assert f"{layer}\tforward:" in out
    assert "conv\tbackward:" in out
    assert "Average Forward pass:" in out and "Average Forward-Backward:" in out


def test_caffe_spelling_and_means(model):
    code, out, _ = run(["test", "-model", model, "-iterations", "2"])
    assert code == 0
    assert "Batch 1, loss = " in out and out.rstrip().splitlines()[-1].startswith("loss = ")


@pytest.mark.parametrize("args, message", [
    (["test", "nope.prototxt"], "nope.prototxt: no such model file"),
    (["test", "MODEL", "--iterations", "0"], "--iterations must be positive"),
    (["test", "MODEL", "--threads", "0"], "--threads must be positive"),
    (["test", "MODEL", "--weights", "missing.caffemodel"], "missing.caffemodel: no such weights file"),
])
def test_errors_are_one_line_and_exit_1(model, args, message):
    code, _, err = run([a.replace("MODEL", model) for a in args])
    assert code == 1
    assert err.startswith("tinycaffe: error: ") and message in err and "Traceback" not in err
