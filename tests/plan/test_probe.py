"""`tinycaffe probe HOST:PORT` against a real `tinycaffe serve` on loopback."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tinycaffe.plan.cost import data_frame_bytes
from tinycaffe.plan.errors import PlanError
from tinycaffe.plan.probe import fit_line, parse_address, source_shapes
from tests.conftest import REPO
from tests.split.helpers import free_port
from tests.test_cli import run

FULL = str(REPO / "prototxt" / "cifar10_full.prototxt")


def test_addresses_and_lines():
    assert parse_address("127.0.0.1:3000") == ("127.0.0.1", 3000)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("localhost", ":80", "host:0", "host:http"):
        with pytest.raises(PlanError, match="bad address"):
            parse_address(bad)
    # y = 2x + 1 through three points.
    assert fit_line([(0, 1), (1, 3), (3, 7)]) == pytest.approx((2.0, 1.0))


def test_probe_measures_a_running_serve(tmp_path):
    port = free_port()
    client, cloud = tmp_path / "client.prototxt", tmp_path / "cloud.prototxt"
    code, _, err = run(["split", FULL, "--after", "pool3", "--port", str(port), "-o", str(client), str(cloud)])
    assert code == 0, err
    assert source_shapes(cloud) == {"pool3": (100, 64, 4, 4)}
    server = subprocess.Popen([sys.executable, "-m", "tinycaffe.cli", "serve", str(cloud), "--keep-serving",
                               "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        # The probe's connect retries until the server listens (up to --timeout seconds).
        code, out, err = run(["probe", f"127.0.0.1:{port}", "--net", str(cloud), "--repeats", "2",
                              "--timeout", "60", "-o", str(tmp_path / "link.json")])
    finally:
        server.terminate()
        try:
            log = server.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            server.kill()
            log = server.communicate()[0].decode(errors="replace")
    assert code == 0, err + log
    doc = json.loads((tmp_path / "link.json").read_text())
    assert doc["source"] == "measured" and doc["bandwidth_bytes_per_s"] > 0 and doc["rtt_s"] >= 0
    assert [s["wire"] for s in doc["samples"]] == ["float32", "float16", "uint8"]
    for s in doc["samples"]:
        assert s["bytes"] == data_frame_bytes({"pool3": (100, 64, 4, 4)}, s["wire"])
        assert len(s["times_s"]) == 2 and all(t > 0 for t in s["times_s"])
    assert len(doc["connect_s"]) == 6  # six exchanges, each on its own connection


def test_probe_refuses_unclear_requests(tmp_path):
    code, _, err = run(["probe", "127.0.0.1:9", "--bandwidth", "1Mbps", "--rtt", "1ms", "-o", str(tmp_path / "x")])
    assert code == 1 and "not both" in err
    code, _, err = run(["probe", "127.0.0.1:9", "-o", str(tmp_path / "x")])
    assert code == 1 and "needs --net" in err
    code, _, err = run(["probe", "-o", str(tmp_path / "x")])
    assert code == 1 and "give HOST:PORT" in err
