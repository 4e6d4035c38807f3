"""The re-cut client against a ``serve --any-cut`` server on loopback: switches lose and repeat nothing."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import tinycaffe
from tinycaffe.plan.recut import RecutClient, any_cut_net_param
from tinycaffe.serve import ServeOptions, Server
from tinycaffe.serve.log import RefusalLog
from tinycaffe.wire import Hello, SinkSession, specs, wanted
from tinycaffe.wire.errors import PeerError, ProtocolError

from .helpers import cost_model

NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""
MS = {"data": 0.0, "conv1": 5.0, "relu1": 0.0, "pool1": 1.0, "ip1": 1.0, "prob": 0.1}
SHAPES = {"data": (2, 3, 8, 8), "conv1": (2, 4, 8, 8), "pool1": (2, 4, 4, 4), "ip1": (2, 5), "prob": (2, 5)}
WAIT = 30.0


class AnyCutServer:
    """``Server(whole net, any_cut=True).run()`` in a thread, with the client net's weights."""

    def __init__(self, client_net, keep_serving=True, any_cut=True):
        param = any_cut_net_param(NET, {"data": SHAPES["data"]}, ["prob"])
        self.net = tinycaffe.Net(param, seed=2)
        self.net.share_weights_with(client_net)
        self.batches: list[np.ndarray] = []
        self.server = Server(self.net, ServeOptions(keep_serving=keep_serving, any_cut=any_cut),
                             on_batch=lambda p, out, loss: self.batches.append(np.array(out["prob"])),
                             log=RefusalLog(interval=0.0, stream=open("/dev/null", "w")))
        self.port = self.server.addresses[0][1]
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self):
        self.server.close()
        self.thread.join(WAIT)


@pytest.fixture
def client_net():
    return tinycaffe.Net(NET, seed=1)


def inputs(n):
    rng = np.random.default_rng(7)
    return [rng.standard_normal(SHAPES["data"]).astype(np.float32) for _ in range(n)]


def model():
    return cost_model(NET, MS, MS, SHAPES, 1e7, 1.0, return_top=["prob"])[1]


def run(client_net, port, xs, plan):
    """Run ``xs``; ``plan`` maps a batch index to the cut to switch to before it."""
    outs = []
    with RecutClient(client_net, model(), "127.0.0.1", port, returns=["prob"], start="all in cloud",
                     recut=False, timeout=WAIT) as c:
        for i, x in enumerate(xs):
            if i in plan:
                c.switch(plan[i])
            outs.append(c.infer({"data": x})["prob"])
    return outs, c


def test_forced_switches_lose_nothing_and_change_nothing(client_net):
    xs = inputs(8)
    expected = [np.array(client_net.forward(data=x)["prob"]) for x in xs]
    srv = AnyCutServer(client_net)
    try:
        ref, _ = run(client_net, srv.port, xs, {})
        plan = {2: "after pool1", 4: "all on client", 5: "after conv1", 6: "after ip1", 7: "all in cloud"}
        got, c = run(client_net, srv.port, xs, plan)
    finally:
        srv.close()
    assert [r.cut for r in c.records] == ["all in cloud"] * 2 + ["after pool1"] * 2 + [
        "all on client", "after conv1", "after ip1", "all in cloud"]
    assert [s[0] for s in c.switches] == [2, 4, 5, 6, 7]
    assert len(got) == len(xs)
    for a, b, e in zip(got, ref, expected):
        np.testing.assert_array_equal(a, b)  # bit for bit, whatever the cut
        np.testing.assert_array_equal(a, e)
    # The server saw every sent batch once: 8 of the reference run + 7 (one ran on the client).
    assert len(srv.batches) == 15
    np.testing.assert_array_equal(np.stack(srv.batches[8:]), np.stack([g for i, g in enumerate(got) if i != 4]))
    assert set(srv.server.cuts.built) == {"pool1", "conv1", "ip1"}


def test_the_estimate_drives_a_switch(client_net):
    xs = inputs(3)
    srv = AnyCutServer(client_net)
    try:
        with RecutClient(client_net, model(), "127.0.0.1", srv.port, returns=["prob"], start="all in cloud",
                         timeout=WAIT, margin=0.2) as c:
            c.infer({"data": xs[0]})
            c.estimate.bandwidth = 1e3  # as if the link had collapsed to 1 kB/s
            c._decide(0)
            assert c.current == "all on client"
            c.infer({"data": xs[1]})
    finally:
        srv.close()
    assert [r.cut for r in c.records] == ["all in cloud", "all on client"]


def test_a_bad_cut_is_refused_by_name(client_net):
    srv = AnyCutServer(client_net)
    try:
        h = Hello("sink", "edge", specs([("pool1", "float32", SHAPES["pool1"])]), returns=wanted(["prob"]),
                  cut="nope")
        with pytest.raises((PeerError, ProtocolError), match="cut after layer 'nope'.*no such layer"):
            SinkSession.connect("127.0.0.1", srv.port, h, timeout=WAIT, connect_timeout=WAIT, ack_timeout=WAIT)
        # A real layer, but the blobs sent are not that cut's.
        h = h.with_(cut="conv1")
        with pytest.raises((PeerError, ProtocolError), match="conv1"):
            SinkSession.connect("127.0.0.1", srv.port, h, timeout=WAIT, connect_timeout=WAIT, ack_timeout=WAIT)
        # Nothing left for the cloud.
        h = h.with_(cut="prob")
        with pytest.raises((PeerError, ProtocolError), match="prob"):
            SinkSession.connect("127.0.0.1", srv.port, h, timeout=WAIT, connect_timeout=WAIT, ack_timeout=WAIT)
    finally:
        srv.close()


def test_a_fixed_cut_server_refuses_a_named_cut(client_net):
    srv = AnyCutServer(client_net, any_cut=False)
    try:
        h = Hello("sink", "edge", specs([("data", "float32", SHAPES["data"])]), returns=wanted(["prob"]),
                  cut="data")
        with pytest.raises((PeerError, ProtocolError), match="--any-cut"):
            SinkSession.connect("127.0.0.1", srv.port, h, timeout=WAIT, connect_timeout=WAIT, ack_timeout=WAIT)
    finally:
        srv.close()


def test_a_client_that_learns_nothing_probes(client_net):
    # No server needed: deciding opens no connection. At 1 kB/s everything stays on the client, and
    # there nothing times the link; after probe_every such batches one batch goes to the cheapest cut
    # that can time it ("after ip1", the fewest bytes), then the client goes back.
    c = RecutClient(client_net, model(), "127.0.0.1", 1, returns=["prob"], start="all on client", probe_every=3)
    c.estimate.bandwidth = 1e3
    c._decide(0)
    c._decide(1)
    assert c.current == "all on client"
    c._decide(2)
    assert c.current == "after ip1" and c.switches == [(3, "all on client", "after ip1")]
    c._decide(3)
    assert c.current == "all on client"
