"""Per-batch output lines and final means, printed the way `caffe test` prints them."""
from __future__ import annotations

import numpy as np

from ..backend import asnumpy


class Scores:
    """Accumulates a net's outputs batch by batch."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.sums: dict[str, np.ndarray] = {}
        self.loss = 0.0
        self.batches = 0

    def add(self, outputs: dict, loss: float) -> None:
        """Record (and unless quiet, print) one batch's outputs."""
        for name, value in outputs.items():
            flat = asnumpy(value).astype(np.float64).reshape(-1)
            self.sums[name] = self.sums[name] + flat if name in self.sums else flat.copy()
            if not self.quiet:
                for v in flat:
                    print(f"Batch {self.batches}, {name} = {v:g}")
        self.loss += loss
        self.batches += 1

    def report(self, loss_weights: dict[str, float]) -> None:
        """Print the mean loss and the mean of every output over the batches seen."""
        n = max(self.batches, 1)
        print(f"Loss: {self.loss / n:g}")
        for name, total in self.sums.items():
            for v in total / n:
                line = f"{name} = {v:.6g}"
                w = loss_weights.get(name, 0.0)
                if w:
                    line += f" (* {w:g} = {w * v:.6g} loss)"
                print(line)
