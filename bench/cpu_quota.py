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
those steps ten times finer (a shorter one did not narrow them further:
c1_12's forward at 25% spread over 62-79 ms with a 10 ms period and 63-80 ms
with a 4 ms one, in steps of about 4 ms, the scheduler's tick); the waits
still overlap the pauses (an emulated client's network waits are partly
free), which real slow devices do not do. :func:`available` says whether it
can work here and why not.

A quota is a ceiling, not a reservation: on a shared machine a group held to
"100%" gets what the neighbours leave it. ``weight`` (cgroup v2 ``cpu.weight``
units: 100 is the default, 10000 the most; v1 ``cpu.shares`` gets weight x
1024 / 100) makes the group win the core when there is contention, so a
benchmark's emulated device and server are disturbed less by other jobs on
the machine. ``fraction=None`` sets no ceiling (a weight alone).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

PERIOD_US = 10_000  # a short period: a slow core, not a core lent in 100 ms slices (see above)
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

    def __init__(self, fraction: float | None, name: str | None = None, weight: int | None = None) -> None:
        if fraction is not None and not 0 < fraction <= 64:
            raise ValueError(f"fraction must be in (0, 64] or None, got {fraction}")
        if weight is not None and not 1 <= weight <= 10000:
            raise ValueError(f"weight must be in [1, 10000], got {weight}")
        self.kind = _kind()
        if self.kind is None:
            raise RuntimeError(available()[1])
        self.fraction, self.weight = fraction, weight
        base = _V2 if self.kind == "v2" else _V1
        tag = "max" if fraction is None else int(fraction * 1000)
        self.path = base / (name or f"tinycaffe_bench_{os.getpid()}_{tag}")
        self.path.mkdir(exist_ok=True)
        self.period_us = PERIOD_US
        quota = -1 if fraction is None else int(round(fraction * self.period_us))
        if self.kind == "v2":
            sub = _V2 / "cgroup.subtree_control"
            if "cpu" not in sub.read_text().split():
                sub.write_text("+cpu")
            (self.path / "cpu.max").write_text(f"{'max' if quota < 0 else quota} {self.period_us}")
            if weight is not None:
                (self.path / "cpu.weight").write_text(str(weight))
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            if weight is not None:
                (self.path / "cpu.shares").write_text(str(max(2, weight * 1024 // 100)))

    def describe(self) -> str:
        knob = "cpu.max" if self.kind == "v2" else "cpu.cfs_quota_us"
        wknob = "cpu.weight" if self.kind == "v2" else "cpu.shares"
        weight = "" if self.weight is None else f", {wknob} weight {self.weight} (default 100)"
        if self.fraction is None:
            return f"no CPU ceiling (cgroups {self.kind}{weight}, {self.path})"
        quota = int(round(self.fraction * self.period_us))
        return f"{self.fraction:.0%} of one core (cgroups {self.kind} {knob} = {quota} us " \
               f"per {self.period_us} us{weight}, {self.path})"

    def popen(self, cmd, **kw) -> subprocess.Popen:
        """Start ``cmd`` inside the group (it joins before exec, so nothing it runs escapes)."""
        procs = str(self.path / "cgroup.procs")

        def join() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return subprocess.Popen(cmd, preexec_fn=join, **kw)

    def join(self, pid: int | None = None) -> None:
        """Move process ``pid`` (default: this one) into the group; :meth:`close` moves this one back out."""
        with open(self.path / "cgroup.procs", "w") as f:
            f.write(str(pid or os.getpid()))

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
        mine = (self.path / "cgroup.procs").read_text().split()
        if str(os.getpid()) in mine:  # joined with join(): back to the parent group, or rmdir fails
            with open(self.path.parent / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)  # processes still leaving
