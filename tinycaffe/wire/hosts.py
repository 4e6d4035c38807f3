"""Host-name overrides for experiments: run a published prototxt unchanged on one machine.

``TINYCAFFE_HOSTS="server.example.com=127.0.0.1,cloud=10.0.0.5"`` makes a Sink
whose prototxt says ``host_name: "server.example.com"`` connect to 127.0.0.1.
"""
from __future__ import annotations

import os

from .errors import LocalProtocolError


def resolve_host(name: str, env: str | None = None) -> str:
    """``name``, or its override from TINYCAFFE_HOSTS."""
    spec = os.environ.get("TINYCAFFE_HOSTS", "") if env is None else env
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise LocalProtocolError(f"TINYCAFFE_HOSTS entry {item!r} is not NAME=ADDRESS")
        if key.strip() == name:
            return value.strip()
    return name
