"""``--metrics-port``: Prometheus counters and a health check; refusals counted, not one line each."""
from __future__ import annotations

import io
import socket
import urllib.error
import urllib.request

import pytest

pytest.importorskip("prometheus_client")

from tinycaffe.serve.log import RefusalLog  # noqa: E402
from tinycaffe.serve.metrics import Metrics  # noqa: E402

from .helpers import ServerThread, batches, cloud_net, run_client, slow  # noqa: E402


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=slow(5)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_count_clients_batches_bytes_refusals_and_forward_time():
    metrics = Metrics(0)
    metrics.start()
    base = f"http://127.0.0.1:{metrics.port}"
    try:
        assert get(base + "/healthz")[0] == 503  # not ready before the net is served
        st = ServerThread(cloud_net(), keep_serving=True)
        st.server.metrics = metrics  # (the CLI passes it to the constructor)
        metrics.ready()
        try:
            with socket.create_connection(("127.0.0.1", st.port), timeout=slow(5)) as stray:
                stray.sendall(b"junk")
                stray.recv(100)
            run_client(st.port, batches(3, seed=1))
            status, text = get(base + "/healthz")
            assert status == 200
            _, text = get(base + "/metrics")
        finally:
            st.close()
    finally:
        metrics.close()
    for line in ("tinycaffe_batches_total 3.0", "tinycaffe_clients_total 1.0", 'tinycaffe_refused_total{reason="hello"} 1.0',
                 "tinycaffe_forward_seconds_count 3.0", 'tinycaffe_clients_ended_total{result="ok"} 1.0'):
        assert line in text, text
    assert 'tinycaffe_wire_bytes_total{direction="received"}' in text
    sent = [float(line.split()[-1]) for line in text.splitlines()
            if line.startswith('tinycaffe_wire_bytes_total{direction="sent"}')]
    assert sent and sent[0] > 0, text  # HELLO, ACKs, RESULTs and BYE, whichever thread wrote them


def test_refusals_are_counted_and_their_lines_rate_limited():
    out = io.StringIO()
    log = RefusalLog(interval=3600.0, stream=out)
    for i in range(1000):
        log.refuse("hello", f"10.0.0.{i % 250}:1234", "bad magic")
    log.refuse("auth", "10.0.0.1:1", "no token")
    assert log.counts == {"hello": 1000, "auth": 1}
    assert len(out.getvalue().splitlines()) == 2  # one line per kind, not one per peer
