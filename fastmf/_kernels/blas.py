"""The matrix products of every kernel, and the one setting that picks who computes them.

Kernels call `gemm(A, B, C)` (C = A B, any of A, B a transposed view). It compiles to a
call of two external symbols, fastmf_dgemm and fastmf_sgemm, with Fortran BLAS's ?gemm
signature (every argument a pointer, column-major, so the row-major C = A B is computed as
C^T = B^T A^T). `bind` points them, once per process and before any kernel runs, at the
?gemm of one backend:

* "scipy" (default; "openblas" is an alias): the ?gemm of ``scipy.linalg.cython_blas``,
  that is whatever BLAS this SciPy calls (the OpenBLAS of a PyPI wheel, Debian's libblas,
  MKL or OpenBLAS in conda...);
* "mkl": Intel MKL's libmkl_rt from this environment (``pip install "fastmf-gd[mkl]"``);
* "loops": plain compiled loops (`_loop_gemm`), no BLAS at all.

The environment variable FASTMF_BLAS chooses (read when the kernels are first loaded; any case; empty
means the default). Compiled and cached kernels refer to the symbols by name, so one cache
serves every backend. A backend that cannot be bound leaves import working: the symbols
then point at `_refusal`, which marks its call, and `gemm` raises `BackendError` saying
why. `fastmf.blas_info()` says which library runs and with how many threads. The one LAPACK
call (the rare eigh fallback of `spectral.py`) is SciPy's dsyev, bound there the same way
(symbol ``fastmf_dsyev``) whatever FASTMF_BLAS says.
"""

import contextlib
import ctypes
import ctypes.util
import glob
import os
import sys

import llvmlite.binding as llvm
import numpy as np
from numba import carray, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from ._jit import callback, kernel

BACKENDS = ("scipy", "mkl", "loops")
_ALIASES = {"": "scipy", "openblas": "scipy"}
_GEMM = {types.float64: "dgemm", types.float32: "sgemm"}  # the kernels call them as fastmf_dgemm, fastmf_sgemm
_N, _T = ord("N"), ord("T")
_bound = {"backend": None, "error": None}  # and MKL's path and thread setter, the cfuncs bound (kept alive here)


class BackendError(ImportError):
    """The backend FASTMF_BLAS names cannot be bound; raised by every product. Compiled code
    raises it without arguments: the message is then the reason `bind` recorded."""

    def __init__(self, *args):
        super().__init__(*(args or (_bound["error"],)))


def _signature(real):
    """Fortran ?gemm's: transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc."""
    char, int_, x = types.CPointer(types.int8), types.CPointer(types.intc), types.CPointer(real)
    return types.void(char, char, int_, int_, int_, x, x, int_, x, int_, x, x, int_)


def gemm(A, B, C):
    """C = A B (float32 or float64, C C-contiguous, A and B each C- or F-contiguous).

    Compiled code calls the bound backend (`_gemm`); this body runs only without the JIT
    (NUMBA_DISABLE_JIT=1).
    """
    np.dot(A, B, out=C)


@intrinsic
def _ref(typingctx, value):
    """A pointer to a stack slot holding `value`: how compiled code passes a scalar to Fortran."""

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once_value(builder, args[0])

    return types.CPointer(value)(value), codegen


@kernel
def _fortran_view(X):
    """(op, leading dimension) of row-major X's memory read as a column-major matrix: that
    matrix is X^T ('N' gives it) when X's rows are contiguous, else X itself ('T')."""
    it = X.itemsize
    if X.strides[1] == it:
        return np.int8(_N), np.int32(max(X.strides[0] // it, X.shape[1], 1))
    return np.int8(_T), np.int32(max(X.strides[1] // it, X.shape[0], 1))


@overload(gemm)
def _gemm(A, B, C):
    external = types.ExternalFunction("fastmf_" + _GEMM[C.dtype], _signature(C.dtype))
    real = np.float32 if C.dtype == types.float32 else np.float64

    def impl(A, B, C):
        tb, ldb = _fortran_view(B)
        ta, lda = _fortran_view(A)
        rows = _ref(np.int32(C.shape[1]))
        external(_ref(tb), _ref(ta), rows, _ref(np.int32(C.shape[0])), _ref(np.int32(A.shape[1])), _ref(real(1)),
                 B.ctypes, _ref(ldb), A.ctypes, _ref(lda), _ref(real(0)), C.ctypes,
                 _ref(np.int32(max(C.strides[0] // C.itemsize, C.shape[1], 1))))  # fmt: skip
        if carray(rows, 1)[0] < 0:
            raise BackendError

    return impl


@kernel
def _loop_gemm(ta, tb, m, n, k, A, lda, B, ldb, C, ldc):
    """Column-major C = op(A) op(B) (op transposes where ta or tb is 'T'), axpy order: the
    innermost loop runs down a column of C."""
    for j in range(n):
        for i in range(m):
            C[j * ldc + i] = 0
        for p in range(k):
            b = B[j * ldb + p] if tb == _N else B[p * ldb + j]
            if ta == _N:
                for i in range(m):
                    C[j * ldc + i] += A[p * lda + i] * b
            else:
                for i in range(m):
                    C[j * ldc + i] += A[i * lda + p] * b


def _loop_cfunc(real):
    """?gemm over `_loop_gemm` (alpha = 1, beta = 0: all `gemm` asks)."""

    @callback(_signature(real))
    def loop(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        ta, tb = transa[0], transb[0]
        size_a = lda[0] * (k[0] if ta == _N else m[0])
        size_b = ldb[0] * (n[0] if tb == _N else k[0])
        _loop_gemm(ta, tb, m[0], n[0], k[0], carray(a, size_a), lda[0], carray(b, size_b), ldb[0],
                   carray(c, ldc[0] * n[0]), ldc[0])  # fmt: skip

    return loop


def _refusal(real):
    """?gemm of a backend that could not be bound: it computes nothing and sets m to -1, a
    value no BLAS writes into its arguments, so `gemm` raises."""

    @callback(_signature(real))
    def refuse(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        m[0] = -1

    return refuse


def _mkl() -> str:
    found = glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")) + glob.glob(
        os.path.join(sys.prefix, "Library", "bin", "mkl_rt*.dll")
    )
    if not found:
        raise BackendError(
            'FASTMF_BLAS=mkl needs Intel MKL in this environment: pip install "fastmf-gd[mkl]" '
            "(or unset FASTMF_BLAS to use SciPy's BLAS)"
        )
    return found[0]


def _cfuncs(make) -> dict:
    """{real: address} of the cfuncs `make(real)` for both precisions, kept alive in `_bound`."""
    _bound["cfuncs"] = {real: make(real) for real in _GEMM}
    return {real: f.address for real, f in _bound["cfuncs"].items()}


def _addresses(backend: str) -> dict:
    """{real: address of its ?gemm} of `backend`, real one of numba's float64 and float32."""
    if backend == "loops":
        return _cfuncs(_loop_cfunc)
    if backend == "mkl":
        _bound["path"] = _mkl()
        lib = ctypes.CDLL(_bound["path"])
        return {real: ctypes.cast(getattr(lib, name + "_"), ctypes.c_void_p).value for real, name in _GEMM.items()}
    try:
        return {real: get_cython_function_address("scipy.linalg.cython_blas", name) for real, name in _GEMM.items()}
    except (ImportError, ValueError) as exc:
        raise BackendError(f"cannot load SciPy's BLAS (scipy.linalg.cython_blas): {exc}") from None


def bind(setting: str) -> None:
    """Point the kernels' gemm symbols at the backend FASTMF_BLAS names (`setting`, any case,
    "" for the default); once per process, before any kernel runs. A backend that cannot be
    bound is recorded, and every product then raises `BackendError` with the reason."""
    backend = _ALIASES.get(setting.lower(), setting.lower())
    try:
        if backend not in BACKENDS:
            raise BackendError(
                f"FASTMF_BLAS must be scipy (the default, alias openblas), mkl or loops, got {setting!r}"
            )
        addresses = _addresses(backend)
        path = _bound["path"] if backend == "mkl" else _scipy_blas() if backend == "scipy" else None
        _bound["local_threads"] = _mkl_local_threads(path)
    except BackendError as exc:
        backend, _bound["error"] = setting, str(exc)
        addresses = _cfuncs(_refusal)
    for real, address in addresses.items():
        llvm.add_symbol("fastmf_" + _GEMM[real], address)
    _bound["backend"] = backend


def _mkl_local_threads(path):
    """MKL's thread-local thread count setter where the library at `path` is MKL, else None."""
    if path is None:
        return None
    try:
        return ctypes.CDLL(path).MKL_Set_Num_Threads_Local  # (C, by value; the lower-case name takes a pointer)
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def one_thread():
    """Run the products of the calling thread on it alone while the block lasts, where the bound
    BLAS is MKL: MKL spreads even the split engine's products (blocks sized to stay in L2) over
    its threads, at a loss (at k = 10 on 2 cores, 26 us a step with 2 threads against 4.4 us
    with one), whether FASTMF_BLAS=mkl or SciPy's own BLAS is MKL (conda). Elsewhere it does
    nothing: OpenBLAS keeps products this small on one thread."""
    local_threads = _bound.get("local_threads")
    if local_threads is None:
        yield
        return
    before = local_threads(1)  # MKL's thread-local setting (0: follow the global one)
    try:
        yield
    finally:
        local_threads(before)


def error() -> str | None:
    """Why the backend FASTMF_BLAS names could not be bound, or None when it is bound."""
    return _bound["error"]


def _dladdr(address: int) -> str | None:
    """The file of the loaded library that holds `address` (dladdr; None where there is none)."""

    class Info(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p),
                    ("saddr", ctypes.c_void_p)]  # fmt: skip

    if os.name != "posix":
        return None
    for lib in (None, ctypes.util.find_library("dl")):  # libc since glibc 2.34, libdl before
        dladdr, found = getattr(ctypes.CDLL(lib), "dladdr", None), Info()
        if dladdr is None:
            continue
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(Info)]
        if not dladdr(address, ctypes.byref(found)) or not found.fname:
            return None
        return os.path.realpath(os.fsdecode(found.fname))
    return None


def _scipy_blas() -> str | None:
    """The file of the BLAS that SciPy's cython_blas calls: the library its own dependencies
    resolve dgemm to (dlsym on its handle, then dladdr); None where that cannot be told."""
    import scipy.linalg.cython_blas

    lib = ctypes.CDLL(scipy.linalg.cython_blas.__file__)
    for name in ("scipy_dgemm_", "dgemm_", "dgemm"):  # OpenBLAS of SciPy's wheels, Fortran, C
        if hasattr(lib, name):
            return _dladdr(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
    return None


def info() -> dict:
    """Who computes the kernels' products.

    Returns
    -------
    dict
        ``backend`` (as FASTMF_BLAS named it), ``library`` (the file of the BLAS library that
        runs; for "scipy" the one SciPy calls), ``version`` and ``threads`` (from threadpoolctl,
        the `cli` extra; None without it or for a library it does not know), and ``error``
        (why the backend could not be bound; None when it is).
    """
    out = {"backend": _bound["backend"], "library": None, "version": None, "threads": None, "error": error()}
    if out["error"] is not None:
        return out
    if out["backend"] == "loops":
        return out | {"library": "fastmf loops (no BLAS)", "threads": 1}
    path = _bound["path"] if out["backend"] == "mkl" else _scipy_blas()
    out["library"] = path
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return out
    for lib in threadpool_info():
        if path is not None and os.path.realpath(lib["filepath"]) == os.path.realpath(path):
            return out | {"version": lib["version"], "threads": lib["num_threads"]}
    return out
