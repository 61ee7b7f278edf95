"""Input checks shared by the public entry points; every message names the argument and the fix."""

from __future__ import annotations

import numbers
import os
import sys

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype) -> np.dtype:
    """float32 stays float32; everything else real computes in float64."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def real_array(x, name: str, ndim: int, dtype=None) -> np.ndarray:
    """Return `x` as a finite real float array of `ndim` dimensions (a copy only if needed)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array; could not convert it ({exc})") from None
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} is complex; fastmf works with real matrices: pass {name}.real")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); give it at least one entry per axis")
    arr = arr.astype(float_dtype(arr.dtype) if dtype is None else dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf; remove or replace the non-finite entries")
    return arr


def is_dask_array(x) -> bool:
    """True for a dask.array.Array, checked without importing dask (it is optional)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def positive_int(x, name: str, minimum: int = 1) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(x).__name__} {x!r}")
    if x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {x}")
    return int(x)


def finite_float(x, name: str, *, positive: bool = False) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    x = float(x)
    if not np.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    if positive and x <= 0:
        raise ValueError(f"{name} must be > 0, got {x}")
    if x < 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def check_fits(shape: tuple[int, ...], dtype, what: str, hint: str) -> None:
    """Raise MemoryError before allocating an array larger than the machine's memory."""
    nbytes = float(np.prod([float(d) for d in shape])) * np.dtype(dtype).itemsize
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not available on this platform
        return
    if nbytes > available:
        raise MemoryError(
            f"{what} would take {nbytes / 2**30:.3g} GiB, more than this machine's {available / 2**30:.3g} GiB; {hint}"
        )
