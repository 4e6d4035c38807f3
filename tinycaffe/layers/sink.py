"""Sink: the last layer of a client net; sends its bottoms to a cloud Source over TCP.

As in the study, the Sink sends a batch and waits for the Source's ACK, which
the Source gives as soon as it takes the batch in, so the client computes the
next batch while the cloud computes this one. With ``window > 1`` it does not
wait: up to ``window`` batches may be un-ACKed. Blobs named in ``return_top``
(e.g. ``prob``) come back from the cloud and become this layer's tops.

The Sink connects on first use (its first forward) or when :meth:`open` is
called, never while the net is built. TLS and a shared token come from the
environment (see :func:`tinycaffe.wire.tls.client_settings`):
``TINYCAFFE_TLS_CA`` (a CA file that vouches for the server; turns TLS on),
``TINYCAFFE_TLS_CERT``/``TINYCAFFE_TLS_KEY`` (a client certificate, when the
server asks for one), ``TINYCAFFE_TOKEN_FILE`` or ``TINYCAFFE_TOKEN``.

When the server goes away (restart, SIGTERM, a dead worker behind a balancer)
the Sink reconnects with backoff for ``$TINYCAFFE_RECONNECT`` seconds (default:
``connect_timeout``; 0 turns it off) and resends every batch not yet answered,
so each result arrives once and in order (see :mod:`tinycaffe.wire.resilient`).
"""
from __future__ import annotations

from ..backend import asnumpy
from ..errors import WireError
from ..wire.errors import reword
from .base import Layer
from .registry import register

WIRE_NAMES = {0: "float32", 1: "float16", 2: "uint8"}  # SinkParameter.WireDType


def reconnect_budget(connect_timeout: float) -> float:
    """Seconds a Sink keeps reconnecting after losing its server: $TINYCAFFE_RECONNECT, else ``connect_timeout``."""
    import os

    value = os.environ.get("TINYCAFFE_RECONNECT", "")
    try:
        return float(value) if value else connect_timeout
    except ValueError:
        raise WireError(f"TINYCAFFE_RECONNECT must be a number of seconds, got {value!r}") from None


@register("Sink")
class Sink(Layer):
    min_bottoms = 1
    min_tops = 0

    def setup(self, bottoms, tops):
        from ..wire import Hello, specs, wanted
        from ..wire.hosts import resolve_host

        p = self.param.sink_param
        self.returns = list(p.return_top) or list(self.param.top)
        if list(self.param.top) and list(self.param.top) != self.returns:
            self.bad_param(
                f"tops {list(self.param.top)} must be the return_top blobs {self.returns} (or be left out)"
            )
        if not self.param.top and p.return_top:
            self.bad_param("list the return_top blobs as this layer's tops too, so the net can use them")
        if self.returns and not tops:
            self.bad_param("return_top needs tops")
        self.window = int(p.window)
        self.ack_timeout = float(p.ack_timeout)
        self.connect_timeout = float(p.connect_timeout)
        self.rate = p.bandwidth or None
        self.host_name = p.host_name
        self.host = resolve_host(p.host_name)
        self.port = int(p.port)
        self.peer = f"{p.host_name}:{p.port}" + (f" (as {self.host})" if self.host != p.host_name else "")
        self.shapes = {n: tuple(b.shape) for n, b in zip(self.bottom_names, bottoms)}
        self.hello = Hello("sink", self.name, specs([(n, "float32", s) for n, s in self.shapes.items()]),
                           returns=wanted(self.returns), wire=WIRE_NAMES.get(int(p.wire_dtype), "float32"),
                           window=self.window)
        self.session = None
        self.sender = None
        self.return_shapes: dict[str, tuple] = {}

    def open(self) -> None:
        """Connect to the Source and exchange HELLOs (the first forward does it if needed)."""
        if self.session is not None:
            return
        from ..wire.tls import client_settings
        from ..wire import SinkSession
        from ..wire.resilient import ResilientSink

        try:
            tls, token = client_settings(self.host)
            # Over TLS its record MACs guard the bytes: no payload checksum on top (see wire_throughput).
            hello = self.hello.with_(token=token, checksum=tls is None)

            def connect(connect_timeout: float) -> SinkSession:
                return SinkSession.connect(
                    self.host, self.port, hello,
                    timeout=max(self.ack_timeout, 5.0),
                    connect_timeout=connect_timeout,
                    ack_timeout=self.ack_timeout,
                    rate=self.rate,
                    tls=tls,
                    server_hostname=self.host_name if tls is not None else None,
                )

            session = ResilientSink(connect, returns=bool(self.returns), retry_for=reconnect_budget(self.connect_timeout))
            session.open(self.connect_timeout)
            self.session = session
        except WireError as exc:
            raise reword(exc, f"sink layer '{self.name}' -> {self.peer}: ") from None
        self.return_shapes = {b.name: b.shape for b in self.session.peer.returns}
        if self.window > 1 and not self.returns:
            from ..wire.background import BackgroundSender

            # Send while the net computes the next batch (the stop-and-wait
            # study setting, window 1, sends in the caller's thread).
            self.sender = BackgroundSender(self.session, self.shapes, self.window)

    def reshape(self, bottoms, tops):
        for name, top in zip(self.returns, tops):
            if name in self.return_shapes:
                top.reshape(self.return_shapes[name])

    def forward(self, bottoms, tops):
        blobs = {n: asnumpy(b.data) for n, b in zip(self.bottom_names, bottoms)}
        if self.session is None:
            self.open()
            self.reshape(bottoms, tops)  # the returned blobs' shapes came with the Source's HELLO
        try:
            if self.sender is not None:
                self.sender.submit(blobs)
                return
            self.session.send(blobs)
            if self.returns:
                result = self.session.result(self.ack_timeout)
                for name, top in zip(self.returns, tops):
                    top.data[...] = self.xp.asarray(result.blobs[name])
            elif self.window == 1:
                self.session.flush()  # stop-and-wait: the study's Sink waits for the ACK
        except WireError as exc:
            self.session.fail(f"sink layer '{self.name}' failed: {exc}")
            raise reword(exc, f"sink layer '{self.name}' -> {self.peer}: ") from None

    def backward(self, tops, propagate_down, bottoms):
        if any(propagate_down):
            self.fail("gradients do not cross the wire")

    def close(self, abort: bool = False) -> None:
        """End the stream: BYE after the last ACK (or ERROR when aborting)."""
        session = getattr(self, "session", None)
        if session is None:
            return
        self.session = None
        sender, self.sender = self.sender, None
        if abort:
            session.fail(f"client net stopped (sink layer '{self.name}')")
            if sender is not None:
                try:
                    sender.close()  # its pending send fails at once on the closed socket
                except WireError:
                    pass
            return
        try:
            if sender is not None:
                sender.close()  # the last batches go out before BYE
            session.close(self.ack_timeout)
        except WireError as exc:
            session.fail(f"sink layer '{self.name}' failed: {exc}")
            raise reword(exc, f"sink layer '{self.name}' -> {self.peer}: ") from None
