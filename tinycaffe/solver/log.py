"""Reading back the test scores a Solver's log printed (what Caffe's parse_log.py does)."""
from __future__ import annotations

import re
from collections.abc import Iterable

_TESTING = re.compile(r"Iteration (\d+), Testing net")
_OUTPUT = re.compile(r"Test net output #\d+: (\S+) = ([-+0-9.eEinfa]+)")


def scores_by_iteration(lines: Iterable[str]) -> dict[int, dict[str, float]]:
    """Iteration -> {output name: value} for each test in a training log, in the
    ``Iteration N, Testing net (#0)`` / ``Test net output #k: name = v`` lines the
    Solver logs (timestamps or other prefixes before them are fine)."""
    scores: dict[int, dict[str, float]] = {}
    it = None
    for line in lines:
        m = _TESTING.search(line)
        if m:
            it = int(m.group(1))
            scores.setdefault(it, {})
            continue
        m = _OUTPUT.search(line)
        if m and it is not None:
            scores[it][m.group(1)] = float(m.group(2))
    return scores
