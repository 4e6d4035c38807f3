"""``tinycaffe serve``: run the cloud half of a split net for its clients (many at once)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..errors import NetError
from .common import device, model_path, set_threads
from .scores import Scores


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """The flags of ``tinycaffe serve`` beyond the run options."""
    p.add_argument("--keep-serving", action="store_true",
                   help="serve clients until stopped (default: end once the first accepted client has ended)")
    p.add_argument("--quiet", action="store_true", help="print only the final means")
    p.add_argument("--max-clients", type=int, default=16,
                   help="clients served at once; more are refused with an ERROR frame (default 16)")
    p.add_argument("--handshake-timeout", type=float, default=10.0,
                   help="seconds a connection has, in all, for TLS and its HELLO (default 10)")
    p.add_argument("--idle-timeout", type=float, default=24 * 3600.0,
                   help="seconds a connected client may send nothing (default a day)")
    p.add_argument("--tls-cert", help="PEM certificate chain (with its key, or give --tls-key): serve over TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    p.add_argument("--token-file",
                   help="file holding the shared token clients must send (else $TINYCAFFE_TOKEN, if set)")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain TCP on an address other than loopback")
    p.add_argument("--max-batch", type=int, default=1,
                   help="gather up to this many client batches into one forward (default 1: no batching)")
    p.add_argument("--max-delay-ms", type=float, default=0.0,
                   help="wait up to this long for more client batches to gather (default 0)")
    p.add_argument("--any-cut", action="store_true",
                   help="serve the whole net (one Source taking its input): a client's HELLO may name any cut "
                        "and the server runs that suffix (tinycaffe.plan.recut)")
    p.add_argument("--port", type=int, help="listen on this port instead of the Source's (a net with one Source)")
    p.add_argument("--bind", help="listen on this address instead of the Source's bind")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics and /healthz on this port")
    p.add_argument("--metrics-bind", default="127.0.0.1", help="address of the metrics port (default 127.0.0.1)")


def serve_options(args: argparse.Namespace):
    """ServeOptions from the command line; the token comes from a file or $TINYCAFFE_TOKEN, never argv."""
    from ..serve import ServeOptions
    from ..serve.tls import read_token, server_context

    tls = None
    if args.tls_cert:
        tls = server_context(args.tls_cert, args.tls_key, args.tls_client_ca)
    elif args.tls_key or args.tls_client_ca:
        raise NetError("--tls-key and --tls-client-ca need --tls-cert")
    return ServeOptions(
        max_clients=args.max_clients,
        handshake_timeout=args.handshake_timeout,
        idle_timeout=args.idle_timeout,
        keep_serving=args.keep_serving,
        max_batches=args.iterations,
        token=read_token(args.token_file),
        tls=tls,
        insecure=args.insecure,
        max_batch=args.max_batch,
        max_delay=args.max_delay_ms / 1000.0,
        any_cut=args.any_cut,
    )


def run_serve(args: argparse.Namespace) -> int:
    from ..net import Net
    from ..serve import Server

    set_threads(args.threads)
    options = serve_options(args)
    net = Net(model_path(args), weights=args.weights, phase=args.phase, device=device(args),
              level=args.level, stages=args.stage)
    sources = [layer for layer in net.layers if layer.type == "Source"]
    if not sources:
        net.close()
        raise NetError(f"{model_path(args)}: a net to serve needs a Source layer")
    if args.port is not None or args.bind is not None:
        if len(sources) > 1 and args.port is not None:
            net.close()
            raise NetError(f"--port: {model_path(args)} has {len(sources)} Source layers, each with its own port")
        for layer in sources:  # one prototxt, many workers (behind a balancer, in containers)
            layer.listen_port = layer.listen_port if args.port is None else args.port
            layer.bind = layer.bind if args.bind is None else args.bind

    def on_start(peer) -> None:
        peer.scores = Scores(args.quiet)
        print(f"client {peer.number} connected ({peer.name})", flush=True)

    def on_batch(peer, outputs, loss) -> None:
        peer.scores.add(outputs, loss)

    def on_end(peer, error) -> None:
        n = peer.scores.batches if peer.scores else 0
        if error is not None:
            # A client that failed or vanished ends its own run, not the server.
            print(f"tinycaffe: error: client failed after {n} batches ({peer.name}): {error}",
                  file=sys.stderr, flush=True)
            return
        print(f"client done after {n} batches ({peer.name})", flush=True)
        if peer.scores is not None:
            peer.scores.report(net.output_loss_weights())

    metrics = None
    ok = False
    server = None
    try:
        if args.metrics_port is not None:
            from ..serve.metrics import Metrics

            metrics = Metrics(args.metrics_port, args.metrics_bind)
            metrics.start()  # /healthz answers 503 until the net is served
        server = Server(net, options, on_start=on_start, on_batch=on_batch, on_end=on_end, metrics=metrics)
        where = ", ".join(f"source '{p.layer}' on {host}:{port}" for p, (host, port) in zip(server.ports, server.addresses))
        security = "TLS" if options.tls is not None else "plain TCP"
        security += ", token required" if options.token else ""
        print(f"serving {where} ({security}, up to {options.max_clients} clients)", flush=True)
        if metrics is not None:
            metrics.ready()
            print(f"metrics on http://{args.metrics_bind}:{metrics.port}/metrics, health on /healthz", flush=True)
        # SIGTERM (an orchestrator stopping us): finish the batches taken in, then stop.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: server.drain()) if main else None
        try:
            server.run()
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
        ok = True
    finally:
        if server is not None:
            server.close(abort=not ok, reason="the server stopped" + ("" if ok else " (interrupted or failed)"))
            print(f"served {server.clients_ok + server.clients_failed} client(s): {server.clients_ok} done, "
                  f"{server.clients_failed} failed, {server.batches} batches; refused: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(server.log.counts.items())) or "none"),
                  flush=True)
        if metrics is not None:
            metrics.close()
        net.close(abort=not ok)
    # After SIGTERM the clients cut off were told to go elsewhere: a clean stop, not a failure.
    return 1 if server.clients_failed and not server.drained else 0
