"""Faults lose nothing and duplicate nothing: a client outlives its server's death and restart.

The finding: the client failed when the server restarted, and SIGTERM on
the server printed no summary.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import tinycaffe

from ..split.helpers import Lines
from .helpers import batches, cloud_text, free_port_for_test, slow


def client_text(port: int) -> str:
    return (
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: [4, 8] } } }'
        f'layer {{ name: "sink" type: "Sink" bottom: "x" top: "prob" '
        f'sink_param {{ port: {port} return_top: "prob" connect_timeout: 30 }} }}'
    )


def start_server(model, weights):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinycaffe.cli", "serve", str(model), "--weights", str(weights), "--quiet",
         "--keep-serving"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc.lines = Lines(proc)
    proc.lines.wait_for("serving", 60)
    return proc


@pytest.fixture
def setup(tmp_path, monkeypatch):
    port = free_port_for_test()
    model = tmp_path / "cloud.prototxt"
    model.write_text(cloud_text(port=port))
    weights = tmp_path / "w.caffemodel"
    tinycaffe.Net(cloud_text(port=port), seed=11).save(weights)
    monkeypatch.setenv("TINYCAFFE_RECONNECT", str(slow(60)))
    reference = tinycaffe.Net(cloud_text(port=port), weights=str(weights))
    reference.layers[0].as_input()
    return port, model, weights, reference


def run_with_a_fault(port, model, weights, n, at, fault):
    """Run ``n`` batches through a Sink; when ``at`` results are in, ``fault(server)`` and restart it."""
    xs = batches(n, seed=21)
    servers = [start_server(model, weights)]
    client = tinycaffe.Net(client_text(port))
    got = []
    faulted = threading.Event()

    def strike():
        faulted.wait(slow(120))
        fault(servers[0])
        servers.append(start_server(model, weights))

    killer = threading.Thread(target=strike, daemon=True)
    killer.start()
    try:
        for i, x in enumerate(xs):
            got.append(client.forward(x=x)["prob"].copy())
            if i + 1 == at:
                faulted.set()  # the fault strikes while the next batches are on their way
        reconnects = client.layers[-1].session.reconnects
        client.close()
        killer.join(slow(120))
        assert reconnects >= 1
    finally:
        for s in servers:
            s.kill()
    return xs, got, servers


def test_sigkill_mid_run_and_restart_lose_nothing_and_duplicate_nothing(setup):
    port, model, weights, reference = setup
    xs, got, servers = run_with_a_fault(port, model, weights, 200, 80, lambda p: (p.kill(), p.wait(30)))
    assert len(servers) == 2 and servers[0].returncode == -signal.SIGKILL
    assert len(got) == 200
    for x, y in zip(xs, got):  # batch for batch, as an uninterrupted run gives
        np.testing.assert_array_equal(y, reference.forward(x=x)["prob"])


def test_sigterm_drains_prints_the_summary_and_the_client_carries_on(setup):
    port, model, weights, reference = setup
    outputs = {}

    def term(proc):
        proc.send_signal(signal.SIGTERM)
        proc.wait(slow(30))
        outputs["first"] = proc.lines.rest()

    xs, got, servers = run_with_a_fault(port, model, weights, 40, 10, term)
    assert servers[0].returncode == 0, outputs["first"]
    m = re.search(r"served 1 client\(s\): 0 done, 1 failed, (\d+) batches", outputs["first"])
    assert m, outputs["first"]
    assert len(got) == 40
    for x, y in zip(xs, got):
        np.testing.assert_array_equal(y, reference.forward(x=x)["prob"])
