"""The compiled kernels: the only modules that import numba."""

from .blocks import BAD_STEP, CONVERGED, DIVERGED, N_RECORDS, RUNNING, STATUS, STEP, diagnostics, flow_rhs, run_blocks

__all__ = [
    "BAD_STEP",
    "CONVERGED",
    "DIVERGED",
    "N_RECORDS",
    "RUNNING",
    "STATUS",
    "STEP",
    "diagnostics",
    "flow_rhs",
    "run_blocks",
]
