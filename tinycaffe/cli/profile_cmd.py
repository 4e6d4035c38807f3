"""``tinycaffe profile``: per-layer forward times and blob sizes of a net on this machine, as JSON."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="net prototxt")
    p.add_argument("--weights", help="caffemodel to load (default: the fillers' random weights)")
    p.add_argument("--batch", type=int, required=True, help="images per forward (sets the input/data layers)")
    p.add_argument("--threads", type=int, help="CPU threads for the kernels (default: all usable cores)")
    p.add_argument("--repeats", type=int, default=10, help="timed forwards; times are their median (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed forwards first (default 2)")
    p.add_argument("--phase", choices=["train", "test"], default="test")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--no-wire-cost", action="store_true",
                   help="skip measuring this machine's CPU cost of sending/receiving frames (then charged 0)")
    p.add_argument("-o", "--output", required=True, metavar="PROFILE.json", help="where to write the profile")


def run_profile(args: argparse.Namespace) -> int:
    from ..plan.profile import measure_profile, write_profile
    from .common import set_threads

    set_threads(args.threads)
    doc = measure_profile(args.model, batch=args.batch, repeats=args.repeats, warmup=args.warmup,
                          weights=args.weights, phase=args.phase, device=args.device,
                          wire_cost=not args.no_wire_cost)
    write_profile(doc, args.output)
    m = doc["machine"]
    print(f"Profile of {doc['net'] or args.model}: batch {doc['batch']}, median of {doc['repeats']} forwards "
          f"after {doc['warmup']} warm-up, {m['threads']} thread(s), kernels {m['kernels']}, cpu {m['cpu']}")
    width = max(len(layer["name"]) for layer in doc["layers"])
    for layer in doc["layers"]:
        tops = ", ".join(f"{t} {tuple(doc['blobs'][t]['shape'])}" for t in layer["tops"])
        print(f"{layer['name']:>{width}}  {1000 * layer['forward_s']:9.3f} ms  {tops}")
    print(f"{'forward':>{width}}  {1000 * doc['forward_s']:9.3f} ms  (median whole forward)")
    w = doc["wire"]
    if w is None:
        print("wire cost: not measured (--no-wire-cost): the planner charges 0")
    else:
        print(f"wire cost: sending {1e3 * w['send_fixed_s']:.3f} ms + {1e9 * w['send_per_byte_s']:.3f} ns/byte, "
              f"receiving {1e3 * w['recv_fixed_s']:.3f} ms + {1e9 * w['recv_per_byte_s']:.3f} ns/byte "
              f"(wall; CPU x {w['cpu_to_wall']:.3g}, {w['method']})")
    print(f"wrote {args.output}")
    return 0
