"""Source: the first layer of a cloud net; it declares the blobs that arrive from a client's Sink.

A Source is the declaration of the cloud net's inputs: their names and
shapes, the port to listen on, and the blobs to send back (``return_top``).
Whoever owns the connections fills its tops:

* the server (:mod:`tinycaffe.serve`, ``tinycaffe serve``) calls
  :meth:`as_input` and then ``net.forward(**blobs)`` for each batch of each
  client, and sends the RESULTs itself;
* used on its own, as the study does (``Net(cloud).forward()`` in a loop),
  the Source's first forward opens a one-client listener and waits for a
  Sink; each forward then takes that client's next batch, ACKing it as it
  takes it in (so the client computes its next batch meanwhile). When the
  client says BYE the forward raises :class:`EndOfStream`; the next forward
  waits for a new client. A connection that fails its HELLO (a stray, a
  wrong net) is refused and the Source waits for the next one. It speaks
  plain TCP, so it listens only on loopback (``TINYCAFFE_INSECURE=1`` allows
  other addresses); TLS, tokens and many clients are the server's.

The layer starts no thread and opens no socket while the net is built.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from ..errors import EndOfStream, NetError, WireError
from ..wire.errors import reword
from .base import Layer
from .registry import register

FOREVER = 24 * 3600.0  # timeout 0 in the prototxt: wait as long as a server would
HANDSHAKE_TIMEOUT = 10.0  # a connected peer has this long, in all, to send a matching HELLO


@register("Source")
class Source(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.source_param
        names = list(self.param.top)
        shapes = [tuple(int(d) for d in s.dim) for s in self.param.input_param.shape]
        if not shapes and self.param.HasField("reshape_param"):
            # The study's form: one top, its shape in reshape_param.
            shapes = [tuple(int(d) for d in self.param.reshape_param.shape.dim)]
        if len(shapes) == 1 and len(names) > 1:
            shapes = shapes * len(names)
        if len(shapes) != len(names):
            self.bad_param(
                f"give the shape of each top ({len(names)}) in input_param {{ shape {{ dim: ... }} }} "
                "(or, for one top, in reshape_param as the study does)"
            )
        for top, shape in zip(tops, shapes):
            top.reshape(shape)
        #: The declared inputs: top name -> shape.
        self.names = names
        self.shapes = dict(zip(names, shapes))
        self.returns = list(p.return_top)
        self.bind = p.bind
        self.listen_port = int(p.port)
        self.timeout = float(p.timeout) or FOREVER
        self.where = f"{p.bind}:{p.port}"
        self.external = False  # True once a server owns the connections (as_input)
        self.server = None  # the one-client listener of the standalone use, opened on first use
        self.session = None

    def as_input(self) -> None:
        """Let the caller fill the tops (``net.forward(**blobs)``): this layer opens nothing."""
        if self.server is not None:
            raise NetError(f"source layer '{self.name}' already listens on its own; build a new net to serve it")
        self.external = True

    def open(self) -> None:
        """Start listening (the standalone use); the first forward does it if needed."""
        if self.server is not None:
            return
        if self.external:
            raise NetError(f"source layer '{self.name}' is an input declaration: a server owns its connections")
        if self.returns:
            raise NetError(
                f"source layer '{self.name}': return_top {self.returns} is sent after the whole net's forward, "
                "which the server does: run `tinycaffe serve`, or tinycaffe.serve.Server(net) in Python"
            )
        from ..wire.tls import is_loopback
        from ..wire import Hello, SourceServer, specs

        if not is_loopback(self.bind) and os.environ.get("TINYCAFFE_INSECURE") != "1":
            raise NetError(
                f"source layer '{self.name}' would listen on {self.bind or 'every interface'} in plain TCP: "
                "serve it with `tinycaffe serve --tls-cert ...` (or set TINYCAFFE_INSECURE=1 to do it anyway)"
            )
        hello = Hello("source", self.name, specs([(n, "float32", s) for n, s in self.shapes.items()]), wire="any")
        try:
            self.server = SourceServer(hello, self.bind, self.listen_port)
        except WireError as exc:
            raise reword(exc, f"source layer '{self.name}': ") from None

    @property
    def port(self) -> int:
        """The port listened on (the standalone use; opens the listener, useful when the prototxt says 0)."""
        self.open()
        return self.server.address[1]

    def reshape(self, bottoms, tops):
        pass  # shapes are fixed by the prototxt and checked against the Sink's HELLO

    def _wait_for_client(self) -> None:
        """Accept until one peer completes a matching HELLO, or ``timeout`` passes."""
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            try:
                self.session = self.server.accept(max(left, 0.001), handshake_timeout=HANDSHAKE_TIMEOUT)
                return
            except WireError as exc:
                if "no connection on" in str(exc) or time.monotonic() >= deadline:
                    raise
                # A stray or a wrong peer was refused (it got an ERROR frame): wait for the next.
                print(f"tinycaffe: source layer '{self.name}' refused a peer: {exc}", file=sys.stderr, flush=True)

    def forward(self, bottoms, tops):
        if self.external:
            return  # the server filled the tops
        self.open()
        try:
            if self.session is None:
                self._wait_for_client()
            if self.xp is np:
                self.session.targets = {n: t.data for n, t in zip(self.names, tops)}
            frame = self.session.receive(self.timeout)
        except WireError as exc:
            self._drop()
            raise reword(exc, f"source layer '{self.name}' on {self.where}: ") from None
        if frame is None:
            self._drop()
            raise EndOfStream(f"source layer '{self.name}': the client said BYE")
        for name, top in zip(self.names, tops):
            arr = frame.blobs[name]
            if arr is not top.data:
                top.data[...] = self.xp.asarray(arr)

    def _drop(self) -> None:
        if self.session is not None:
            try:
                self.session.transport.close()
            finally:
                self.session = None

    def backward(self, tops, propagate_down, bottoms):
        pass

    def close(self, abort: bool = False) -> None:
        """Stop listening. A client mid-stream is told why (abort) or, after its BYE, answered."""
        session, self.session = self.session, None
        if session is not None:
            try:
                if abort:
                    session.fail(f"cloud net stopped (source layer '{self.name}')")
                else:
                    session.close(5.0)  # answers the client's BYE (e.g. of a second link)
            except WireError:
                pass  # the client is gone already
            finally:
                session.transport.close()
        if self.server is not None:
            self.server.close()
            self.server = None
