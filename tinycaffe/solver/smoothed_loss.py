"""The displayed training loss: a running mean of the last ``average_loss`` losses.

Mirrors Caffe's ``Solver::UpdateSmoothedLoss``: a mean that grows while the
window fills, then a ring buffer indexed by iterations since the ``step``
call began (so each ``step`` starts a fresh window, as in Caffe).
"""
from __future__ import annotations


class SmoothedLoss:
    """Running mean over a fixed window of per-iteration losses."""

    def __init__(self, window: int):
        self.window = max(1, int(window))
        self.reset()

    def reset(self) -> None:
        self.losses: list[float] = []
        self.value = 0.0

    def update(self, loss: float, iters_since_start: int) -> float:
        """Add this iteration's loss; returns the smoothed value."""
        if len(self.losses) < self.window:
            self.losses.append(loss)
            n = len(self.losses)
            self.value = (self.value * (n - 1) + loss) / n
        else:
            i = iters_since_start % self.window
            self.value += (loss - self.losses[i]) / self.window
            self.losses[i] = loss
        return self.value
