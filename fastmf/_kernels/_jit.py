"""The one decorator of every kernel: ``numba.njit(cache=True, nogil=True)``, made safe where
no cache can be written.

Numba's on-disk cache (``cache=True``) needs a writable folder: ``__pycache__`` beside the
source, a user-wide cache folder, or ``NUMBA_CACHE_DIR``. Where none is writable (a
read-only install with a read-only home, say), ``numba.njit(cache=True)`` raises "cannot
cache function ...: no locator available" when the module is imported. `kernel` then
compiles without the cache and warns once: fastmf works, each process pays the compilation.
"""

import warnings

from numba import njit

_warned = []


def kernel(fn=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``, without the cache where it cannot be written."""
    options = {"cache": True, "nogil": True} | options

    def decorate(fn):
        try:
            return njit(**options)(fn)
        except RuntimeError as exc:
            if "cannot cache" not in str(exc):
                raise
            if not _warned:
                _warned.append(True)
                warnings.warn(
                    f"fastmf: Numba cannot write its cache here ({exc}); the kernels compile in every "
                    "process. Set NUMBA_CACHE_DIR to a writable folder to keep them between processes.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return njit(**(options | {"cache": False}))(fn)

    return decorate if fn is None else decorate(fn)
