"""Scale-out on a standard balancer: HAProxy (TCP mode) in front of three ``tinycaffe serve`` workers.

Sixteen clients run through HAProxy; one worker is killed (SIGKILL) mid-run.
Every client's results must still be complete and exact: the clients cut off
reconnect (through HAProxy, to a live worker) and resend what was unanswered.

Marked ``cluster`` (run with ``-m cluster``); skipped where Debian's
``haproxy`` is not installed (``apt-get install haproxy``).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tinycaffe
from tinycaffe.wire import SinkSession
from tinycaffe.wire.resilient import ResilientSink

from ..split.helpers import Lines
from .helpers import batches, cloud_text, free_port_for_test, hello, slow

pytestmark = [pytest.mark.cluster, pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")]

HAPROXY_CFG = """
global
    maxconn 512
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend tinycaffe
    bind 127.0.0.1:{front}
    default_backend workers
backend workers
    balance leastconn
{servers}
"""


def worker(model, weights, port):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinycaffe.cli", "serve", str(model), "--weights", str(weights), "--quiet",
         "--keep-serving", "--port", str(port), "--max-clients", "32"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc.lines = Lines(proc)
    return proc


def test_sixteen_clients_through_haproxy_survive_a_killed_worker(tmp_path):
    model = tmp_path / "cloud.prototxt"
    model.write_text(cloud_text(port=0))
    weights = tmp_path / "w.caffemodel"
    tinycaffe.Net(cloud_text(), seed=5).save(weights)
    reference = tinycaffe.Net(cloud_text(), weights=str(weights))
    reference.layers[0].as_input()

    ports = [free_port_for_test() for _ in range(3)]
    front = free_port_for_test()
    servers = "\n".join(f"    server w{i} 127.0.0.1:{p} check inter 300ms fall 1 rise 2" for i, p in enumerate(ports))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(front=front, servers=servers))
    workers = [worker(model, weights, p) for p in ports]
    procs = list(workers)
    try:
        for w in workers:
            w.lines.wait_for("serving", 60)
        haproxy = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        procs.append(haproxy)
        time.sleep(1.0)  # its first health checks pass

        n_clients, n_batches = 16, 30
        got: dict[int, list] = {}
        errors: list[BaseException] = []
        reconnects: dict[int, int] = {}
        half = threading.Barrier(n_clients + 1)

        def client(i: int) -> None:
            try:
                def connect(t: float) -> SinkSession:
                    return SinkSession.connect("127.0.0.1", front, hello(), timeout=slow(20), connect_timeout=t,
                                               ack_timeout=slow(30))

                s = ResilientSink(connect, returns=True, retry_for=slow(60))
                s.open(slow(20))
                out = []
                for k, x in enumerate(batches(n_batches, seed=100 + i)):
                    if k == n_batches // 2:
                        half.wait(slow(120))  # the worker dies while every client is mid-run
                    s.send({"x": x})
                    out.append(np.array(s.result(slow(30)).blobs["prob"]))
                s.close(slow(30))
                got[i], reconnects[i] = out, s.reconnects
            except BaseException as e:  # reported below
                errors.append(e)
                try:
                    half.abort()
                except threading.BrokenBarrierError:
                    pass

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
        for t in threads:
            t.start()
        half.wait(slow(120))
        victim = workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(slow(10))
        for t in threads:
            t.join(slow(180))
        assert not errors, errors
        assert sorted(got) == list(range(n_clients))
        for i, out in got.items():
            assert len(out) == n_batches
            for x, y in zip(batches(n_batches, seed=100 + i), out):
                np.testing.assert_array_equal(y, reference.forward(x=x)["prob"])
        assert sum(reconnects.values()) >= 1  # some clients were on the killed worker and moved
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
