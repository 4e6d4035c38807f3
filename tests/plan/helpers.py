"""Hand-made profiles and links for planner tests: times in ms, shapes by blob."""
from __future__ import annotations

from tinycaffe.plan.cost import CostModel
from tinycaffe.plan.cuts import CutGraph
from tinycaffe.plan.link import link_from_dict
from tinycaffe.plan.profile import FORMAT, profile_from_dict


def wire_doc(send_fixed_ms=0.0, send_per_byte_us=0.0, recv_fixed_ms=0.0, recv_per_byte_us=0.0) -> dict:
    """A profile's "wire" object: per-frame costs in ms, per-byte costs in microseconds."""
    return {"method": "hand-made", "cpu_to_wall": 1.0, "send_fixed_s": send_fixed_ms / 1e3,
            "send_per_byte_s": send_per_byte_us / 1e6, "recv_fixed_s": recv_fixed_ms / 1e3,
            "recv_per_byte_s": recv_per_byte_us / 1e6}


def profile_doc(times_ms: dict[str, float], shapes: dict[str, tuple[int, ...]], batch: int = 1,
                wire: dict | None = None) -> dict:
    """A profile document with these per-layer times (ms) and blob shapes (``wire``: see :func:`wire_doc`)."""
    return {"wire": wire,
        "format": FORMAT, "net": "hand", "phase": "test", "batch": batch, "repeats": 1, "warmup": 0,
        "machine": {"cpu": "hand-made", "cores": 1, "threads": 1, "kernels": "none"},
        "forward_s": sum(times_ms.values()) / 1000,
        "layers": [{"name": n, "type": "?", "bottoms": [], "tops": [], "forward_s": t / 1000}
                   for n, t in times_ms.items()],
        "blobs": {b: {"shape": list(s), "bytes": 4 * _count(s)} for b, s in shapes.items()},
    }


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def link(bandwidth: float, rtt_ms: float):
    return link_from_dict({"format": "tinycaffe-link/1", "bandwidth_bytes_per_s": bandwidth,
                           "rtt_s": rtt_ms / 1000})


def cost_model(net_text: str, client_ms, cloud_ms, shapes, bandwidth, rtt_ms, return_top=(),
               client_wire=None, cloud_wire=None):
    graph = CutGraph.from_model(net_text)
    model = CostModel(graph, profile_from_dict(profile_doc(client_ms, shapes, wire=client_wire), "client.json"),
                      profile_from_dict(profile_doc(cloud_ms, shapes, wire=cloud_wire), "cloud.json"),
                      link(bandwidth, rtt_ms), return_top)
    return graph, model


def cut_of(graph: CutGraph, *layers: str) -> frozenset[int]:
    """The exact set of groups headed by ``layers`` (not closed: tests check closure themselves)."""
    return frozenset(graph.group_of_layer[n] for n in layers)
