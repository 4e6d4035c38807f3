"""What an operator sets on a server: limits, deadlines, security, batching."""
from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass
class ServeOptions:
    """Settings of a :class:`~tinycaffe.serve.server.Server` (the CLI flags of ``tinycaffe serve``).

    ``keep_serving``: False serves one run: the server ends once the first
    client whose HELLO was accepted has ended (after the other clients then
    connected have finished); peers that never complete a HELLO never end it.
    ``max_batches``: stop after this many batches in all (0: no limit).
    ``any_cut``: the net is the whole net behind one Source; a client's HELLO
    may name any cut and gets that suffix (:mod:`tinycaffe.serve.cuts`).
    """

    max_clients: int = 16
    handshake_timeout: float = 10.0  # TLS + HELLO, in all
    frame_timeout: float = 60.0  # one frame, once begun (and one write)
    idle_timeout: float = 24 * 3600.0  # a connected client sending nothing
    keep_serving: bool = False
    max_batches: int = 0
    token: bytes | None = None
    tls: ssl.SSLContext | None = None
    insecure: bool = False  # allow plain TCP on a non-loopback address
    backlog: int = 128
    max_batch: int = 1  # batches of different clients gathered into one forward
    max_delay: float = 0.0  # seconds to wait for more clients' batches to gather
    any_cut: bool = False  # a client's HELLO may name the cut: the server runs that suffix (serve/cuts.py)

    def check(self) -> None:
        from ..errors import WireError

        if self.max_clients < 1:
            raise WireError(f"--max-clients must be at least 1, got {self.max_clients}")
        if self.max_batch < 1:
            raise WireError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.any_cut and self.max_batch > 1:
            raise WireError("--any-cut runs each client's own suffix of the net: it cannot gather batches "
                            "(--max-batch must be 1)")
        if self.max_delay < 0:
            raise WireError(f"--max-delay-ms must not be negative, got {self.max_delay * 1000:g}")
