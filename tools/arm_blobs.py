"""Dump or compare one batch's blobs of the bundled main job (used by tools/arm_check.sh).

    python tools/arm_blobs.py dump  REF.npz     # on the x86 host
    python tools/arm_blobs.py check REF.npz     # inside the emulated ARM root

``check`` runs the same first batch of the bundled CIFAR-10 sample through the
study's trained net and compares every blob with the stored run, relative to the
blob's largest magnitude (so near-zero elements do not blow up the ratio). It
prints one line per blob and exits 1 when any blob is off by more than 1e-5.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "prototxt" / "cifar10_full_sample.prototxt"
WEIGHTS = REPO / "weights" / "study" / "full_iter_5000.caffemodel"
TOLERANCE = 1e-5


def first_batch_blobs() -> dict[str, np.ndarray]:
    import tinycaffe

    net = tinycaffe.Net(str(MODEL), weights=str(WEIGHTS), phase="test")
    try:
        net.forward()
        return {name: np.array(blob.data, dtype=np.float32, copy=True) for name, blob in net.blobs.items()}
    finally:
        net.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("dump", "check"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    verb, path = argv
    blobs = first_batch_blobs()
    if verb == "dump":
        np.savez(path, **blobs)
        print(f"wrote {len(blobs)} blobs to {path}")
        return 0
    ref = np.load(path)
    worst = 0.0
    for name in ref.files:
        if name not in blobs:
            print(f"{name}: missing on this machine")
            return 1
        a, b = blobs[name], ref[name]
        if a.shape != b.shape:
            print(f"{name}: shape {a.shape} here, {b.shape} in {path}")
            return 1
        scale = max(float(np.abs(b).max()), 1e-30)
        rel = float(np.abs(a - b).max()) / scale
        worst = max(worst, rel)
        print(f"{name:12s} max |diff| / max |ref| = {rel:.2e}")
    ok = worst <= TOLERANCE
    print(f"blobs {'match' if ok else 'DIFFER'}: worst relative difference {worst:.2e} (limit {TOLERANCE:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
