"""The compiled kernels: the only modules that import numba."""

from .blocks import BAD_STEP, CONVERGED, DIVERGED, N_RECORDS, RUNNING, STATUS, STEP, flow_rhs, run_blocks, state_record
from .diagnostics import KEYS, N_CHEAP, N_KEYS, N_TRACKED, T0, T1

__all__ = [
    "BAD_STEP", "CONVERGED", "DIVERGED", "KEYS", "N_CHEAP", "N_KEYS", "N_RECORDS", "N_TRACKED", "RUNNING",
    "STATUS", "STEP", "T0", "T1", "flow_rhs", "run_blocks", "state_record",
]  # fmt: skip
