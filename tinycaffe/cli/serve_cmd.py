"""``tinycaffe serve``: run the cloud half of a split net for as long as its client sends."""
from __future__ import annotations

import argparse
import sys

from ..errors import EndOfStream, WireError
from .common import device, model_path, set_threads
from .scores import Scores


def run_serve(args: argparse.Namespace) -> int:
    from ..net import Net

    set_threads(args.threads)
    net = Net(model_path(args), weights=args.weights, phase=args.phase, device=device(args),
              level=args.level, stages=args.stage)
    sources = [l for l in net.layers if l.type == "Source"]
    if not sources:
        from ..errors import NetError

        net.close()
        raise NetError(f"{model_path(args)}: a net to serve needs a Source layer")
    print("serving " + ", ".join(f"source '{s.name}' on {s.where.rsplit(':', 1)[0]}:{s.port}" for s in sources),
          flush=True)
    ok = False
    code = 0
    try:
        while True:
            scores = Scores(args.quiet)
            try:
                while not args.iterations or scores.batches < args.iterations:
                    scores.add(net.forward(), net.loss)
            except EndOfStream:
                pass
            except WireError as exc:
                # A client that failed or vanished ends its own stream, not the server.
                print(f"tinycaffe: error: client failed after {scores.batches} batches: {exc}",
                      file=sys.stderr, flush=True)
                code = 1
                if args.keep_serving:
                    continue
                break
            print(f"client done after {scores.batches} batches", flush=True)
            scores.report(net.output_loss_weights())
            if not args.keep_serving:
                break
        ok = True
    finally:
        net.close(abort=not ok)
    return code
