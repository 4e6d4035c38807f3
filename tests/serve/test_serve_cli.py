"""``tinycaffe split`` and ``tinycaffe serve`` flags around security and many clients."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tinycaffe.cli import main as cli_main

from .helpers import batches, cloud_text, run_client, slow

REPO_MODEL = "prototxt/cifar10_full_sample.prototxt"


def test_split_warns_when_the_cloud_listens_beyond_loopback(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    out = [str(tmp_path / "client.prototxt"), str(tmp_path / "cloud.prototxt")]
    assert cli_main(["split", REPO_MODEL, "--after", "pool1", "--bind", "0.0.0.0", "-o", *out]) == 0
    assert "without TLS" in capsys.readouterr().err
    assert cli_main(["split", REPO_MODEL, "--after", "pool1", "-o", *out]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("bind", ["", "0.0.0.0"])
def test_serve_refuses_plain_tcp_beyond_loopback(tmp_path, capsys, bind):
    model = tmp_path / "cloud.prototxt"
    model.write_text(cloud_text(bind=bind))
    assert cli_main(["serve", str(model)]) == 1
    err = capsys.readouterr().err
    assert "without TLS" in err and "--insecure" in err


def test_the_token_is_never_a_command_line_value(tmp_path, capsys):
    model = tmp_path / "cloud.prototxt"
    model.write_text(cloud_text())
    with pytest.raises(SystemExit):
        cli_main(["serve", str(model), "--token", "s3cret"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_serve_over_tls_with_a_token_file_prints_the_summary(tmp_path):
    trustme = pytest.importorskip("trustme")
    pytest.importorskip("prometheus_client")  # --metrics-port below; a dev extra, not a dependency
    from tinycaffe.serve.tls import client_context

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    (tmp_path / "token").write_text("t0ken")
    import re

    from ..split.helpers import Lines

    model = tmp_path / "cloud.prototxt"
    model.write_text(cloud_text(port=0))  # the server picks a free port and prints it
    server = subprocess.Popen(
        [sys.executable, "-m", "tinycaffe.cli", "serve", str(model), "--tls-cert", str(tmp_path / "server.pem"),
         "--token-file", str(tmp_path / "token"), "--quiet", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = Lines(server)
    try:
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", lines.wait_for("serving", 60)).group(1))
        health = re.search(r"(http://\S+)/metrics", lines.wait_for("metrics on", 10)).group(1) + "/healthz"
        import urllib.request

        with urllib.request.urlopen(health, timeout=slow(5)) as r:
            assert r.status == 200
        got = run_client(port, batches(2, seed=1), token="t0ken", tls=client_context(tmp_path / "ca.pem"))
        server.wait(slow(60))
        out = lines.rest()
    finally:
        server.kill()
    assert len(got) == 2
    assert server.returncode == 0, out
    assert "TLS, token required" in out and "client done after 2 batches" in out, out
    assert "served 1 client(s): 1 done, 0 failed, 2 batches" in out, out
    assert "t0ken" not in out
