"""Training: Caffe's solvers (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam).

``Solver(solver_prototxt).solve()`` trains as ``caffe train`` does; the
pieces (lr policies, update rules, gradient clipping and weight decay,
snapshot files) are plain functions in the sibling modules.
"""
from .lr_policy import POLICIES, learning_rate
from .params import SOLVER_TYPES, SolverError, load_solver_param
from .snapshot import SolverStateData, read_state, write_state
from .solver import Solver
from .updates import RULES, Hyper

__all__ = [
    "POLICIES",
    "RULES",
    "SOLVER_TYPES",
    "Hyper",
    "Solver",
    "SolverError",
    "SolverStateData",
    "learning_rate",
    "load_solver_param",
    "read_state",
    "write_state",
]
