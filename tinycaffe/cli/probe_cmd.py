"""``tinycaffe probe``: a link JSON for the planner, from given numbers or measured against ``serve``."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", nargs="?", metavar="HOST:PORT", help="a running `tinycaffe serve` to measure")
    p.add_argument("--bandwidth", help="given bandwidth instead of measuring, e.g. 10Mbps")
    p.add_argument("--rtt", help="given round-trip time instead of measuring, e.g. 20ms")
    p.add_argument("--net", metavar="CLOUD.prototxt",
                   help="when measuring: the prototxt the server runs (its Source says what to send)")
    p.add_argument("--pace", metavar="RATE", help="when measuring: pace the sends like the Sink's bandwidth "
                   "setting (e.g. 10Mbps), to measure an emulated link")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds any one wait may take (default 10)")
    p.add_argument("--repeats", type=int, default=5, help="exchanges per size when measuring; medians are used")
    p.add_argument("-o", "--output", required=True, metavar="LINK.json", help="where to write the link")


def run_probe(args: argparse.Namespace) -> int:
    from ..plan.errors import PlanError
    from ..plan.link import given_link, link_from_dict, write_link

    given = args.bandwidth is not None or args.rtt is not None
    if given and args.address:
        raise PlanError("give either HOST:PORT to measure, or --bandwidth and --rtt, not both")
    if given:
        if args.bandwidth is None or args.rtt is None:
            raise PlanError("give both --bandwidth and --rtt (e.g. --bandwidth 10Mbps --rtt 20ms)")
        doc = given_link(args.bandwidth, args.rtt)
    elif args.address:
        from ..plan.probe import measure_link, parse_address, source_shapes

        host, port = parse_address(args.address)
        if not args.net:
            raise PlanError("measuring HOST:PORT needs --net CLOUD.prototxt, the net the server runs")
        doc = measure_link(host, port, source_shapes(args.net), repeats=args.repeats, timeout=args.timeout,
                           pace=args.pace)
    else:
        raise PlanError("give HOST:PORT of a running `tinycaffe serve`, or --bandwidth and --rtt")
    write_link(doc, args.output)
    link = link_from_dict(doc, args.output)
    print(f"link: {link.bandwidth * 8 / 1e6:.4g} Mbit/s ({link.bandwidth:.6g} bytes/s), "
          f"rtt {link.rtt * 1e3:.4g} ms ({link.source})")
    for s in doc.get("samples", []):
        print(f"  {s['wire']:<8} {s['bytes']:>10} bytes: median {1e3 * s['median_s']:.3f} ms "
              f"over {len(s['times_s'])} exchanges")
    if "method" in doc:
        print(f"  ({doc['method']})")
    print(f"wrote {args.output}")
    return 0
