"""Client and cloud as separate processes: failures and Ctrl-C end both cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import tinycaffe

from .helpers import free_port, sink, source
from .test_split_nets import CLIENT_LAYERS, CLOUD_LAYERS

CLI = [sys.executable, "-m", "tinycaffe.cli"]


def start(args, cwd):
    return subprocess.Popen(CLI + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_line(proc, needle, timeout=30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not printed; got {''.join(seen)!r}")


@pytest.fixture
def halves(tmp_path):
    port = free_port()
    weights = tmp_path / "w.caffemodel"
    tinycaffe.Net(CLIENT_LAYERS + CLOUD_LAYERS).save(weights)
    client = tmp_path / "client.prototxt"
    cloud = tmp_path / "cloud.prototxt"
    # DummyData feeds the client forever, so only Ctrl-C or a failure ends it.
    client.write_text(
        CLIENT_LAYERS.replace(
            'type: "Input" top: "data" input_param { shape { dim: [ 100, 3, 32, 32 ] } }',
            'type: "DummyData" top: "data" dummy_data_param { shape { dim: [ 100, 3, 32, 32 ] } '
            'data_filler { type: "uniform" min: -1 max: 1 } }',
        )
        + sink(port)
    )
    cloud.write_text(source(port) + CLOUD_LAYERS)
    return client, cloud, weights, tmp_path


@pytest.mark.parametrize("who", ["client", "cloud"])
def test_ctrl_c_on_either_side_ends_both(halves, who):
    client, cloud, weights, cwd = halves
    server = start(["serve", str(cloud), "--weights", str(weights), "--quiet"], cwd)
    try:
        wait_for_line(server, "serving")
        runner = start(["test", str(client), "--weights", str(weights), "--iterations", "100000", "--quiet"], cwd)
        try:
            time.sleep(2.0)  # batches are flowing
            target = runner if who == "client" else server
            target.send_signal(signal.SIGINT)
            out_server, _ = server.communicate(timeout=30)
            out_client, _ = runner.communicate(timeout=30)
        finally:
            runner.kill()
    finally:
        server.kill()
    interrupted, other = (runner, server) if who == "client" else (server, runner)
    out_interrupted, out_other = (out_client, out_server) if who == "client" else (out_server, out_client)
    assert interrupted.returncode == 130, out_interrupted
    assert "interrupted" in out_interrupted
    # The other side learns why, in one line, and exits with an error code (no traceback).
    assert other.returncode == 1, out_other
    assert "tinycaffe: error:" in out_other and "stopped" in out_other, out_other
    assert "Traceback" not in out_other + out_interrupted


def test_keep_serving_survives_a_failed_client(halves):
    client, cloud, weights, cwd = halves
    server = start(["serve", str(cloud), "--weights", str(weights), "--quiet", "--keep-serving"], cwd)
    try:
        wait_for_line(server, "serving")
        first = start(["test", str(client), "--weights", str(weights), "--iterations", "100000", "--quiet"], cwd)
        time.sleep(2.0)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
        wait_for_line(server, "client failed")
        second = start(["test", str(client), "--weights", str(weights), "--iterations", "3", "--quiet"], cwd)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0, out
        wait_for_line(server, "client done after 3 batches")
    finally:
        server.kill()
