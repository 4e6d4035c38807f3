"""An emulated network link on loopback: a TCP relay that paces both directions and adds a round trip.

The Sink's own pacer (``sink_param.bandwidth``) paces only what the client
sends; a real link also delays what comes back (the ACK, a RESULT with
``prob``) and adds its round trip to both. :class:`LinkEmulator` sits between
a client and a server on 127.0.0.1 and does what a link does, per direction
and independently (full duplex):

* *serialisation*: bytes leave at ``rate`` bytes per second; a chunk read at
  time ``t`` starts crossing at ``max(t, when the previous chunk finished)``
  and finishes ``len / rate`` later (:class:`Direction`);
* *propagation*: it is delivered ``rtt / 2`` after it finished crossing.

So a frame of ``n`` bytes sent on an idle link arrives ``n / rate + rtt / 2``
after it was sent, and a stop-and-wait exchange of ``s`` bytes out and ``r``
back takes ``rtt + (s + r) / rate`` plus both ends' own time: exactly what
the planner's link model charges (``tinycaffe.plan.cost``).

Bounded on purpose: loopback only, at most ``max_connections`` relayed
connections at a time, at most ``queue_chunks`` chunks buffered per direction
(the reader waits when they are full, as a full socket buffer makes a sender
wait), every socket operation limited to ``idle_timeout`` seconds.

    python bench/link_emulator.py --to 3000 --listen 3001 --rate 10Mbps --rtt 5ms   # until Ctrl-C

``bench/plan_check.py`` runs one per link rate in its own process, between
its client and ``tinycaffe serve --any-cut``.
"""
from __future__ import annotations

import argparse
import math
import queue
import socket
import threading
import time

CHUNK = 64 * 1024


class Direction:
    """When each chunk of one direction of a link is delivered: serialisation at ``rate``, then ``rtt / 2``.

    Pure arithmetic on the times it is given (tested without sockets).
    """

    def __init__(self, rate: float, rtt: float) -> None:
        if not (math.isfinite(rate) and rate > 0) or not (math.isfinite(rtt) and rtt >= 0):
            raise ValueError(f"rate must be > 0 and rtt >= 0 (got {rate!r}, {rtt!r})")
        self.rate, self.rtt = rate, rtt
        self._free_at = -math.inf  # when the link finishes the last chunk it took

    def due(self, nbytes: int, now: float) -> float:
        """The delivery time of ``nbytes`` handed to the link at ``now``."""
        start = max(now, self._free_at)
        self._free_at = start + nbytes / self.rate
        return self._free_at + self.rtt / 2


class LinkEmulator:
    """Relay TCP connections from ``127.0.0.1:listen_port`` to ``127.0.0.1:target_port`` over an emulated link."""

    def __init__(self, target_port: int, rate: float, rtt: float, *, listen_port: int = 0,
                 max_connections: int = 8, queue_chunks: int = 256, idle_timeout: float = 600.0) -> None:
        Direction(rate, rtt)  # validate now, not in a thread
        self.target = ("127.0.0.1", target_port)
        self.rate, self.rtt = rate, rtt
        self.queue_chunks, self.idle_timeout = queue_chunks, idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self._listener.settimeout(0.2)  # the accept loop checks for close() this often
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self.errors: list[str] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="link-accept", daemon=True)
        self._acceptor.start()

    # ---- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting and cut every relayed connection."""
        self._stop.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> LinkEmulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return (f"emulated link 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}: "
                f"{self.rate * 8 / 1e6:.4g} Mbit/s each way, rtt {self.rtt * 1e3:.4g} ms")

    # ---- relaying ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                client.close()  # over max_connections: refuse rather than queue without bound
                self.errors.append("refused a connection: max_connections reached")
                continue
            try:
                server = socket.create_connection(self.target, timeout=self.idle_timeout)
            except OSError as exc:
                client.close()
                self._slots.release()
                self.errors.append(f"cannot reach {self.target}: {exc}")
                continue
            self.connections += 1
            threading.Thread(target=self._relay, args=(client, server), name="link-conn", daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        for s in (client, server):
            s.settimeout(self.idle_timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._socks.update((client, server))
        threads = []
        for src, dst, name in ((client, server, "up"), (server, client, "down")):
            q: queue.Queue = queue.Queue(self.queue_chunks)
            threads.append(threading.Thread(target=self._read, args=(src, q), name=f"link-{name}-read", daemon=True))
            threads.append(threading.Thread(target=self._write, args=(dst, q), name=f"link-{name}-write",
                                            daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self._lock:
            self._socks.difference_update((client, server))
        client.close()
        server.close()
        self._slots.release()

    def _read(self, src: socket.socket, q: queue.Queue) -> None:
        link = Direction(self.rate, self.rtt)
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                link.rate = self.rate  # set_rate() applies from the next chunk
                q.put((link.due(len(data), time.perf_counter()), data))
        except OSError:
            pass  # reset, timeout or close(): the other side learns it as an end of stream
        q.put(None)

    def _write(self, dst: socket.socket, q: queue.Queue) -> None:
        broken = False
        while True:
            item = q.get()
            if item is None:
                break
            if broken:
                continue  # keep draining so the reader never waits on a full queue
            due, data = item
            left = due - time.perf_counter()
            if left > 0:
                time.sleep(left)
            try:
                dst.sendall(data)
            except OSError:
                broken = True
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the end of stream on, after every byte
        except OSError:
            pass

    def set_rate(self, rate: float) -> None:
        """Change the rate for the chunks read from now on."""
        Direction(rate, self.rtt)
        self.rate = rate


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tinycaffe.plan.link import parse_bandwidth, parse_duration

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--to", type=int, required=True, help="the server's port on 127.0.0.1")
    p.add_argument("--listen", type=int, default=0, help="port to listen on, 127.0.0.1 (default: any free)")
    p.add_argument("--rate", required=True, help="each direction's rate, e.g. 10Mbps")
    p.add_argument("--rtt", default="0ms", help="round-trip time added, e.g. 5ms")
    a = p.parse_args()
    with LinkEmulator(a.to, parse_bandwidth(a.rate), parse_duration(a.rtt), listen_port=a.listen) as link:
        print(link.describe(), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
