"""Solver: trains a Net as Caffe's SGDSolver family does (``caffe train``'s engine).

One iteration (Caffe's ``Solver::Step``): maybe test; zero the gradients;
``iter_size`` forward/backward passes; display; then ``ApplyUpdate``: lr
from the policy, clip the gradients, and per parameter normalize,
regularize, run the update rule, and ``data -= diff``; then count the
iteration and snapshot when due. History and scratch arrays are made once,
so a run's memory stays flat.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..backend import asnumpy
from ..proto import caffe_pb2
from .gradients import clip_gradients, normalize, regularize
from .lr_policy import learning_rate
from .nets import build_test_nets, build_train_net
from .params import SolverError, load_solver_param, solver_type
from .smoothed_loss import SmoothedLoss
from .snapshot import SolverStateData, read_state, snapshot_filename, write_model, write_state
from .updates import RULES, Hyper

HDF5 = caffe_pb2.SolverParameter.HDF5


class Solver:
    """Build the nets a solver definition names and train them.

    ``Solver(solver, device="cpu", log=print)`` where ``solver`` is a path,
    prototxt text or a ``caffe_pb2.SolverParameter``. ``solve()`` runs to
    ``max_iter``; ``step(n)`` runs n iterations; ``restore(path)`` resumes
    from a .solverstate; ``snapshot()`` writes one; ``test_all()`` scores
    the test nets. ``net`` is the train net, ``test_nets`` share its weights.
    """

    def __init__(self, solver: str | Path | Any, *, device: str = "cpu",
                 log: Callable[[str], None] = print):
        self.param = load_solver_param(solver)
        self.type = solver_type(self.param)
        self.log = log
        seed = self.param.random_seed
        if seed < 0:  # Caffe: a fresh seed every run unless random_seed is set
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self._check_snapshot_prefix()
        self.net = build_train_net(self.param, device, seed)
        self.test_nets: list = []
        try:
            self.test_nets = build_test_nets(self.param, device, seed)
            for tn in self.test_nets:
                tn.share_weights_with(self.net)
            self._load_weights()
        except BaseException:
            self.close()
            raise
        self.iter = 0
        self.current_step = 0
        self.rate = 0.0
        self.smoothed = SmoothedLoss(self.param.average_loss)
        self.test_scores: list[dict[str, float]] = []
        self._snapshot_requested = False
        self._stop_requested = False
        self._last_snapshot_iter: int | None = None
        # (on_start, on_gradients_ready) pairs, as pycaffe's solver.add_callback gives them.
        self._callbacks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._alloc_state()

    def _load_weights(self) -> None:
        """The solver's ``weights`` (each may list several files, comma-separated), as newer Caffe."""
        for entry in self.param.weights:
            for path in filter(None, entry.split(",")):
                self.log(f"Finetuning from {path}")
                for net in (self.net, *self.test_nets):  # test nets may have layers of their own
                    net.copy_from(path)

    # -- state ------------------------------------------------------------------------
    def _alloc_state(self) -> None:
        """History (saved in snapshots) and one shared scratch buffer (not saved)."""
        xp = self.net.xp
        rule = RULES[self.type]
        self.rule = rule
        self.hyper = Hyper.from_param(self.param)
        self.params = self.net.learnable_params
        # Caffe's layout: all first histories, then all second ones (Adam, AdaDelta).
        self.history = [xp.zeros(p.blob.shape, dtype=np.float32)
                        for _ in range(rule.histories) for p in self.params]
        biggest = max((p.blob.count for p in self.params), default=0)
        # One scratch buffer serves every parameter in turn (regularize needs one row too).
        scratch = xp.zeros((max(rule.scratch, 1), biggest), dtype=np.float32)
        n = len(self.params)
        self._views = [
            ([self.history[k * n + i] for k in range(rule.histories)],
             [row[:p.blob.count].reshape(p.blob.shape) for row in scratch])
            for i, p in enumerate(self.params)
        ]

    def _check_snapshot_prefix(self) -> None:
        # Caffe's CheckSnapshotWritePermissions: fail now, not after hours of training.
        if not self.param.snapshot:
            return
        probe = snapshot_filename(self.param.snapshot_prefix, 0, f".tempfile{os.getpid()}")
        try:
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as exc:
            raise SolverError(f"cannot write to snapshot prefix {self.param.snapshot_prefix!r} "
                              f"({exc.strerror or exc}); make sure the directory exists and is "
                              "writable") from None

    # -- control ----------------------------------------------------------------------
    def add_callback(self, on_start: Any, on_gradients_ready: Callable[[], None] | None = None) -> None:
        """Call ``on_start()`` at the start of every iteration (after any test, before the
        forward passes) and ``on_gradients_ready()`` once the gradients are in, before the
        update, as Caffe's Solver::Callback. One object with both methods works too.
        """
        if on_gradients_ready is None:
            obj = on_start
            if not (callable(getattr(obj, "on_start", None)) and callable(getattr(obj, "on_gradients_ready", None))):
                raise SolverError("add_callback() takes two callables (on_start, on_gradients_ready), or one "
                                  "object with on_start() and on_gradients_ready() methods")
            on_start, on_gradients_ready = obj.on_start, obj.on_gradients_ready
        if not (callable(on_start) and callable(on_gradients_ready)):
            raise SolverError("add_callback(): on_start and on_gradients_ready must be callable")
        self._callbacks.append((on_start, on_gradients_ready))

    def request(self, snapshot: bool = False, stop: bool = False) -> None:
        """Ask for a snapshot and/or a stop at the next safe point (signal-handler safe)."""
        self._snapshot_requested |= snapshot
        self._stop_requested |= stop

    def _handle_requests(self) -> bool:
        """Act on pending requests; True when training must stop."""
        if self._snapshot_requested:
            self._snapshot_requested = False
            if self._last_snapshot_iter != self.iter:
                self.snapshot()
        return self._stop_requested

    # -- training ---------------------------------------------------------------------
    def solve(self, resume_file: str | None = None,
              on_iter: Callable[[int], None] | None = None) -> None:
        """Train from the current iteration up to max_iter (Caffe's Solver::Solve).

        ``on_iter(iteration)`` is called after every update (e.g. a progress bar).
        """
        p = self.param
        self.log(f"Solving {self.net.name}")
        self.log(f"Learning Rate Policy: {p.lr_policy}")
        self._stop_requested = False
        if resume_file:
            self.log(f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter, on_iter)
        if (p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0)
                and self._last_snapshot_iter != self.iter):
            self.snapshot()
        if self._stop_requested:
            self.log("Optimization stopped early.")
            return
        # One more forward (no update) and test, to report where training ended up.
        if p.display and self.iter % p.display == 0:
            self.net.forward()
            loss = self.smoothed.update(self.net.loss, self.iter - start_iter)
            self.log(f"Iteration {self.iter}, loss = {loss:g}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log("Optimization Done.")

    def step(self, iters: int, on_iter: Callable[[int], None] | None = None) -> None:
        """Run ``iters`` training iterations (fewer if a stop is requested)."""
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + iters
        self.smoothed.reset()
        timer, iters_at_timer = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            if p.test_interval and self.iter % p.test_interval == 0 and (
                    self.iter > 0 or p.test_initialization):
                self.test_all()
                if self._stop_requested:
                    break
            self.net.clear_param_diffs()
            for on_start, _ in self._callbacks:
                on_start()
            display = bool(p.display) and self.iter % p.display == 0
            loss = 0.0
            for _ in range(p.iter_size):
                self.net.forward()
                self.net.backward()
                loss += self.net.loss
            loss /= p.iter_size
            smoothed = self.smoothed.update(loss, self.iter - start_iter)
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iters_at_timer) / lapse if lapse > 0 else 0.0
                self.log(f"Iteration {self.iter} ({per_s:.4g} iter/s, {lapse:.4g}s/{p.display} iters), "
                         f"loss = {smoothed:g}")
                timer, iters_at_timer = time.perf_counter(), self.iter
                self._log_outputs("Train", self.net, self._output_values(self.net))
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update(display)
            self.iter += 1
            if on_iter is not None:
                on_iter(self.iter)
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()
            if self._handle_requests():
                break

    def apply_update(self, log_rate: bool = False) -> None:
        """Caffe's SGDSolver::ApplyUpdate on the gradients now in the train net."""
        p = self.param
        self.rate, self.current_step = learning_rate(p, self.iter, self.current_step)
        if log_rate:
            self.log(f"Iteration {self.iter}, lr = {self.rate:g}")
        scale = clip_gradients([lp.blob.diff for lp in self.params], p.clip_gradients)
        if scale is not None:
            self.log(f"Gradient clipping: scaling down gradients (L2 norm > {p.clip_gradients:g}) "
                     f"by scale factor {scale:g}")
        t = self.iter + 1  # Adam's step count
        for lp, (history, scratch) in zip(self.params, self._views):
            data, diff = lp.blob.data, lp.blob.diff
            normalize(diff, p.iter_size)
            regularize(data, diff, p.weight_decay * lp.decay_mult, p.regularization_type, scratch[0])
            self.rule.apply(diff, history, scratch, self.rate * lp.lr_mult, self.hyper, t)
            data -= diff  # Net::Update

    # -- testing ----------------------------------------------------------------------
    def test_all(self) -> list[dict[str, float]]:
        """Score every test net; returns (and keeps in ``test_scores``) name -> mean per net."""
        self.test_scores = []
        for i in range(len(self.test_nets)):
            if self._stop_requested:
                break
            self.test_scores.append(self.test(i))
        return self.test_scores

    def test(self, i: int = 0) -> dict[str, float]:
        """Run test net ``i`` for its test_iter batches; log and return the mean of each output."""
        p, net = self.param, self.test_nets[i]
        self.log(f"Iteration {self.iter}, Testing net (#{i})")
        sums: dict[str, np.ndarray] = {}
        loss = 0.0
        n = p.test_iter[i]
        for _ in range(n):
            if self._handle_requests():
                self.log("Test interrupted.")
                return {}
            outputs = net.forward()
            if p.test_compute_loss:
                loss += net.loss
            for name, value in outputs.items():
                flat = asnumpy(value).reshape(-1).astype(np.float64)
                if name in sums:
                    sums[name] += flat
                else:
                    sums[name] = flat
        if p.test_compute_loss and n:
            self.log(f"Test loss: {loss / n:g}")
        means = {name: s / max(n, 1) for name, s in sums.items()}
        self._log_outputs("Test", net, means)
        return {name: float(v[0]) if v.size == 1 else v.tolist() for name, v in means.items()}

    @staticmethod
    def _output_values(net) -> dict[str, np.ndarray]:
        return {name: asnumpy(net.blobs[name].data).reshape(-1) for name in net.outputs}

    def _log_outputs(self, kind: str, net, values: dict[str, np.ndarray]) -> None:
        weights = net.output_loss_weights()
        k = 0
        for name, flat in values.items():
            w = weights.get(name, 0.0)
            for v in flat:
                extra = f" (* {w:g} = {w * v:g} loss)" if w else ""
                self.log(f"    {kind} net output #{k}: {name} = {v:g}{extra}")
                k += 1

    # -- snapshots --------------------------------------------------------------------
    def snapshot(self) -> tuple[str, str]:
        """Write ``<prefix>_iter_N.caffemodel[.h5]`` and ``.solverstate[.h5]``; returns both paths."""
        p = self.param
        hdf5 = p.snapshot_format == HDF5
        model = snapshot_filename(p.snapshot_prefix, self.iter, ".caffemodel.h5" if hdf5 else ".caffemodel")
        state = snapshot_filename(p.snapshot_prefix, self.iter, ".solverstate.h5" if hdf5 else ".solverstate")
        kind = "HDF5 file" if hdf5 else "binary proto file"
        self.log(f"Snapshotting to {kind} {model}")
        write_model(self.net, model, hdf5, p.snapshot_diff)
        self.log(f"Snapshotting solver state to {kind} {state}")
        write_state(state, SolverStateData(self.iter, model, self.current_step, self.history), hdf5)
        self._last_snapshot_iter = self.iter
        return model, state

    def restore(self, state_file: str | Path) -> None:
        """Resume from a solver state: iteration, lr step, history, and the learned net it names."""
        path = os.fspath(state_file)
        state = read_state(path)
        if len(state.history) != len(self.history):
            raise SolverError(
                f"{path}: holds {len(state.history)} history blobs but this {self.type} solver "
                f"has {len(self.history)} (is it from another net or solver type?)")
        for i, (saved, mine) in enumerate(zip(state.history, self.history)):
            if saved.size != mine.size:
                raise SolverError(f"{path}: history blob {i} has shape {saved.shape}, "
                                  f"the net's parameter has {mine.shape}")
        if state.learned_net:
            self.net.copy_from(self._learned_net_path(state.learned_net, path))
        for saved, mine in zip(state.history, self.history):
            mine[...] = self.net.xp.asarray(saved.reshape(mine.shape))
        self.iter = state.iter
        self.current_step = state.current_step

    @staticmethod
    def _learned_net_path(learned: str, state_path: str) -> str:
        # Caffe opens learned_net relative to the current directory; when that fails,
        # also look beside the state file, so a moved snapshot pair still resumes.
        if os.path.isfile(learned):
            return learned
        beside = os.path.join(os.path.dirname(state_path), os.path.basename(learned))
        if os.path.isfile(beside):
            return beside
        raise SolverError(f"{state_path}: its learned net {learned!r} was not found "
                          f"(nor {beside!r})")

    def close(self) -> None:
        """Release the nets' data readers and threads."""
        for net in [getattr(self, "net", None), *getattr(self, "test_nets", [])]:
            if net is not None:
                net.close()
