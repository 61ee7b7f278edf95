"""The compiled kernels: the only modules that import numba.

The slots and columns they share with the Python layer are named in `layout` (re-exported
here); the stage tests of the single-run and the batch kernels sit side by side in `stages`.

Developers: a kernel compiles the functions it calls from other files into its own cached
code, so the cache is keyed by a hash of every file of this folder (`_jit`): after any edit
here the kernels compile afresh, in a new subfolder of the cache (`cache_dir()`).
"""

import os

from . import blas
from ._jit import cache_dir
from .batch import LANES, run_batch
from .blocks import flow_rhs, run_blocks, state_record
from .direct import absmax, block_rows, norm2, run_direct
from .layout import (
    B_FRO,
    BAD_STEP,
    CONVERGED,
    DIVERGED,
    E_OP,
    FINAL_LOSS,
    GRAD_FRO,
    IMBALANCE,
    J_OP,
    K_OP,
    KEYS,
    LAMBDA_MAX_AAT_2S,
    LAMBDA_MIN_P,
    LOSS,
    LOSS_E,
    LOSS_LU_LV,
    LOSS_LU_VP,
    LOSS_UP_LV,
    N_CHEAP,
    N_INFO,
    N_ITER,
    N_KEYS,
    N_RECORDS,
    N_SUMMARY,
    N_TRACKED,
    P_OP,
    Q_FRO,
    RUNNING,
    SIGMA_MIN_A,
    SIGMA_MIN_UP,
    SIGMA_MIN_VP,
    STATUS,
    STEP,
    T0,
    T1,
    T_DELTA,
)

# kernels compile or load on their first call, so binding their BLAS here comes first
blas.bind(os.environ.get("FASTMF_BLAS", ""))

__all__ = [
    "BAD_STEP", "B_FRO", "CONVERGED", "DIVERGED", "E_OP", "FINAL_LOSS", "GRAD_FRO", "IMBALANCE", "J_OP", "KEYS",
    "K_OP", "LAMBDA_MAX_AAT_2S", "LAMBDA_MIN_P", "LANES", "LOSS", "LOSS_E", "LOSS_LU_LV", "LOSS_LU_VP", "LOSS_UP_LV",
    "N_CHEAP", "N_INFO", "N_ITER", "N_KEYS", "N_RECORDS", "N_SUMMARY", "N_TRACKED", "P_OP", "Q_FRO", "RUNNING",
    "SIGMA_MIN_A", "SIGMA_MIN_UP", "SIGMA_MIN_VP", "STATUS", "STEP", "T0", "T1", "T_DELTA", "absmax", "block_rows",
    "cache_dir", "flow_rhs", "norm2", "run_batch", "run_blocks", "run_direct", "state_record",
]  # fmt: skip
