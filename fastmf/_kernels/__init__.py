"""The compiled kernels: the only modules that import numba.

Developers: Numba's on-disk cache (cache=True) is keyed on the source file of each cached
function only. run_blocks (blocks.py) compiles record (diagnostics.py), extreme_eig
(spectral.py) and gemm (blas.py) into its own cached code, and run_direct (direct.py)
compiles blocks' helpers and gemm, so after editing one of those files alone, clear the
cache (find fastmf -name '*.nb[ic]' -delete) or the old code keeps running.
An installed release is safe: installing rewrites every file.
"""

import os

from . import blas
from .blocks import BAD_STEP, CONVERGED, DIVERGED, N_RECORDS, RUNNING, STATUS, STEP, flow_rhs, run_blocks, state_record
from .diagnostics import KEYS, N_CHEAP, N_INFO, N_KEYS, N_TRACKED, T0, T1
from .direct import absmax, block_rows, norm2, run_direct

# kernels compile or load on their first call, so binding their BLAS here comes first
blas.bind(os.environ.get("FASTMF_BLAS", ""))

__all__ = [
    "BAD_STEP", "CONVERGED", "DIVERGED", "KEYS", "N_CHEAP", "N_INFO", "N_KEYS", "N_RECORDS", "N_TRACKED", "RUNNING",
    "STATUS", "STEP", "T0", "T1", "absmax", "block_rows", "flow_rhs", "norm2", "run_blocks", "run_direct",
    "state_record",
]  # fmt: skip
