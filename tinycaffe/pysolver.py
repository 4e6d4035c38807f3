"""pycaffe's solver classes: ``caffe.SGDSolver(path)`` ... ``caffe.get_solver(path)``.

Each is tinycaffe's :class:`~tinycaffe.solver.Solver` with the update rule
the class names (pycaffe's ``SGDSolver`` trains with SGD whatever the file's
``type`` says; ``get_solver`` uses the file's type). The solver log goes to
the ``tinycaffe.solver`` logger, quiet unless logging is configured (pycaffe
sends it to glog). ``solver.net``, ``solver.test_nets``, ``solver.iter``,
``step(n)``, ``solve()``, ``restore(f)``, ``snapshot()``, ``apply_update()``
and ``add_callback(on_start, on_gradients_ready)`` work as in pycaffe.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, ClassVar

from .proto import caffe_pb2
from .proto.prototxt import parse_message, read_solver
from .solver import Solver, SolverError, load_solver_param
from .solver.params import default_snapshot_prefix, upgrade_solver_type

_log = logging.getLogger("tinycaffe.solver")


class PycaffeSolver(Solver):
    """A Solver built from a solver prototxt path as pycaffe builds one."""

    solver_type: ClassVar[str | None] = None  # None: the file's own type

    def __init__(self, filename: str | Path | Any, *, device: str | None = None,
                 log: Callable[[str], None] | None = None):
        from .pycaffe import mode_device

        if self.solver_type is None:
            param = load_solver_param(filename)
        else:
            # The class decides the rule: the file's type (and what it alone would
            # refuse, such as momentum with RMSProp) does not matter.
            param = _read_unchecked(filename)
            param.type = self.solver_type
        super().__init__(param, device=mode_device() if device is None else device,
                         log=_log.info if log is None else log)

    def share_weights(self, net) -> None:
        """Let ``net`` use the train net's parameter blobs (pycaffe's ``solver.share_weights``)."""
        net.share_weights_with(self.net)


class SGDSolver(PycaffeSolver):
    """Stochastic gradient descent with momentum."""

    solver_type = "SGD"


class NesterovSolver(PycaffeSolver):
    """Nesterov's accelerated gradient."""

    solver_type = "Nesterov"


class AdaGradSolver(PycaffeSolver):
    """AdaGrad."""

    solver_type = "AdaGrad"


class RMSPropSolver(PycaffeSolver):
    """RMSProp."""

    solver_type = "RMSProp"


class AdaDeltaSolver(PycaffeSolver):
    """AdaDelta."""

    solver_type = "AdaDelta"


class AdamSolver(PycaffeSolver):
    """Adam."""

    solver_type = "Adam"


def _read_unchecked(source: str | Path | Any) -> caffe_pb2.SolverParameter:
    """A SolverParameter as ``load_solver_param`` reads it, before its checks."""
    if not isinstance(source, (str, Path)) or "\n" in str(source) or "{" in str(source):
        param = caffe_pb2.SolverParameter()
        if isinstance(source, caffe_pb2.SolverParameter):
            param.CopyFrom(source)
        else:
            parse_message(str(source), param, "<string>")
        upgrade_solver_type(param, "<SolverParameter>")
        return param
    path = Path(source)
    if not path.is_file():
        raise SolverError(f"{path}: no such solver file")
    param = read_solver(path)
    default_snapshot_prefix(param, path)
    upgrade_solver_type(param, str(path))
    return param


def get_solver(filename: str | Path | Any, **kwargs: Any) -> PycaffeSolver:
    """The solver the file's ``type`` (or legacy ``solver_type``) names."""
    return PycaffeSolver(filename, **kwargs)
