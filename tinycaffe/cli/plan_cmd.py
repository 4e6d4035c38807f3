"""``tinycaffe plan``: rank every cut of a net for a client, a cloud and a link, and write the chosen one."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="net prototxt to cut")
    p.add_argument("--client", required=True, metavar="CLIENT.json", help="profile taken on the client device")
    p.add_argument("--cloud", required=True, metavar="CLOUD.json", help="profile taken on the cloud machine")
    p.add_argument("--link", required=True, metavar="LINK.json", help="link from `tinycaffe probe`")
    p.add_argument("--objective", choices=["latency", "throughput"], default="latency",
                   help="rank by stop-and-wait time per batch (latency) or by the slowest pipeline stage")
    p.add_argument("--wire", default="float32", help="wire dtypes to weigh, comma-separated "
                   "(float32,float16,uint8; default float32)")
    p.add_argument("--top", type=int, default=10, help="rows of the ranked table (default 10)")
    p.add_argument("--phase", choices=["train", "test"], default="test")
    p.add_argument("--return-top", action="append", default=[], metavar="BLOB",
                   help="blob the cloud sends back to the client (repeatable), as in `split`")
    p.add_argument("--max-enumerate", type=int, default=10_000,
                   help="list every cut up to this many (beyond: exact best + net-order prefixes)")
    p.add_argument("--val", metavar="VAL.prototxt",
                   help="validation net with a data layer and an Accuracy layer: measure each lossy "
                        "wire option's accuracy")
    p.add_argument("--weights", help="caffemodel for --val")
    p.add_argument("--val-iterations", type=int, default=10, help="batches of --val to run (default 10)")
    p.add_argument("--write", nargs=2, metavar=("CLIENT.prototxt", "CLOUD.prototxt"),
                   help="write the chosen option's two halves, as `split` does")
    p.add_argument("--write-rank", type=int, default=1, help="which ranked option --write writes (default 1)")
    p.add_argument("--host", default="127.0.0.1", help="for --write: where the client's Sink connects")
    p.add_argument("--port", type=int, default=3000, help="for --write")
    p.add_argument("--bind", default="127.0.0.1", help="for --write: address the cloud's Source listens on")


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}"


def _accuracy(option) -> str:
    if option.kind == "client" or option.wire == "float32":
        return "exact"
    if option.accuracy is None:
        return "not measured"
    a = option.accuracy
    change = round(a.value - a.baseline, 4) + 0.0  # + 0.0: no "-0.0000"
    return f"{a.value:.4f} ({change:+.4f})"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(options, first_rank: int | None) -> list[str]:
    header = (f"{'rank':>4}  {'cut':<22} {'crossing':<18} {'wire':<7} {'sent KB':>9} {'client ms':>9} "
              f"{'link ms':>8} {'cloud ms':>8} {'stop-wait ms':>12} {'pipelined ms':>12}  accuracy (change)")
    lines = [header]
    for k, o in enumerate(options):
        t = o.timing
        rank = str(first_rank + k) if first_rank is not None else "-"
        lines.append(
            f"{rank:>4}  {_clip(o.label, 22):<22} {_clip(', '.join(o.crossing) or '-', 18):<18} {o.wire:<7} "
            f"{t.sent_bytes / 1000:>9.1f} {_ms(t.client_s):>9} {_ms(t.link_s):>8} {_ms(t.cloud_s):>8} "
            f"{_ms(t.stop_and_wait_s):>12} {_ms(t.pipelined_s):>12}  {_accuracy(o)}"
        )
    return lines


def run_plan(args: argparse.Namespace) -> int:
    from ..plan.cost import CostModel
    from ..plan.cuts import CutGraph
    from ..plan.errors import PlanError
    from ..plan.link import read_link
    from ..plan.planner import make_plan, with_accuracy
    from ..plan.profile import read_profile

    if args.top <= 0:
        raise PlanError(f"--top must be positive, got {args.top}")
    wires = [w.strip() for w in args.wire.split(",") if w.strip()]
    graph = CutGraph.from_model(args.model, args.phase)
    client, cloud, link = read_profile(args.client), read_profile(args.cloud), read_link(args.link)
    model = CostModel(graph, client, cloud, link, return_top=args.return_top)
    plan = make_plan(graph, model, args.objective, wires, args.max_enumerate)
    shown = plan.options[: args.top]

    if args.val:
        from ..plan.wire_accuracy import measure_wire_accuracy

        def names(o):
            return frozenset(n for g in o.client for n in graph.groups[g].layers)

        lossy = [o for o in dict.fromkeys(shown + plan.pareto) if o.kind != "client" and o.wire != "float32"]
        measured = measure_wire_accuracy(args.val, args.weights, [(names(o), o.wire) for o in lossy],
                                         args.val_iterations, args.phase)
        plan = with_accuracy(plan, {(o.client, o.wire): measured[(names(o), o.wire)] for o in lossy})
        shown = plan.options[: args.top]

    goal = ("latency: stop-and-wait time per batch (client + link + cloud)" if args.objective == "latency"
            else "throughput: time per batch of a pipeline (its slowest stage)")
    print(f"Plan for {graph.name or args.model} ({args.model}), batch {model.batch}, objective {goal}")
    print(f"client: {client.summary()}")
    print(f"cloud:  {cloud.summary()}")
    print(f"link:   {link.summary()}")
    print("(client ms and cloud ms include each side's CPU cost of the frames, from its profile's wire costs)")
    if plan.enumerated:
        print(f"{plan.n_cuts} valid cuts x {len(plan.wires)} wire dtype(s): every option priced")
    else:
        print(f"more than {args.max_enumerate} valid cuts: listing the net-order prefixes, all-on-client, "
              "all-in-cloud and the exact best")
    for e in plan.exact:
        proof = "" if e.proven else f" (NOT proven optimal: search stopped after {e.nodes} branches)"
        check = " agrees with the listing" if plan.enumerated else ""
        print(f"exact best for {e.wire} ({e.method}{check}): {e.option.label}, "
              f"{_ms(e.option.objective(args.objective))} ms{proof}")
    print()
    print("\n".join(_table(shown, 1)))
    print()
    print(f"Pareto front ({'stop-and-wait' if args.objective == 'latency' else 'pipelined'} time vs bytes sent):")
    print("\n".join(_table(plan.pareto, None)))
    if args.val:
        acc = next((o.accuracy for o in plan.options if o.accuracy is not None), None)
        if acc is not None:
            print(f"\naccuracy: '{acc.metric}' of {args.val} over {acc.batches} batches; float32 baseline "
                  f"{acc.baseline:.4f}")

    if args.write:
        from ..plan.write import write_cut

        if not 1 <= args.write_rank <= len(plan.options):
            raise PlanError(f"--write-rank {args.write_rank}: there are {len(plan.options)} options")
        chosen = plan.options[args.write_rank - 1]
        wire = chosen.wire if chosen.wire != "-" else "float32"
        client_net, cloud_net = write_cut(args.model, graph, chosen.client, args.write, wire=wire, host=args.host,
                                          port=args.port, bind=args.bind, return_top=args.return_top)
        print(f"\nwrote rank {args.write_rank} ({chosen.label}, wire {wire}):")
        print(f"client: {args.write[0]} ({len(client_net.layer)} layers, ends in Sink -> {args.host}:{args.port})")
        print(f"cloud:  {args.write[1]} ({len(cloud_net.layer)} layers, starts at Source on {args.bind}:{args.port})")
        print("crossing blobs: " + ", ".join(client_net.layer[-1].bottom))
    return 0
