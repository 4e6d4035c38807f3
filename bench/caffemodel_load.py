"""Benchmark: loading an AlexNet-sized caffemodel.

Compares tinycaffe's ``read_weights`` (own wire walker + np.frombuffer) with
the straightforward way: protobuf ``ParseFromString`` of the whole file, then
``np.asarray(blob.data, dtype=np.float32)`` for every blob.  Both start from
the file on disk (page cache warm after the first read) and end with float32
arrays for every blob.  Run:

    python bench/caffemodel_load.py [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinycaffe.proto import caffe_pb2  # noqa: E402
from tinycaffe.proto.caffemodel import read_weights, write_caffemodel  # noqa: E402

# BVLC AlexNet parameter blobs (grouped conv2/4/5 halve the input channels).
ALEXNET = {
    "conv1": [(96, 3, 11, 11), (96,)],
    "conv2": [(256, 48, 5, 5), (256,)],
    "conv3": [(384, 256, 3, 3), (384,)],
    "conv4": [(384, 192, 3, 3), (384,)],
    "conv5": [(256, 192, 3, 3), (256,)],
    "fc6": [(4096, 9216), (4096,)],
    "fc7": [(4096, 4096), (4096,)],
    "fc8": [(1000, 4096), (1000,)],
}


def make_model(path: Path) -> int:
    """Write a random-weight AlexNet-shaped caffemodel; return its parameter count."""
    rng = np.random.default_rng(0)
    net = caffe_pb2.NetParameter(name="AlexNet-synthetic")
    weights = {}
    for name, shapes in ALEXNET.items():
        net.layer.add(name=name, type="Convolution" if name.startswith("conv") else "InnerProduct")
        weights[name] = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    write_caffemodel(path, net, weights)
    return sum(a.size for blobs in weights.values() for a in blobs)


def protobuf_peer(path: Path) -> dict[str, list[np.ndarray]]:
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {l.name: [np.asarray(b.data, dtype=np.float32) for b in l.blobs] for l in net.layer}


def tinycaffe_reader(path: Path) -> dict[str, list[np.ndarray]]:
    return {name: [b.data for b in blobs] for name, blobs in read_weights(path).items()}


def timed(fn, path: Path, repeats: int) -> tuple[list[float], dict]:
    times, result = [], {}
    for _ in range(repeats):
        result = {}  # free the previous run's arrays before timing the next
        start = time.perf_counter()
        result = fn(path)
        times.append(time.perf_counter() - start)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the model here instead of a temp dir")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "alexnet_synthetic.caffemodel"
        start = time.perf_counter()
        params = make_model(path)
        write_s = time.perf_counter() - start
        size = path.stat().st_size
        mb = size / 1e6
        path.read_bytes()  # warm the page cache for both readers alike

        ours_t, ours = timed(tinycaffe_reader, path, args.repeats)
        peer_t, peer = timed(protobuf_peer, path, args.repeats)
        for name in peer:  # same arrays (up to shape: the peer's are flat)
            assert all(np.array_equal(a.ravel(), b) for a, b in zip(ours[name], peer[name])), name

        from google.protobuf import __version__ as pb_version
        from google.protobuf.internal import api_implementation

        ours_m, peer_m = statistics.median(ours_t), statistics.median(peer_t)
        print("caffemodel load: tinycaffe read_weights vs protobuf ParseFromString + np.asarray(blob.data) per blob")
        print(f"model: synthetic AlexNet, {params:,} float32 params, file {mb:.1f} MB ({size:,} bytes)")
        print(f"protobuf {pb_version} ({api_implementation.Type()} backend), numpy {np.__version__}, repeats {args.repeats}")
        print(f"write_caffemodel (once): {write_s:.3f} s")
        print(f"read_weights : median {ours_m:.3f} s  ({mb / ours_m:8.1f} MB/s)  runs {[round(t, 3) for t in ours_t]}")
        print(f"protobuf peer: median {peer_m:.3f} s  ({mb / peer_m:8.1f} MB/s)  runs {[round(t, 3) for t in peer_t]}")
        print(f"speed-up: {peer_m / ours_m:.1f}x")


if __name__ == "__main__":
    main()
