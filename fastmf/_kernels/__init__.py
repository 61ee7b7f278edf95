"""The compiled kernels: the only modules that import numba.

The slots and columns they share with the Python layer are named in `layout` (re-exported
here); the stage tests of the single-run and the batch kernels sit side by side in `stages`.

Developers: a kernel compiles the functions it calls from other files into its own cached
code, so the cache is keyed by a hash of every file of this folder (`_jit`): after any edit
here the kernels compile afresh, in a new subfolder of the cache (`cache_dir()`).
"""

from importlib import import_module as _import_module

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

# the kernels, by module: imported (and numba with them) on first use, so that what needs only
# `layout` (the command line's --help, say) loads no numba; `blas` binds the BLAS when imported
_LAZY = {
    "cache_dir": "._jit",
    "LANES": ".batch",
    "run_batch": ".batch",
    "flow_rhs": ".blocks",
    "run_blocks": ".blocks",
    "state_record": ".blocks",
    "absmax": ".direct",
    "block_rows": ".direct",
    "norm2": ".direct",
    "run_direct": ".direct",
}


def __getattr__(name):
    """Import a kernel's module on first use of the kernel, and keep the name here for the next."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(_import_module(_LAZY[name], __name__), name)
    return value


__all__ = [
    "BAD_STEP", "B_FRO", "CONVERGED", "DIVERGED", "E_OP", "FINAL_LOSS", "GRAD_FRO", "IMBALANCE", "J_OP", "KEYS",
    "K_OP", "LAMBDA_MAX_AAT_2S", "LAMBDA_MIN_P", "LANES", "LOSS", "LOSS_E", "LOSS_LU_LV", "LOSS_LU_VP", "LOSS_UP_LV",
    "N_CHEAP", "N_INFO", "N_ITER", "N_KEYS", "N_RECORDS", "N_SUMMARY", "N_TRACKED", "P_OP", "Q_FRO", "RUNNING",
    "SIGMA_MIN_A", "SIGMA_MIN_UP", "SIGMA_MIN_VP", "STATUS", "STEP", "T0", "T1", "T_DELTA", "absmax", "block_rows",
    "cache_dir", "flow_rhs", "norm2", "run_batch", "run_blocks", "run_direct", "state_record",
]  # fmt: skip
