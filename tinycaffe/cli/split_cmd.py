"""``tinycaffe split``: write the client (Sink) and cloud (Source) halves of a net."""
from __future__ import annotations

import argparse
import sys


def run_split(args: argparse.Namespace) -> int:
    from ..net import Net
    from ..net.build import PHASES, load_net_param
    from ..net.cut import cut_net
    from ..proto.prototxt import write_prototxt

    model = args.model
    # Build the whole net once to learn the shape of every blob that crosses the cut.
    net = Net(model, phase=args.phase)
    shapes = {name: blob.shape for name, blob in net.blobs.items()}
    net.close()
    client, cloud = cut_net(
        load_net_param(model), args.after, shapes, phase=PHASES[args.phase],
        host=args.host, port=args.port, bind=args.bind, return_top=args.return_top,
    )
    from ..serve.tls import is_loopback

    if not is_loopback(args.bind):
        print(f"warning: the cloud half will listen on {args.bind or 'every interface'}: `tinycaffe serve` "
              "refuses that without TLS (--tls-cert, and a token) unless given --insecure", file=sys.stderr)
    client_path, cloud_path = args.output
    write_prototxt(client, client_path)
    write_prototxt(cloud, cloud_path)
    crossing = list(client.layer[-1].bottom)
    print(f"client: {client_path} ({len(client.layer)} layers, ends in Sink -> {args.host}:{args.port})")
    print(f"cloud:  {cloud_path} ({len(cloud.layer)} layers, starts at Source on {args.bind}:{args.port})")
    print("crossing blobs: " + ", ".join(f"{b} {tuple(shapes[b])}" for b in crossing))
    return 0
