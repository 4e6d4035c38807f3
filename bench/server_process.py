"""What a benchmark needs to run a server as a subprocess on loopback."""
from __future__ import annotations

import socket
import threading


def drain(proc) -> None:
    """Read the server's output in a thread: a full pipe would block its prints, and then the server."""
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
