"""Any cut of one served net: the server runs whatever suffix a client asks for.

With ``serve --any-cut`` the served net is the whole net behind one Source
(the cloud half of an "all in the cloud" split: the Source declares the net's
input, e.g. ``data``). A client whose HELLO names a ``cut`` (the last layer it
runs itself, as ``split --after`` takes it) sends that cut's crossing blobs;
the server builds the cloud half of its own net cut there -- with
:func:`tinycaffe.net.cut.cut_net`, the code ``split`` writes prototxts with, so
the suffix run is exactly the one a split prototxt gives -- shares the served
net's weights with it, keeps it for later clients, and checks the client's
HELLO against that half's Source. A cut that does not exist or cannot work
(no such layer, nothing left for the cloud, a returned blob made on the
client) is refused with an ERROR (code MISMATCH) naming it.

Why a cloud half per cut rather than ``net.forward(start=...)`` on the one
net: Split layers (a blob read by several layers) and in-place layers make
"the blobs entering layer k" differ from the blobs the client holds; the
split code already resolves both, and its halves are what ``split`` tests.
The halves share parameter blobs, so the weights sit in memory once; each
holds its own activations (at most one half per layer of the net).
"""
from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import TinyCaffeError
from ..wire.endpoint import Endpoint
from ..wire.errors import ErrorCode, ProtocolError
from ..wire.hello import Hello
from .inputs import InputPort, declare_inputs


@dataclass
class ServedCut:
    """The cloud half of the served net for one cut, and its input declaration."""

    after: str
    net: object
    port: InputPort


def whole_param(net):
    """The served net's layers as the prototxt gave them (no Split layers, original bottoms)."""
    out = type(net.param)()
    out.CopyFrom(net.param)
    del out.layer[:]
    for lp, layer in zip(net.param.layer, net.layers):
        if lp.type == "Split":
            continue
        new = out.layer.add()
        new.CopyFrom(lp)
        del new.bottom[:]
        new.bottom.extend(layer.bottom_names)
    return out


class CutCache:
    """Cloud halves of one served net, built on first request (thread-safe)."""

    def __init__(self, net, port: InputPort) -> None:
        sources = [layer for layer in net.layers if layer.type == "Source"]
        if len(sources) != 1:
            raise TinyCaffeError(f"--any-cut needs a net with exactly one Source layer, '{net.name}' has "
                                 f"{len(sources)}")
        self.net = net
        self.port = port
        self._param = whole_param(net)
        self._names = [lp.name for lp in self._param.layer]
        self._lock = threading.Lock()
        self._cuts: dict[str, ServedCut] = {}

    def get(self, after: str) -> ServedCut:
        """The cloud half after layer ``after``; a ProtocolError (MISMATCH) naming the cut if it is not one."""
        with self._lock:
            served = self._cuts.get(after)
            if served is None:
                served = self._build(after)
                self._cuts[after] = served
            return served

    def _build(self, after: str) -> ServedCut:
        from ..net.build import PHASES
        from ..net.cut import cut_net
        from ..net.net import Net

        where = f"cut after layer {after!r:.80} of served net '{self.net.name}'"
        if after not in self._names:
            raise ProtocolError(f"{where}: no such layer (layers: {', '.join(self._names)})", ErrorCode.MISMATCH)
        shapes = {n: tuple(b.shape) for n, b in self.net.blobs.items()}
        try:
            _, cloud = cut_net(self._param, after, shapes, phase=PHASES[self.net.phase],
                               return_top=list(self.port.returns))
            half = Net(cloud, phase=self.net.phase, device=self.net.device)
            half.share_weights_with(self.net)
            (port,) = declare_inputs(half)
        except TinyCaffeError as e:
            raise ProtocolError(f"{where} cannot be served: {e}", ErrorCode.MISMATCH) from None
        missing = [n for n in port.returns if n not in half.blobs]
        if missing:
            raise ProtocolError(f"{where}: returned blob(s) {missing} are made on the client side",
                                ErrorCode.MISMATCH)
        return ServedCut(after, half, port)

    @property
    def built(self) -> list[str]:
        """The cuts built so far."""
        with self._lock:
            return list(self._cuts)


class CutEndpoint(Endpoint):
    """A source Endpoint that answers a HELLO naming a ``cut`` with that cut's Source HELLO.

    The cut is only looked at (and its half built) once the token, if any,
    checked out: an unauthenticated peer cannot make the server build nets.
    """

    def __init__(self, hello: Hello, *, token: bytes | None, resolve: Callable[[Hello], Hello]) -> None:
        super().__init__(hello, token=token)
        self._resolve = resolve

    def _on_hello(self, peer: Hello) -> None:
        token_ok = self._token is None or hmac.compare_digest(
            peer.token.encode("utf-8", "surrogatepass"), self._token)
        if self.peer is None and peer.cut and token_ok:
            self.local = self._resolve(peer)
        super()._on_hello(peer)
