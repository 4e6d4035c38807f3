"""Run a process held to a fraction of one CPU core by a cgroup quota (an emulated slow client).

cgroups v2 (``cpu.max`` in a child of /sys/fs/cgroup) when the unified
hierarchy has the cpu controller; else cgroups v1 (``cpu.cfs_quota_us`` under
/sys/fs/cgroup/cpu), which is what the project's VM offers. Either way the
kernel's CFS bandwidth control lets the group run ``fraction`` x 10 ms of CPU
per 10 ms period, over all its threads: 0.25 is a quarter of one core.
Needs root.

A quota is not a slower core: the group runs at full speed until its share
of the period is spent, then waits for the next period. With the default
100 ms period a 40 ms forward at 25% takes 25 ms + a 75 ms pause + 15 ms
(115 ms, not 160), and time the process spends waiting on the network lets
the next period's share go unused rather than slowing it. A 10 ms period makes
those steps ten times finer; the waits still overlap the pauses (an emulated
client's network waits are partly free), which real slow devices do not do. :func:`available` says whether it can work here and why not.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

PERIOD_US = 10_000  # a short period: a slow core, not a core lent in 100 ms slices (see below)
_V2 = Path("/sys/fs/cgroup")
_V1 = Path("/sys/fs/cgroup/cpu")


def _kind() -> str | None:
    ctrl = _V2 / "cgroup.controllers"
    if ctrl.exists() and "cpu" in ctrl.read_text().split():
        return "v2"
    if (_V1 / "cpu.cfs_quota_us").exists():
        return "v1"
    return None


def available() -> tuple[bool, str]:
    """(True, how) when a quota can be set here, else (False, why not)."""
    kind = _kind()
    if kind is None:
        return False, "no cgroup cpu controller (v2 cpu.max or v1 cpu.cfs_quota_us) found"
    base = _V2 if kind == "v2" else _V1
    if not os.access(base, os.W_OK):
        return False, f"{base} is not writable (not root, or a read-only cgroup mount)"
    return True, f"cgroups {kind} ({'cpu.max' if kind == 'v2' else 'cpu.cfs_quota_us'})"


class CpuQuota:
    """A child cgroup holding its processes to ``fraction`` of one core; remove it with :meth:`close`."""

    def __init__(self, fraction: float, name: str | None = None) -> None:
        if not 0 < fraction <= 64:
            raise ValueError(f"fraction must be in (0, 64], got {fraction}")
        self.kind = _kind()
        if self.kind is None:
            raise RuntimeError(available()[1])
        self.fraction = fraction
        base = _V2 if self.kind == "v2" else _V1
        self.path = base / (name or f"tinycaffe_bench_{os.getpid()}_{int(fraction * 1000)}")
        self.path.mkdir(exist_ok=True)
        quota = int(round(fraction * PERIOD_US))
        if self.kind == "v2":
            sub = _V2 / "cgroup.subtree_control"
            if "cpu" not in sub.read_text().split():
                sub.write_text("+cpu")
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def describe(self) -> str:
        knob = "cpu.max" if self.kind == "v2" else "cpu.cfs_quota_us"
        return f"{self.fraction:.0%} of one core (cgroups {self.kind} {knob} = {int(self.fraction * PERIOD_US)} us " \
               f"per {PERIOD_US} us, {self.path})"

    def popen(self, cmd, **kw) -> subprocess.Popen:
        """Start ``cmd`` inside the group (it joins before exec, so nothing it runs escapes)."""
        procs = str(self.path / "cgroup.procs")

        def join() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return subprocess.Popen(cmd, preexec_fn=join, **kw)

    def throttled_s(self) -> float:
        """Seconds the group was held back by its quota so far."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":  # v1, nanoseconds
                return int(value) / 1e9
            if key == "throttled_usec":  # v2
                return int(value) / 1e6
        return 0.0

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)  # processes still leaving
