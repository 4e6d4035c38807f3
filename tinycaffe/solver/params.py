"""Reading and checking a SolverParameter before any net is built.

Does what Caffe's ``ReadSolverParamsFromTextFileOrDie`` and the solver
constructors check, but up front and with messages that name the field:
the legacy ``solver_type`` enum becomes the ``type`` string, a missing
``snapshot_prefix`` defaults to the solver file's name, and every value a
solver would later trip over (an unknown lr policy, momentum given to
AdaGrad...) is refused here as a :class:`SolverError`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import TinyCaffeError
from ..proto import caffe_pb2

# Caffe's registered solver names, by the legacy SolverType enum value.
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")


class SolverError(TinyCaffeError):
    """A solver definition (or solver state) that cannot be used."""


def load_solver_param(source: str | Path | Any) -> caffe_pb2.SolverParameter:
    """A checked SolverParameter from a path, prototxt text or a message.

    A path is read with FILE:LINE:COL errors; prototxt text must contain a
    newline or a brace, otherwise it is taken for a path.
    """
    from ..proto.prototxt import parse_message, read_solver

    if isinstance(source, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(source)
        name = "<SolverParameter>"
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and "{" not in source):
        path = Path(source)
        if not path.is_file():
            raise SolverError(f"{path}: no such solver file")
        param = read_solver(path)
        name = os.fspath(path)
        default_snapshot_prefix(param, path)
    elif isinstance(source, str):
        param = parse_message(source, caffe_pb2.SolverParameter(), "<string>")
        name = "<string>"
    else:
        raise SolverError(f"cannot read a solver from a {type(source).__name__}")
    upgrade_solver_type(param, name)
    check_solver_param(param, name)
    return param


def upgrade_solver_type(param: caffe_pb2.SolverParameter, source: str) -> None:
    """Replace the deprecated ``solver_type`` enum by the ``type`` string (as Caffe does)."""
    if not param.HasField("solver_type"):
        return
    if param.HasField("type"):
        raise SolverError(
            f"{source}: give the solver type once: 'solver_type' (deprecated enum) and "
            "'type' (string) are both set"
        )
    param.type = SOLVER_TYPES[param.solver_type]
    param.ClearField("solver_type")


def default_snapshot_prefix(param: caffe_pb2.SolverParameter, solver_path: Path) -> None:
    """No prefix: the solver file's path without extension; a folder: that folder/<solver stem>.

    Newer Caffe does the same, so snapshots land next to the solver file
    instead of as ``_iter_N.caffemodel`` in the current directory.
    """
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = os.fspath(solver_path.with_suffix(""))
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, solver_path.stem)


def solver_type(param: caffe_pb2.SolverParameter) -> str:
    """The canonical solver name for ``param.type`` (case-insensitive, like 'sgd' or 'adam')."""
    for known in SOLVER_TYPES:
        if param.type.lower() == known.lower():
            return known
    raise SolverError(f"unknown solver type {param.type!r}; known types: {', '.join(SOLVER_TYPES)}")


def check_solver_param(param: caffe_pb2.SolverParameter, source: str = "<SolverParameter>") -> None:
    """Refuse values Caffe's solvers would refuse (or silently misbehave on)."""
    from .lr_policy import check_lr_policy

    def bad(message: str) -> None:
        raise SolverError(f"{source}: {message}")

    kind = solver_type(param)
    if param.average_loss < 1:
        bad(f"average_loss must be at least 1, got {param.average_loss}")
    if param.iter_size < 1:
        bad(f"iter_size must be at least 1, got {param.iter_size}")
    for field in ("max_iter", "display", "snapshot", "test_interval"):
        if getattr(param, field) < 0:
            bad(f"{field} must not be negative, got {getattr(param, field)}")
    if any(n < 0 for n in param.test_iter):
        bad(f"test_iter must not be negative, got {list(param.test_iter)}")
    if param.regularization_type not in ("L1", "L2"):
        bad(f"unknown regularization_type {param.regularization_type!r}: use \"L1\" or \"L2\"")
    if param.weight_decay < 0:
        bad(f"weight_decay must not be negative, got {param.weight_decay}")
    if kind in ("AdaGrad", "RMSProp") and param.momentum != 0:
        bad(f"momentum cannot be used with {kind} (got momentum {param.momentum:g}); remove it")
    if kind == "RMSProp" and not 0 <= param.rms_decay < 1:
        bad(f"rms_decay must be in [0, 1), got {param.rms_decay:g}")
    if param.snapshot and not param.snapshot_prefix:
        bad("snapshot is set but snapshot_prefix is not")
    check_lr_policy(param, source)
