"""fastmf: fast, exact gradient descent for asymmetric matrix factorization.

Runs randomly initialized constant-step GD on min 1/2 ||U V^T - Sigma||_F^2 in the
singular basis of Sigma (Ye and Du 2021, eqs 6-9), with the complement compressed exactly to
k x k matrices, so a step costs O(k^3) whatever the size of Sigma.

``import fastmf`` loads nothing heavy: each public name imports its module (and with it NumPy,
SciPy or Numba) on first use (PEP 562), so a command line or a Dask worker pays only for what
it calls.
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports these on first use
    from ._kernels.blas import info as blas_info
    from .batch import solve_batch
    from .claims import reproduce
    from .flow import gd_flow_gap, gradient_flow, sandwich_bounds, symmetric_solution
    from .init import SplitStart
    from .monitor import RunState
    from .options import FlowOptions, Options
    from .problem import Problem
    from .result import BatchResult, FlowResult, SolveResult, load
    from .sklearn import GradientDescentMF as GradientDescentMF
    from .solver import resume, solve
    from .stages import Stages
    from .sweeps import SweepResult, sweep

    __version__: str

# public name -> (module, its name there); `GradientDescentMF` needs scikit-learn, an optional extra,
# so it is not in `__all__` (``from fastmf import *`` works without it)
_LAZY = {
    "BatchResult": (".result", "BatchResult"),
    "FlowOptions": (".options", "FlowOptions"),
    "FlowResult": (".result", "FlowResult"),
    "GradientDescentMF": (".sklearn", "GradientDescentMF"),
    "Options": (".options", "Options"),
    "Problem": (".problem", "Problem"),
    "RunState": (".monitor", "RunState"),
    "SolveResult": (".result", "SolveResult"),
    "SplitStart": (".init", "SplitStart"),
    "Stages": (".stages", "Stages"),
    "SweepResult": (".sweeps", "SweepResult"),
    "blas_info": ("._kernels.blas", "info"),
    "gd_flow_gap": (".flow", "gd_flow_gap"),
    "gradient_flow": (".flow", "gradient_flow"),
    "load": (".result", "load"),
    "reproduce": (".claims", "reproduce"),
    "resume": (".solver", "resume"),
    "sandwich_bounds": (".flow", "sandwich_bounds"),
    "solve": (".solver", "solve"),
    "solve_batch": (".batch", "solve_batch"),
    "sweep": (".sweeps", "sweep"),
    "symmetric_solution": (".flow", "symmetric_solution"),
}

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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastmf-gd")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


if not TYPE_CHECKING:  # hidden from type checkers, which otherwise accept any name as fastmf.<name>

    def __getattr__(name):
        """Import a public name's module on first use, and keep the name here for the next."""
        if name == "__version__":
            value = _version()
        elif name in _LAZY:
            module, attribute = _LAZY[name]
            value = getattr(_import_module(module, __name__), attribute)
        else:
            raise AttributeError(f"module 'fastmf' has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__():
        return sorted(set(globals()) | set(__all__))  # not `GradientDescentMF`: without scikit-learn it cannot import
