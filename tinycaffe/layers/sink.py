"""Sink: the last layer of a client net; sends its bottoms to a cloud Source over TCP.

As in the study, the Sink sends a batch and waits for the Source's ACK, which
the Source gives as soon as it takes the batch in, so the client computes the
next batch while the cloud computes this one. With ``window > 1`` it does not
wait: up to ``window`` batches may be un-ACKed. Blobs named in ``return_top``
(e.g. ``prob``) come back from the cloud and become this layer's tops.
"""
from __future__ import annotations

import numpy as np

from ..backend import asnumpy
from ..errors import WireError
from ..wire.errors import reword
from .base import Layer
from .registry import register

WIRE_NAMES = {0: "float32", 1: "float16", 2: "uint8"}  # SinkParameter.WireDType


@register("Sink")
class Sink(Layer):
    min_bottoms = 1
    min_tops = 0

    def setup(self, bottoms, tops):
        from ..wire import Hello, SinkSession, specs, wanted
        from ..wire.hosts import resolve_host

        p = self.param.sink_param
        self.returns = list(p.return_top) or list(self.param.top)
        if list(self.param.top) and list(self.param.top) != self.returns:
            self.bad_param(
                f"tops {list(self.param.top)} must be the return_top blobs {self.returns} (or be left out)"
            )
        if not self.param.top and p.return_top:
            self.bad_param("list the return_top blobs as this layer's tops too, so the net can use them")
        self.window = int(p.window)
        self.ack_timeout = float(p.ack_timeout)
        host = resolve_host(p.host_name)
        self.peer = f"{p.host_name}:{p.port}" + (f" (as {host})" if host != p.host_name else "")
        arrays = {n: np.empty(b.shape, np.float32) for n, b in zip(self.bottom_names, bottoms)}
        hello = Hello("sink", self.name, specs(arrays), returns=wanted(self.returns),
                      wire=WIRE_NAMES.get(int(p.wire_dtype), "float32"), window=self.window)
        try:
            self.session = SinkSession.connect(
                host, int(p.port), hello,
                timeout=max(self.ack_timeout, 5.0),
                connect_timeout=float(p.connect_timeout),
                ack_timeout=self.ack_timeout,
                rate=p.bandwidth or None,
            )
        except WireError as exc:
            raise reword(exc, f"sink layer '{self.name}' -> {self.peer}: ") from None
        self.return_shapes = {b.name: b.shape for b in self.session.peer.returns}
        self.sender = None
        if self.window > 1 and not self.returns:
            from ..wire.background import BackgroundSender

            # Send while the net computes the next batch (the stop-and-wait
            # study setting, window 1, sends in the caller's thread).
            self.sender = BackgroundSender(self.session, {n: a.shape for n, a in arrays.items()}, self.window)

    def reshape(self, bottoms, tops):
        for name, top in zip(self.returns, tops):
            top.reshape(self.return_shapes[name])

    def forward(self, bottoms, tops):
        blobs = {n: asnumpy(b.data) for n, b in zip(self.bottom_names, bottoms)}
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
