"""The decorators of every compiled function: ``numba.njit(cache=True, nogil=True)`` (`kernel`)
and ``numba.cfunc(signature, cache=True)`` (`callback`), with a cache keyed by all the kernel sources.

Numba keys its on-disk cache on the source file of each function only, while a kernel
compiles the functions it calls from other files into its own code: after an edit of
diagnostics.py alone, run_blocks (blocks.py) would load its cached code with the old
`record_cheap`. So the kernels here cache in a folder named by a hash of every kernel source
(the .py files of this folder), `cache_dir()`: where Numba would put them (NUMBA_CACHE_DIR
if set, else ``__pycache__`` beside the sources, else the user-wide cache folder), in a
subfolder ``<hash>``; a new subfolder replaces the older ones of the same place. Any edit
here starts a new cache, and no cached code outlives the sources it was compiled from.

Where no folder is writable (a read-only install with a read-only home, say), the
decorators compile without the cache and warn once: fastmf works, each process pays the
compilation.
"""

import functools
import hashlib
import inspect
import os
import re
import shutil
import warnings

from numba import cfunc, njit
from numba.core import caching, config
from numba.core.registry import CPUDispatcher
from numba.misc.appdirs import AppDirs

_HERE = os.path.dirname(os.path.abspath(__file__))
_warned = []
_chosen = []  # the folder the kernels cache in, once one is found


@functools.cache
def sources_hash() -> str:
    """SHA-256 of the kernel sources (every .py file of this folder, by name), in hex."""
    digest = hashlib.sha256()
    for name in sorted(f for f in os.listdir(_HERE) if f.endswith(".py")):
        with open(os.path.join(_HERE, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


def _places(py_file) -> list:
    """Numba's cache folders for py_file, in its order of preference."""
    subpath = caching._CacheLocator.get_suitable_cache_subpath(py_file)
    places = [os.path.join(config.CACHE_DIR, subpath)] if config.CACHE_DIR else []
    places.append(os.path.join(os.path.dirname(py_file), "__pycache__"))
    places.append(os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, subpath))
    return places


class _KernelLocator(caching._CacheLocator):
    """Numba's cache locator for the functions defined in this folder: the first writable
    of Numba's folders, in the subfolder of `sources_hash`, which is also the source stamp."""

    def __init__(self, py_func, py_file, path):
        self._py_file = py_file  # (Numba's own code reads it: where it warns that a function cannot be cached)
        self._lineno = py_func.__code__.co_firstlineno
        self._path = path

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return sources_hash()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None  # not a kernel: Numba's own locators
        places = _places(py_file)
        for place in places:
            path = os.path.join(place, sources_hash()[:16])
            fresh = not os.path.isdir(path)
            self = cls(py_func, py_file, path)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            if fresh:
                _prune(place, path)
            _chosen[:] = [path]
            return self
        # never Numba's own locators, which would key this function on its file alone
        raise RuntimeError(f"cannot cache function {py_func.__qualname__!r}: no writable folder among {places}")


def _prune(place, keep):
    """Remove the cache folders of older kernel sources from `place`."""
    for name in os.listdir(place):
        path = os.path.join(place, name)
        if re.fullmatch("[0-9a-f]{16}", name) and path != keep:
            shutil.rmtree(path, ignore_errors=True)


_impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in Numba 0.61
if not any(getattr(c, "__module__", None) == __name__ for c in _impl._locator_classes):
    _impl._locator_classes.insert(0, _KernelLocator)


def cache_dir():
    """The folder the kernels cache in, or None where none is writable."""
    return _chosen[0] if _chosen else None


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


# the options of every kernel and trampoline (`kernel` documents them)
_OPTIONS = {"nogil": True, "no_cfunc_wrapper": True, "error_model": "numpy", "_nrt": False}


class _Inner(CPUDispatcher):
    """A kernel compiled without Numba's Python wrapper (``no_cpython_wrapper``, as Numba compiles
    its own overloads), for the kernels that only other kernels call: their wrappers (code that
    unboxes each argument from a Python object) were never run, only compiled. A call from Python
    (a test, a debugging session) goes through `_trampoline`: the same compiled code, behind a
    wrapper compiled for that call, where calling the missing wrapper would crash."""

    def __call__(self, *args, **kwargs):
        if kwargs:  # the trampolines take positional arguments only
            bound = inspect.signature(self.py_func).bind(*args, **kwargs)
            bound.apply_defaults()
            args = bound.args
        return _trampoline(self, len(args))(*args)


@functools.cache
def _trampoline(inner, n_args):
    """A jitted ``lambda *args: inner(*args)`` of n_args arguments, with the Python wrapper
    `inner` lacks (not cached on disk: it has no source file)."""
    names = ", ".join(f"a{i}" for i in range(n_args))
    scope = {"inner": inner}
    exec(f"def call({names}):\n    return inner({names})\n", scope)
    return njit(scope["call"], **_OPTIONS)


def kernel(fn=None, *, entry=False, **options):
    """``numba.njit(cache=True, nogil=True, **options)``, without the cache where it cannot be written.

    More defaults keep the compiled code small and fast: no cfunc wrapper (no kernel is called
    through one) and, unless `entry` (a kernel that Python code calls), no Python wrapper either
    (`_Inner`: 8% of the first `fastmf.solve`'s compilation, 5% of `fastmf.solve_batch`'s); NumPy's error
    model (a float division by zero gives inf or NaN, which the kernels' finiteness tests catch,
    instead of raising from inside a run); and no Numba runtime (``_nrt=False``, Numba's own switch,
    as its tests use it). Kernels never allocate: their arrays come from Python, so the runtime's
    only work would be an atomic reference count at every array view and call, 0.15 us of a 1.03 us
    step at k = 10 and 0.5 to 1 s of the first `fastmf.solve`'s compilation. A kernel that does
    allocate passes ``_nrt=True`` (`spectral._eigh_extreme`).
    """
    options = {"cache": True} | _OPTIONS | ({} if entry else {"no_cpython_wrapper": True}) | options

    def decorate(fn):
        compiled = _compile(njit, fn, options)
        if not entry and isinstance(compiled, CPUDispatcher):  # (not under NUMBA_DISABLE_JIT)
            compiled.__class__ = _Inner
        return compiled

    return decorate if fn is None else decorate(fn)


def callback(signature):
    """``numba.cfunc(signature, cache=True)``, without the cache where it cannot be written."""
    return lambda fn: _compile(functools.partial(cfunc, signature), fn, {"cache": True})
