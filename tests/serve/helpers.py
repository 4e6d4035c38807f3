"""A small cloud net, a server in a thread, and clients that speak the wire directly."""
from __future__ import annotations

import io
import os
import threading

import numpy as np

import tinycaffe
from tinycaffe.serve import ServeOptions, Server
from tinycaffe.serve.log import RefusalLog
from tinycaffe.wire import Hello, SinkSession, specs, wanted

SHAPE = (4, 8)


def slow(seconds: float) -> float:
    """A generous wait limit, scaled by $TINYCAFFE_TEST_SLOW (default 1)."""
    return seconds * float(os.environ.get("TINYCAFFE_TEST_SLOW", "1"))


def cloud_text(port: int = 0, bind: str = "127.0.0.1", returns: bool = True) -> str:
    ret = 'return_top: "prob"' if returns else ""
    return f"""
layer {{ name: "src" type: "Source" top: "x" source_param {{ port: {port} bind: "{bind}" {ret} }}
  input_param {{ shape {{ dim: [4, 8] }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "prob" type: "Softmax" bottom: "ip" top: "prob" }}
"""


def cloud_net(**kw) -> tinycaffe.Net:
    return tinycaffe.Net(cloud_text(**kw), seed=1)


def expected(x: np.ndarray) -> np.ndarray:
    """What a fresh copy of the cloud net answers for ``x`` (same seed, same weights)."""
    net = cloud_net()
    net.layers[0].as_input()
    return net.forward(x=x)["prob"].copy()


def batches(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(n)]


def hello(token: str = "", window: int = 1, returns: bool = True) -> Hello:
    return Hello("sink", "edge", specs([("x", "float32", SHAPE)]), returns=wanted(["prob"] if returns else []),
                 window=window, token=token)


def run_client(port: int, xs: list[np.ndarray], **kw) -> list[np.ndarray]:
    """Send every batch and collect every RESULT, then BYE."""
    connect = {k: kw.pop(k) for k in ("tls", "server_hostname") if k in kw}
    with SinkSession.connect("127.0.0.1", port, hello(**kw), timeout=slow(10), connect_timeout=slow(10),
                             ack_timeout=slow(20), **connect) as s:
        out = []
        for x in xs:
            s.send({"x": x})
            out.append(np.array(s.result(slow(20)).blobs["prob"]))
    return out


class ServerThread:
    """``Server(net).run()`` in a thread; the refusal log goes to ``log_text``."""

    def __init__(self, net=None, on_batch=None, **options):
        self.log_text = io.StringIO()
        self.ended: dict[int, BaseException | None] = {}
        self.error: BaseException | None = None
        self.server = Server(net or cloud_net(), ServeOptions(**options), on_batch=on_batch, on_end=self._end,
                             log=RefusalLog(interval=0.0, stream=self.log_text))
        self.port = self.server.addresses[0][1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _end(self, peer, error) -> None:
        self.ended[peer.number] = error

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def close(self) -> None:
        self.server.close()
        self.thread.join(slow(10))
        assert not self.thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port_for_test() -> int:
    """A port free right now on loopback (for a server started in another process)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
