"""``tinycaffe train``: train a net with a solver, like `caffe train`.

Ctrl-C (``--sigint-effect``): ``snapshot`` (default) finishes the current
iteration, writes a snapshot and exits with 0; ``stop`` finishes the
iteration and stops, writing the final snapshot only if the solver's
``snapshot_after_train`` asks for it (Caffe's "stop"); ``none`` leaves
Ctrl-C alone, so it aborts at once without a snapshot (exit 130; Caffe
would ignore the signal). A second Ctrl-C always aborts. SIGHUP writes a
snapshot and training goes on, as Caffe's default ``-sighup_effect``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

from .common import Progress, device, set_threads


@contextmanager
def _signals(solver, effect: str) -> Iterator[None]:
    """Turn Ctrl-C / SIGHUP into solver requests while training; restore handlers after."""
    previous = {}

    def on_sigint(signum, frame):
        # The first Ctrl-C asks politely; a second one means "now".
        signal.signal(signal.SIGINT, signal.default_int_handler)
        then = "then snapshot and stop" if effect == "snapshot" else "then stop"
        # os.write, not print: the handler may interrupt a write to the same stream.
        os.write(sys.stderr.fileno(), f"\ntinycaffe: Ctrl-C: finishing the iteration ({then}); "
                 "press Ctrl-C again to abort\n".encode())
        solver.request(snapshot=effect == "snapshot", stop=True)

    def on_sighup(signum, frame):
        solver.request(snapshot=True)

    if effect != "none":
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_sigint)
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_sighup)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_train(args: argparse.Namespace) -> int:
    from ..solver import Solver, load_solver_param

    set_threads(args.threads)
    dev = device(args)
    param = load_solver_param(args.solver)
    if args.snapshot or args.weights:
        # As caffe train: the state's learned net, or --weights, replaces the solver's `weights`.
        param.ClearField("weights")
    if args.weights:
        param.weights.append(args.weights)
    progress = Progress(param.max_iter, "train")

    def log(line: str) -> None:
        progress.close()  # clear the bar so log lines are not overwritten
        print(line, flush=True)

    if param.HasField("solver_mode") and param.solver_mode == param.GPU and dev == "cpu":
        log("note: the solver asks for solver_mode GPU; training on the CPU (pass --gpu 0 for the GPU)")
    solver = Solver(param, device=dev, log=log)
    try:
        with _signals(solver, args.sigint_effect):
            log("Starting Optimization")
            solver.solve(resume_file=args.snapshot, on_iter=progress.update)
    finally:
        progress.close()
        solver.close()
    return 0
