"""A net split by Sink/Source over loopback TCP gives the unsplit net's numbers."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import tinycaffe
from tinycaffe.cli import main as cli_main
from tinycaffe.errors import WireError

from .helpers import CloudThread, ServerThread, free_port, sink, slow, source

REPO = Path(__file__).resolve().parents[2]

# The CIFAR-10 "full" layers, conv1..pool1 on the client and the rest in the cloud.
CLIENT_LAYERS = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [ 100, 3, 32, 32 ] } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 32 pad: 2 kernel_size: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
"""
CLOUD_LAYERS = """
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
  lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 32 pad: 2 kernel_size: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""

# The study's two snippets, verbatim (../shared/paper.md).
STUDY_SINK = """
layer {
  name: "sink1"
  type: "Sink"
  bottom: "pool1"
  sink_param: {
    host_name: "server.example.com"
    port: 3000
  }
}
"""
STUDY_SOURCE = """
layer {
  name: "source1"
  type: "Source"
  top: "pool1"
  source_param: {
    port: 3000
  }
  reshape_param { shape { dim: [ 100, 32, 16, 16 ] } }
}
"""


@pytest.fixture
def weights(tmp_path):
    """One caffemodel for the whole net, so both halves hold the same weights."""
    net = tinycaffe.Net(CLIENT_LAYERS + CLOUD_LAYERS, seed=7)
    path = tmp_path / "full.caffemodel"
    net.save(path)
    return path


def test_study_snippets_run_verbatim_and_match_the_unsplit_net(weights, monkeypatch):
    monkeypatch.setenv("TINYCAFFE_HOSTS", "server.example.com=127.0.0.1")
    x = np.random.default_rng(0).uniform(-100, 100, (3, 100, 3, 32, 32)).astype(np.float32)
    whole = tinycaffe.Net(CLIENT_LAYERS + CLOUD_LAYERS, weights=str(weights))
    expected = [whole.forward(data=b)["prob"].copy() for b in x]

    cloud = tinycaffe.Net(STUDY_SOURCE + CLOUD_LAYERS, weights=str(weights))
    server = CloudThread(cloud, "prob")
    client = tinycaffe.Net(CLIENT_LAYERS + STUDY_SINK, weights=str(weights))
    for b in x:
        client.forward(data=b)
    client.close()
    server.join()
    cloud.close()
    assert server.error is None, server.error
    assert len(server.outputs) == 3
    for got, want in zip(server.outputs, expected):
        np.testing.assert_array_equal(got, want)  # float32 wire: bit-identical


def test_return_top_brings_the_answer_back_to_the_client(weights):
    port = free_port()
    cloud = tinycaffe.Net(
        source(port, options='return_top: "prob"') + CLOUD_LAYERS,
        weights=str(weights),
    )
    server = ServerThread(cloud, "prob")  # the server sends the RESULT after the whole forward
    client = tinycaffe.Net(
        CLIENT_LAYERS
        + sink(port, 'return_top: "prob"', top="prob"),
        weights=str(weights),
    )
    assert client.outputs == ["prob"]
    whole = tinycaffe.Net(CLIENT_LAYERS + CLOUD_LAYERS, weights=str(weights))
    x = np.random.default_rng(1).uniform(-50, 50, (100, 3, 32, 32)).astype(np.float32)
    got = client.forward(data=x)["prob"].copy()
    client.close()
    server.join()
    cloud.close()
    assert server.error is None and server.ended == {1: None}, (server.error, server.ended)
    np.testing.assert_array_equal(got, whole.forward(data=x)["prob"])


def test_a_standalone_source_with_return_top_says_to_use_the_server():
    cloud = tinycaffe.Net(source(free_port(), options='return_top: "pool1"'))
    with pytest.raises(tinycaffe.NetError, match="tinycaffe serve"):
        cloud.forward()
    cloud.close()


def test_building_either_half_opens_no_socket_and_starts_no_thread():
    """The Net is a graph: the Sink connects on first use, the Source listens on first use or in a server."""
    import socket
    import threading

    port = free_port()
    before = threading.active_count()
    cloud = tinycaffe.Net(source(port) + CLOUD_LAYERS)
    client = tinycaffe.Net(CLIENT_LAYERS + sink(port))
    assert threading.active_count() == before
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nobody listens on the port
    # Partial forwards and timing work on either half without a peer.
    out = cloud.forward(start="relu1", pool1=np.ones((100, 32, 16, 16), np.float32))
    assert out["prob"].shape == (100, 10)
    client.forward(data=np.ones((100, 3, 32, 32), np.float32), end="pool1")
    client.close()
    cloud.close()


def test_time_runs_on_the_cloud_half_without_a_client(tmp_path, capsys):
    model = tmp_path / "cloud.prototxt"
    model.write_text(source(free_port(), options='return_top: "prob"') + CLOUD_LAYERS)
    assert cli_main(["time", str(model), "--iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert "Average Forward pass" in out and "src" in out, out


def test_two_sink_source_pairs_on_two_ports(weights):
    """One link per crossing blob, as the study does when a cut severs several links."""
    p1, p2 = free_port(), free_port()
    client_text = CLIENT_LAYERS.replace(
        'top: "data" input_param { shape { dim: [ 100, 3, 32, 32 ] } }',
        'top: "data" top: "label" input_param { shape { dim: [ 100, 3, 32, 32 ] } shape { dim: [ 100 ] } }',
    ) + (
        sink(p1, name="sink1") + sink(p2, blob="label", name="sink2")
    )
    cloud_text = (
        source(p1, name="source1") + source(p2, (100,), blob="label", name="source2")
        + CLOUD_LAYERS
        + 'layer { name: "acc" type: "Accuracy" bottom: "prob" bottom: "label" top: "acc" }'
    )
    cloud = tinycaffe.Net(cloud_text, weights=str(weights))
    server = CloudThread(cloud, "label")
    client = tinycaffe.Net(client_text, weights=str(weights))
    labels = np.arange(100, dtype=np.float32) % 10
    client.forward(data=np.ones((100, 3, 32, 32), np.float32), label=labels)
    client.close()
    server.join()
    cloud.close()
    assert server.error is None, server.error
    np.testing.assert_array_equal(server.outputs[0], labels)


def test_split_serve_test_cli_gives_the_unsplit_accuracy(tmp_path):
    """`tinycaffe split` + `serve` (another process) + `test` on the bundled CIFAR-10 sample."""
    model = REPO / "prototxt" / "cifar10_full_sample.prototxt"
    weights = tmp_path / "w.caffemodel"
    tinycaffe.Net(str(model), seed=3).save(weights)  # untrained, but the same on both sides
    port = free_port()
    client_p, cloud_p = tmp_path / "client.prototxt", tmp_path / "cloud.prototxt"

    def run_cli(args):
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli_main(args) == 0
        return out.getvalue()

    import os

    cwd = os.getcwd()
    os.chdir(REPO)  # the prototxt's data paths are relative to the repository
    try:
        run_cli(["split", str(model), "--after", "pool1", "--port", str(port), "-o", str(client_p), str(cloud_p)])
        unsplit = run_cli(["test", str(model), "--weights", str(weights), "--iterations", "4", "--quiet"])
        server = subprocess.Popen(
            [sys.executable, "-m", "tinycaffe.cli", "serve", str(cloud_p), "--weights", str(weights), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )
        try:
            run_cli(["test", str(client_p), "--weights", str(weights), "--iterations", "4", "--quiet"])
            served, _ = server.communicate(timeout=60)
        finally:
            server.kill()
    finally:
        os.chdir(cwd)
    assert server.returncode == 0, served
    pick = lambda text: re.findall(r"^(accuracy|loss) = (\S+)", text, re.M)
    assert pick(unsplit) and pick(served) == pick(unsplit), (served, unsplit)


def test_client_gets_a_clear_error_when_nobody_listens():
    port = free_port()
    text = CLIENT_LAYERS + sink(port, "connect_timeout: 0.5")
    client = tinycaffe.Net(text)  # connects on first use, not while built
    with pytest.raises(WireError, match=rf"sink layer 'sink' -> 127\.0\.0\.1:{port}"):
        client.forward(data=np.zeros((100, 3, 32, 32), np.float32))
    client.close(abort=True)


def test_shape_mismatch_is_refused_naming_both_shapes(weights):
    port = free_port()
    cloud = tinycaffe.Net(
        source(port, (100, 32, 15, 15))
        + 'layer { name: "relu" type: "ReLU" bottom: "pool1" top: "pool1" }'
    )
    server = ServerThread(cloud, "pool1")
    client = tinycaffe.Net(CLIENT_LAYERS + sink(port))
    with pytest.raises(WireError) as client_err:
        client.layers[-1].open()
    server.close()
    cloud.close()
    logged = server.log_text.getvalue()
    for message in (str(client_err.value), logged):
        assert "(100, 32, 16, 16)" in message and "(100, 32, 15, 15)" in message, message
    assert server.server.log.counts["hello"] == 1 and server.error is None  # refused, not fatal


def test_a_cloud_that_stops_answering_times_out_on_the_client(weights):
    from tinycaffe.wire import Hello, SourceServer, specs

    # A source that answers the HELLO and then never takes a batch in, so no ACK comes.
    hello = Hello("source", "src", specs([("pool1", "float32", (100, 32, 16, 16))]), wire="any")
    mute = SourceServer(hello, timeout=slow(10))
    accepted = []
    t = threading.Thread(target=lambda: accepted.append(mute.accept()), daemon=True)
    t.start()
    client = tinycaffe.Net(CLIENT_LAYERS + sink(mute.address[1], "ack_timeout: 0.5"))
    with pytest.raises(WireError, match=rf"sink layer 'sink' -> 127\.0\.0\.1:{mute.address[1]}.*ACK"):
        client.forward(data=np.zeros((100, 3, 32, 32), np.float32))
    client.close(abort=True)
    t.join(slow(10))
    for session in accepted:
        session.transport.close()
    mute.close()


def test_window_above_one_sends_in_the_background_and_loses_nothing(weights):
    port = free_port()
    cloud = tinycaffe.Net(
        source(port) + CLOUD_LAYERS,
        weights=str(weights),
    )
    server = CloudThread(cloud, "prob")
    client = tinycaffe.Net(
        CLIENT_LAYERS + sink(port, "window: 3"),
        weights=str(weights),
    )
    whole = tinycaffe.Net(CLIENT_LAYERS + CLOUD_LAYERS, weights=str(weights))
    xs = np.random.default_rng(5).uniform(-50, 50, (6, 100, 3, 32, 32)).astype(np.float32)
    for x in xs:
        client.forward(data=x)  # returns before the cloud has taken the batch in
    client.close()
    server.join()
    cloud.close()
    assert server.error is None, server.error
    assert len(server.outputs) == len(xs)  # none lost, none duplicated, in order
    for got, x in zip(server.outputs, xs):
        np.testing.assert_array_equal(got, whole.forward(data=x)["prob"])


def test_a_net_that_fails_to_build_holds_no_port():
    port = free_port()
    text = (
        source(port, (2, 3), blob="x")
        + 'layer { name: "bad" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 1 kernel_size: 1 } }'
    )
    for _ in range(2):  # the second build can listen again only if the first let go
        with pytest.raises(tinycaffe.ShapeError, match="layer 'bad'"):
            tinycaffe.Net(text)


def test_a_standalone_source_refuses_a_stray_and_serves_the_next_client(weights, capsys):
    """The study's way (Net(cloud).forward()) is not ended by a peer that never sends a good HELLO."""
    import socket

    port = free_port()
    cloud = tinycaffe.Net(source(port) + CLOUD_LAYERS, weights=str(weights))
    cloud.layers[0].open()  # listen now, so the stray comes first
    server = CloudThread(cloud, "prob")
    with socket.create_connection(("127.0.0.1", port), timeout=slow(5)) as stray:
        stray.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert stray.recv(4096)[:4] == b"TCF1"  # refused with an ERROR frame
    client = tinycaffe.Net(CLIENT_LAYERS + sink(port), weights=str(weights))
    client.forward(data=np.ones((100, 3, 32, 32), np.float32))
    client.close()
    server.join()
    assert server.error is None and len(server.outputs) == 1
    assert "refused a peer" in capsys.readouterr().err


def test_a_standalone_source_will_not_listen_beyond_loopback_in_plain_tcp():
    cloud = tinycaffe.Net(source(free_port(), options='bind: ""') + CLOUD_LAYERS)
    with pytest.raises(tinycaffe.NetError, match="plain TCP"):
        cloud.forward()
    cloud.close()
