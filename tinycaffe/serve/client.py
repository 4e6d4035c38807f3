"""A small client of ``tinycaffe serve`` for programs (a probe, a load test, an app without a net).

    from tinycaffe.serve.client import Client

    with Client("127.0.0.1", 3000, {"pool1": (100, 32, 16, 16)}, returns=["prob"]) as c:
        prob = c.infer({"pool1": x})["prob"]      # send one batch, wait for its RESULT
        print(c.server.returns, c.last_round_trip)  # the server's HELLO; seconds of the last infer

TLS and the token come from the arguments or, when not given, from the same
environment variables as the Sink layer (``TINYCAFFE_TLS_CA``,
``TINYCAFFE_TOKEN_FILE``/``TINYCAFFE_TOKEN``; see :mod:`tinycaffe.serve.tls`).
It reconnects and resends like the Sink (:mod:`tinycaffe.wire.resilient`).
"""
from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence

import numpy as np

from ..wire import Hello, SinkSession, specs, wanted
from ..wire.resilient import ResilientSink
from .tls import client_settings


class Client:
    """One connection to a served net; blobs are float32 of the declared ``inputs`` shapes."""

    def __init__(
        self,
        host: str,
        port: int,
        inputs: Mapping[str, Sequence[int]],
        *,
        returns: Sequence[str] = (),
        window: int = 1,
        wire: str = "float32",
        tls: ssl.SSLContext | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retry_for: float = 10.0,
        rate: str | None = None,
    ) -> None:
        env_tls, env_token = client_settings(host)
        tls = env_tls if tls is None else tls
        token = env_token if token is None else token
        hello = Hello("sink", "client", specs([(n, "float32", tuple(s)) for n, s in inputs.items()]),
                      returns=wanted(returns), wire=wire, window=window, token=token or "",
                      checksum=tls is None)  # over TLS its record MACs guard the bytes
        self.timeout = timeout

        def connect(t: float) -> SinkSession:
            return SinkSession.connect(host, port, hello, timeout=timeout, connect_timeout=t, ack_timeout=timeout,
                                       rate=rate, tls=tls)

        self.session = ResilientSink(connect, returns=bool(returns), retry_for=retry_for)
        self.session.open(connect_timeout)
        self.last_round_trip: float | None = None

    @property
    def server(self) -> Hello:
        """The server's HELLO: the blobs it takes and returns (with their shapes)."""
        return self.session.peer

    def send(self, blobs: Mapping[str, np.ndarray]) -> int:
        """Send one batch without waiting for its answer; returns its batch id."""
        return self.session.send(blobs)

    def result(self) -> dict[str, np.ndarray]:
        """The returned blobs of the oldest unanswered batch."""
        return dict(self.session.result(self.timeout).blobs)

    def infer(self, blobs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Send one batch and wait for its returned blobs (or, with none, for its ACK)."""
        t0 = time.perf_counter()
        self.session.send(blobs)
        if self.session.returns:
            out = {k: np.array(v) for k, v in self.session.result(self.timeout).blobs.items()}
        else:
            self.session.flush()
            out = {}
        self.last_round_trip = time.perf_counter() - t0
        return out

    def close(self) -> None:
        """Finish cleanly (every batch answered, BYE)."""
        self.session.close(self.timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.session.fail(f"client stopped: {exc_type.__name__}")
