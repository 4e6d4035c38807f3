"""Client and cloud as separate processes: failures and Ctrl-C end both cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import tinycaffe

from .helpers import Lines, free_port, sink, slow, source
from .test_split_nets import CLIENT_LAYERS, CLOUD_LAYERS

CLI = [sys.executable, "-m", "tinycaffe.cli"]


def start(args, cwd):
    """A tinycaffe child whose merged output a thread reads (``proc.lines``)."""
    proc = subprocess.Popen(CLI + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.lines = Lines(proc)
    return proc


def wait_for_line(proc, needle, timeout=30.0):
    """Output up to the first line containing ``needle``; fails after ``timeout`` (scaled) even if the child is silent."""
    return proc.lines.wait_for(needle, timeout)


def finish(proc, timeout=30.0) -> str:
    """Wait for the child to exit; all its output."""
    proc.wait(slow(timeout))
    return proc.lines.rest()


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


# window 4: the client sends from a background thread, which must not reconnect after Ctrl-C.
@pytest.mark.parametrize("who, window", [("client", 1), ("cloud", 1), ("client", 4)])
def test_ctrl_c_on_either_side_ends_both(halves, who, window):
    client, cloud, weights, cwd = halves
    if window > 1:
        client.write_text(client.read_text().replace("sink_param { ", f"sink_param {{ window: {window} "))
    server = start(["serve", str(cloud), "--weights", str(weights), "--quiet"], cwd)
    try:
        wait_for_line(server, "serving")
        runner = start(["test", str(client), "--weights", str(weights), "--iterations", "100000", "--quiet"], cwd)
        try:
            wait_for_line(server, "connected")  # the client's HELLO is in: batches are flowing
            time.sleep(0.5)
            target = runner if who == "client" else server
            target.send_signal(signal.SIGINT)
            out_server = finish(server)
            out_client = finish(runner)
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
    assert "tinycaffe: error:" in out_other, out_other
    # The interrupted side's ERROR frame arrives and is what the other side reports, even
    # when Ctrl-C lands as a frame finishes (the ERROR follows the whole frame) or while the
    # server's compute thread is ACKing a batch (the peer's ERROR, not "cannot send ACK").
    error_line = next(line for line in out_other.splitlines() if "tinycaffe: error:" in line)
    assert "stopped with ERROR" in error_line, out_other
    assert "Traceback" not in out_other + out_interrupted


def test_keep_serving_survives_a_failed_client(halves):
    client, cloud, weights, cwd = halves
    server = start(["serve", str(cloud), "--weights", str(weights), "--quiet", "--keep-serving"], cwd)
    try:
        wait_for_line(server, "serving")
        first = start(["test", str(client), "--weights", str(weights), "--iterations", "100000", "--quiet"], cwd)
        wait_for_line(server, "connected")
        time.sleep(0.5)
        first.send_signal(signal.SIGINT)
        finish(first)
        wait_for_line(server, "client failed")  # the server has seen the failure before the next client comes
        second = start(["test", str(client), "--weights", str(weights), "--iterations", "3", "--quiet"], cwd)
        out = finish(second, 60)
        assert second.returncode == 0, out
        wait_for_line(server, "client done after 3 batches")
    finally:
        server.kill()


def test_a_stray_connection_does_not_end_a_one_run_server(halves):
    """Without --keep-serving, a peer that never sends a HELLO is refused; the real client's run still happens."""
    import socket

    client, cloud, weights, cwd = halves
    port = int(cloud.read_text().split("port: ")[1].split()[0])
    server = start(["serve", str(cloud), "--weights", str(weights), "--quiet", "--handshake-timeout", "2"], cwd)
    try:
        wait_for_line(server, "serving")
        with socket.create_connection(("127.0.0.1", port), timeout=slow(5)) as stray:
            stray.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not our protocol
            assert stray.recv(4096)  # it gets an ERROR frame, then the server closes it
        socket.create_connection(("127.0.0.1", port), timeout=slow(5)).close()  # a port scanner
        runner = start(["test", str(client), "--weights", str(weights), "--iterations", "3", "--quiet"], cwd)
        out = finish(runner, 60)
        assert runner.returncode == 0, out
        served = finish(server, 60)
    finally:
        server.kill()
    assert server.returncode == 0, served
    assert "client done after 3 batches" in served, served
