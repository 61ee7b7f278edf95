"""The decorators of every compiled function: ``numba.njit(cache=True, nogil=True)`` (`kernel`)
and ``numba.cfunc(signature, cache=True)`` (`callback`), made safe where no cache can be written.

Numba's on-disk cache (``cache=True``) needs a writable folder: ``__pycache__`` beside the
source, a user-wide cache folder, or ``NUMBA_CACHE_DIR``. Where none is writable (a
read-only install with a read-only home, say), Numba raises "cannot cache function ...: no
locator available" when the module is imported. These decorators then compile without the
cache and warn once: fastmf works, each process pays the compilation.
"""

import functools
import warnings

from numba import cfunc, njit

_warned = []


def _compile(decorator, fn, options):
    try:
        return decorator(**options)(fn)
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        if not _warned:
            _warned.append(True)
            warnings.warn(
                f"fastmf: Numba cannot write its cache here ({exc}); the kernels compile in every "
                "process. Set NUMBA_CACHE_DIR to a writable folder to keep them between processes.",
                RuntimeWarning,
                stacklevel=4,
            )
        return decorator(**(options | {"cache": False}))(fn)


def kernel(fn=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``, without the cache where it cannot be written."""
    options = {"cache": True, "nogil": True} | options

    def decorate(fn):
        return _compile(njit, fn, options)

    return decorate if fn is None else decorate(fn)


def callback(signature):
    """``numba.cfunc(signature, cache=True)``, without the cache where it cannot be written."""
    return lambda fn: _compile(functools.partial(cfunc, signature), fn, {"cache": True})
