"""Installing and running everywhere: without numba, from any directory, with a version, a licence and types."""
from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinycaffe
from tinycaffe.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]

# A net that exercises every kernel family (conv, pooling, LRN) plus BLAS layers.
NET = """
name: "small"
input: "data" input_shape { dim: 2 dim: 3 dim: 12 dim: 12 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: "ave" type: "Pooling" bottom: "norm" top: "ave" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "ave" top: "ip" inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

# Run in a fresh interpreter where `import numba` fails, as on a machine without it.
NO_NUMBA = """
import sys
sys.modules["numba"] = None  # any `import numba` now raises ImportError
import json, pkgutil, importlib
import numpy as np
import tinycaffe, tinycaffe.kernels as k
broken = []
for mod in pkgutil.walk_packages(tinycaffe.__path__, "tinycaffe."):
    if mod.name.endswith("__main__"):  # running it would start the command line
        continue
    try:
        importlib.import_module(mod.name)
    except ImportError as e:  # other optional packages (pydot...) are not this test's concern
        if (e.name or "").split(".")[0] == "numba":
            broken.append([mod.name, str(e)])
net = tinycaffe.Net(sys.argv[1], phase="test", seed=3)
x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
out = net.forward(data=x)["prob"]
impl = k.implementation(x).__name__
from tinycaffe.backend import kernel_summary
print(json.dumps({"broken": broken, "impl": impl, "summary": kernel_summary(),
                  "numba_loaded": sys.modules.get("numba") is not None, "prob": out.tolist()}))
"""


def _run_without_numba(*args: str, code: str = NO_NUMBA) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TINYCAFFE_KERNELS"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)


def test_without_numba_everything_imports_and_the_numpy_kernels_run(tmp_path):
    model = tmp_path / "small.prototxt"
    model.write_text(NET)
    proc = _run_without_numba(str(model))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # Only the Numba kernel modules themselves may need numba.
    assert all(name.startswith("tinycaffe.kernels.numba_") for name, _ in result["broken"]), result["broken"]
    assert "tinycaffe.kernels.numba_kernels" in [name for name, _ in result["broken"]]  # the shim bit
    assert result["impl"] == "tinycaffe.kernels.numpy_kernels"
    assert result["summary"] == "kernels: numpy (numba is not installed)"
    assert not result["numba_loaded"]
    # Same net, same seed, here with whatever kernels this process has (Numba in CI).
    net = tinycaffe.Net(str(model), phase="test", seed=3)
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    expected = net.forward(data=x)["prob"]
    np.testing.assert_allclose(np.asarray(result["prob"], np.float32), expected, rtol=1e-5, atol=1e-6)


def test_tinycaffe_test_says_it_ran_the_numpy_kernels_without_numba(tmp_path):
    model = tmp_path / "tiny.prototxt"
    model.write_text("""
    layer { name: "d" type: "DummyData" top: "data" top: "label"
            dummy_data_param { shape { dim: [2, 3, 6, 6] } shape { dim: [2] }
                               data_filler { type: "gaussian" std: 1 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
    layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 3 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    """)
    code = ("import sys; sys.modules['numba'] = None\n"
            "from tinycaffe.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = _run_without_numba("test", str(model), "--iterations", "1", "--quiet", code=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "kernels: numpy (numba is not installed)"


def test_a_numba_older_than_the_minimum_is_left_unused():
    # Debian bookworm's python3-numba (0.56, 32-bit Pi OS) aborted in LLVM under emulation.
    code = ("import sys, types; old = types.ModuleType('numba'); old.__version__ = '0.56.4'\n"
            "sys.modules['numba'] = old\n"
            "import numpy as np\n"
            "from tinycaffe import kernels\n"
            "from tinycaffe.backend import kernel_summary\n"
            "assert kernels.implementation(np.zeros(1, np.float32)) is kernels.numpy_kernels\n"
            "print(kernel_summary())\n")
    proc = _run_without_numba(code=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "kernels: numpy (numba 0.56.4 is older than 0.58)"


def test_tinycaffe_test_names_its_kernels_and_threads(tmp_path, monkeypatch):
    model = tmp_path / "tiny.prototxt"
    model.write_text('layer { name: "d" type: "DummyData" top: "x" dummy_data_param { shape { dim: [1, 2] } } }')
    monkeypatch.setenv("TINYCAFFE_KERNELS", "numpy")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["test", str(model), "--iterations", "1", "--quiet"]) == 0
    assert out.getvalue().splitlines()[0] == "kernels: numpy (TINYCAFFE_KERNELS=numpy)"
    monkeypatch.delenv("TINYCAFFE_KERNELS")
    from tinycaffe import kernels

    if kernels.numba_kernels is None:
        pytest.skip("numba is not installed here")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["test", str(model), "--iterations", "1", "--quiet", "--threads", "1"]) == 0
    assert out.getvalue().splitlines()[0] == "kernels: numba (1 thread)"


def _dependencies() -> list[str]:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


@pytest.mark.parametrize("machine, wants_numba", [
    ("x86_64", True), ("aarch64", True), ("arm64", True), ("armv7l", False), ("armv6l", False),
])
def test_pip_pulls_numba_only_where_wheels_exist(machine, wants_numba):
    from packaging.requirements import Requirement

    env = {"platform_machine": machine, "sys_platform": "linux", "python_version": "3.11"}
    wanted = {Requirement(d).name.lower() for d in _dependencies()
              if Requirement(d).marker is None or Requirement(d).marker.evaluate(env)}
    assert ("numba" in wanted) == wants_numba
    assert {"numpy", "protobuf", "lmdb", "pillow"} <= wanted  # the rest installs everywhere


def test_version_comes_from_the_package_metadata():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        cli_main(["--version"])
    assert stop.value.code == 0
    assert out.getvalue().strip() == f"tinycaffe {tinycaffe.__version__}"
    assert tinycaffe.__version__ == importlib.metadata.version("tinycaffe")


def test_licence_and_type_marker_ship():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"]["text"] == "BSD-2-Clause"
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("BSD 2-Clause License") and "the tinycaffe authors" in licence
    assert (REPO / "tinycaffe" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["tinycaffe"]


def test_main_job_runs_from_any_directory(tmp_path, monkeypatch):
    # The sample prototxt names its data "tinycaffe/sample/..." (Caffe's rule: relative
    # to the working directory); from elsewhere it is found inside the package.
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["test", str(REPO / "prototxt" / "cifar10_full_sample.prototxt"),
                         "--weights", str(REPO / "weights" / "study" / "full_iter_5000.caffemodel"),
                         "--iterations", "1", "--quiet"])
    assert code == 0
    assert re.search(r"^accuracy = 0\.\d+$", out.getvalue(), re.M), out.getvalue()
