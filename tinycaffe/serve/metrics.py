"""Prometheus metrics and a health check for ``tinycaffe serve --metrics-port``.

``GET /metrics`` gives the Prometheus text format (through ``prometheus_client``,
one registry per server); ``GET /healthz`` answers 200 once the net is loaded
and the server listens, 503 before. The HTTP server binds to loopback unless
told otherwise: metrics say who connects and how often.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import WireError


class Metrics:
    """The server's counters, gauges and forward-time histogram, served over HTTP."""

    def __init__(self, port: int = 0, bind: str = "127.0.0.1") -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            raise WireError("--metrics-port needs prometheus_client: pip install prometheus_client") from None
        r = self.registry = CollectorRegistry()
        self.clients_total = Counter("tinycaffe_clients", "Clients whose HELLO was accepted", registry=r)
        self.clients_ended = Counter("tinycaffe_clients_ended", "Clients that ended", ["result"], registry=r)
        self.clients = Gauge("tinycaffe_clients_connected", "Clients connected now", registry=r)
        self.batches = Counter("tinycaffe_batches", "Batches answered", registry=r)
        self.refused = Counter("tinycaffe_refused", "Connections refused", ["reason"], registry=r)
        self.bytes = Counter("tinycaffe_wire_bytes", "Bytes on the wire", ["direction"], registry=r)
        # Counted several times per batch: the labelled children are looked up once (labels() costs ~0.7 us).
        self._received, self._sent = self.bytes.labels("received"), self.bytes.labels("sent")
        self.queue = Gauge("tinycaffe_queue_depth", "Client batches waiting for the net", registry=r)
        self.forward = Histogram("tinycaffe_forward_seconds", "Time of one forward of the net", registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self._ready = False
        self._http = _serve_http(self, bind, port)  # bound now (the port is known), served from start()
        self.port = self._http.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Answer HTTP requests (in a thread of its own)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="serve-metrics", daemon=True)
            self._thread.start()

    def ready(self) -> None:
        """The net is loaded and the server listens: /healthz turns 200."""
        self._ready = True

    def count(self, what: str, kind: str = "") -> None:
        """One event: "batches", "clients_total", "clients_ok", "clients_failed", "refused" (kind = reason)."""
        if what == "batches":
            self.batches.inc()
        elif what == "clients_total":
            self.clients_total.inc()
            self.clients.inc()
        elif what in ("clients_ok", "clients_failed"):
            self.clients_ended.labels("ok" if what == "clients_ok" else "failed").inc()
            self.clients.dec()
        elif what == "refused":
            self.refused.labels(kind or "other").inc()

    def add_bytes(self, received: int, sent: int) -> None:
        if received:
            self._received.inc(received)
        if sent:
            self._sent.inc(sent)

    def forward_time(self, seconds: float, queue_depth: int, clients: int) -> None:
        self.forward.observe(seconds)
        self.queue.set(queue_depth)

    def close(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(2.0)
        self._http.server_close()


def _serve_http(metrics: Metrics, bind: str, port: int) -> ThreadingHTTPServer:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/metrics":
                body, ctype, status = generate_latest(metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                ok = metrics._ready
                body, ctype, status = (b"ok\n" if ok else b"starting\n"), "text/plain", 200 if ok else 503
            else:
                body, ctype, status = b"not found\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass  # scrapes every few seconds must not fill the log

    try:
        return ThreadingHTTPServer((bind, port), Handler)
    except OSError as e:
        raise WireError(f"cannot serve metrics on {bind}:{port}: {e}") from None
