"""A net's Source layers seen as input declarations (what the server listens for).

:func:`declare_inputs` turns each Source of a built net into an
:class:`InputPort`: the blobs a client sends there (names, shapes), the blobs
sent back (``return_top``, with their shapes from the net) and the address to
listen on. The Source layers become plain declarations: from then on whoever
calls ``net.forward(**blobs)`` fills their tops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetError
from ..wire.hello import Hello, specs


@dataclass
class InputPort:
    """One Source layer of the served net."""

    layer: str
    names: list[str]
    shapes: dict[str, tuple[int, ...]]
    returns: dict[str, tuple[int, ...]]
    bind: str
    port: int

    def hello(self, checksum: bool = True) -> Hello:
        """The server's HELLO for this port; ``checksum=False`` leaves integrity to TLS (if the client agrees)."""
        blobs = specs([(n, "float32", s) for n, s in self.shapes.items()])
        back = specs([(n, "float32", s) for n, s in self.returns.items()])
        return Hello("source", self.layer, blobs, returns=back, wire="any", checksum=checksum)

    def result_blobs(self, net) -> dict[str, np.ndarray]:
        """Copies of the returned blobs after a forward (the next forward overwrites the net's own)."""
        from ..backend import asnumpy

        return {n: np.array(asnumpy(net.blobs[n].data), dtype=np.float32, order="C") for n in self.returns}


def declare_inputs(net) -> list[InputPort]:
    """The net's Source layers as InputPorts; each Source becomes an input declaration."""
    ports = []
    for layer in net.layers:
        if layer.type != "Source":
            continue
        missing = [n for n in layer.returns if n not in net.blobs]
        if missing:
            raise NetError(f"source layer '{layer.name}': return_top names blob(s) {missing} that the net lacks")
        layer.as_input()
        ports.append(InputPort(
            layer=layer.name,
            names=list(layer.names),
            shapes=dict(layer.shapes),
            returns={n: tuple(net.blobs[n].shape) for n in layer.returns},
            bind=layer.bind,
            port=layer.listen_port,
        ))
    if not ports:
        raise NetError(f"net '{net.name}' has no Source layer: nothing to serve")
    seen: dict[tuple[str, int], str] = {}
    for p in ports:
        key = (p.bind, p.port)
        if p.port and key in seen:
            raise NetError(f"source layers '{seen[key]}' and '{p.layer}' both listen on {p.bind}:{p.port}")
        seen[key] = p.layer
    return ports
