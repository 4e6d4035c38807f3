"""Source: the first layer of a cloud net; its tops arrive over TCP from a client's Sink.

The Source listens, accepts a Sink and answers its HELLO in the background
as soon as the net is built; the first forward waits for that client. Each
forward takes one batch, ACKs it at once (so the client can go on) and fills
the tops; after the net's forward, blobs named in ``return_top`` go back to
the Sink as a RESULT. When the Sink says BYE, the forward raises EndOfStream;
the next forward waits for a new client.
"""
from __future__ import annotations

import threading

import numpy as np

from ..backend import asnumpy
from ..errors import EndOfStream, WireError
from ..wire.errors import reword
from .base import Layer
from .registry import register

FOREVER = 24 * 3600.0  # timeout 0 in the prototxt: wait as long as a server would


@register("Source")
class Source(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = 1

    def setup(self, bottoms, tops):
        from ..wire import Hello, SourceServer

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
        self.names = names
        self.returns = list(p.return_top)
        self.timeout = float(p.timeout) or FOREVER
        self.where = f"{p.bind}:{p.port}"
        try:
            # The real HELLO (with the return blobs' shapes) is set once the net is built.
            self.server = SourceServer(Hello("source", self.name, (), wire="any"), p.bind, int(p.port))
        except WireError as exc:
            raise reword(exc, f"source layer '{self.name}': ") from None
        self.session = None
        self.net = None
        self._acceptor: threading.Thread | None = None
        self._seq: int | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (useful when the prototxt says 0)."""
        return self.server.address[1]

    def on_net_ready(self, net) -> None:
        missing = [n for n in self.returns if n not in net.blobs]
        if missing:
            self.bad_param(f"return_top names blob(s) {missing} that the net does not have")
        self.net = net
        self._tops = [net.blobs[n] for n in self.names]
        self._start_accept()

    def _start_accept(self) -> None:
        """Accept the next Sink and do the HELLO exchange in the background.

        A client net with several Sinks connects them one after another while
        it is built; accepting here, not in forward, lets every Source of the
        cloud net answer its HELLO at once.
        """
        self.server.hello = self._hello(self._tops)
        self._accepted: dict = {}

        def run() -> None:
            try:
                self._accepted["session"] = self.server.accept(self.timeout)
            except Exception as exc:  # handed to forward(), which reports it
                self._accepted["error"] = exc

        self._acceptor = threading.Thread(target=run, name=f"accept-{self.name}", daemon=True)
        self._acceptor.start()

    def _wait_for_client(self):
        while self._acceptor.is_alive():
            self._acceptor.join(0.2)  # short joins keep Ctrl-C responsive
        if "error" in self._accepted:
            raise self._accepted["error"]
        return self._accepted["session"]

    def _hello(self, tops):
        from ..wire import Hello, specs

        arrays = {n: np.empty(t.shape, np.float32) for n, t in zip(self.names, tops)}
        returns = {n: np.empty(self.net.blobs[n].shape, np.float32) for n in self.returns}
        return Hello("source", self.name, specs(arrays), returns=specs(returns), wire="any")

    def reshape(self, bottoms, tops):
        pass  # shapes are fixed by the prototxt and checked against the Sink's HELLO

    def forward(self, bottoms, tops):
        try:
            if self.session is None:
                if self._acceptor is None:
                    self._start_accept()
                self.session = self._wait_for_client()
                self._acceptor = None
            if self.xp is np:
                self.session.targets = {n: t.data for n, t in zip(self.names, tops)}
            frame = self.session.receive(self.timeout)
        except WireError as exc:
            self._drop()
            self._start_accept()  # a server may go on with the next client
            raise reword(exc, f"source layer '{self.name}' on {self.where}: ") from None
        if frame is None:
            self._drop()
            self._start_accept()  # ready for the next client at once (--keep-serving)
            raise EndOfStream(f"source layer '{self.name}': the client said BYE")
        for name, top in zip(self.names, tops):
            arr = frame.blobs[name]
            if arr is not top.data:
                top.data[...] = self.xp.asarray(arr)
        self._seq = frame.seq

    def after_net_forward(self, net) -> None:
        if not self.returns or self.session is None or self._seq is None:
            return
        blobs = {n: np.ascontiguousarray(asnumpy(net.blobs[n].data), dtype=np.float32) for n in self.returns}
        seq, self._seq = self._seq, None
        try:
            self.session.send_result(seq, blobs)
        except WireError as exc:
            self._drop()
            raise reword(exc, f"source layer '{self.name}' on {self.where}: ") from None

    def finish_stream(self) -> None:
        """Another Source of this net got BYE: this one's client must be ending too.

        Waits for its BYE; a batch arriving instead would be lost, so that is
        an error.
        """
        if self.session is None:
            return
        try:
            frame = self.session.receive(self.timeout)
        except WireError as exc:
            self._drop()
            self._start_accept()  # a server may go on with the next client
            raise reword(exc, f"source layer '{self.name}' on {self.where}: ") from None
        self._drop()
        if frame is not None:
            raise WireError(
                f"source layer '{self.name}' on {self.where}: a batch arrived after another "
                "Source's client said BYE; the client's Sinks must end together"
            )
        self._start_accept()

    def _drop(self) -> None:
        if self.session is not None:
            try:
                self.session.transport.close()
            finally:
                self.session = None

    def backward(self, tops, propagate_down, bottoms):
        pass

    def close(self, abort: bool = False) -> None:
        """Stop listening; tell a connected client why when aborting."""
        if self.session is not None:
            if abort:
                self.session.fail(f"cloud net stopped (source layer '{self.name}')")
            self._drop()
        self.server.close()
