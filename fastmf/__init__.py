"""fastmf: fast, exact gradient descent for asymmetric matrix factorization.

Runs randomly initialized constant-step GD on min 1/2 ||U V^T - Sigma||_F^2 in the
singular basis of Sigma (Ye and Du 2021, eqs 6-9), with the complement compressed exactly to
k x k matrices, so a step costs O(k^3) whatever the size of Sigma.
"""

from importlib.metadata import PackageNotFoundError, version

from ._kernels.blas import info as blas_info
from .batch import solve_batch
from .claims import reproduce
from .flow import gd_flow_gap, gradient_flow, sandwich_bounds, symmetric_solution
from .init import SplitStart
from .monitor import RunState
from .options import FlowOptions, Options
from .problem import Problem
from .result import BatchResult, FlowResult, SolveResult, load
from .solver import resume, solve
from .stages import Stages
from .sweeps import SweepResult, sweep

try:
    __version__ = version("fastmf-gd")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name):
    """`GradientDescentMF` is imported on first use: it needs scikit-learn, an optional extra (so it
    is not in `__all__`, and ``from fastmf import *`` works without it)."""
    if name == "GradientDescentMF":
        from .sklearn import GradientDescentMF

        return GradientDescentMF
    raise AttributeError(f"module 'fastmf' has no attribute {name!r}")


__all__ = [
    "BatchResult",
    "FlowOptions",
    "FlowResult",
    "Options",
    "Problem",
    "RunState",
    "SolveResult",
    "SplitStart",
    "Stages",
    "SweepResult",
    "__version__",
    "blas_info",
    "gd_flow_gap",
    "gradient_flow",
    "load",
    "reproduce",
    "resume",
    "sandwich_bounds",
    "solve",
    "solve_batch",
    "sweep",
    "symmetric_solution",
]
