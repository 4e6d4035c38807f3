"""The cloud side of a split net: a server that owns the connections.

* :class:`Server` -- many clients at once, one session each, the net run by
  one compute thread (:mod:`.server`, :mod:`.session`, :mod:`.peer`);
* :class:`ServeOptions` -- limits, deadlines, TLS, token, batching;
* :mod:`.tls` -- TLS contexts and the shared token;
* :mod:`.inputs` -- a net's Source layers as input declarations;
* :mod:`.batcher` -- dynamic batching across clients;
* :mod:`.metrics` -- Prometheus metrics and /healthz; :mod:`.log` -- rate-limited refusals.

The client side is the Sink layer, or :class:`tinycaffe.serve.client.Client`
for a program that sends blobs itself.
"""
from .inputs import InputPort, declare_inputs
from .options import ServeOptions
from .server import Server

__all__ = ["InputPort", "ServeOptions", "Server", "declare_inputs"]
