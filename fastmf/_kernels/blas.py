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
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, lower_builtin, type_callable

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

    Compiled code calls the bound backend (`_gemm_lower`); this body runs only without the JIT
    (NUMBA_DISABLE_JIT=1).
    """
    np.dot(A, B, out=C)


@intrinsic
def _ref(typingctx, value):
    """A pointer to a stack slot holding `value`: how compiled code passes a scalar to Fortran."""

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once_value(builder, args[0])

    return types.CPointer(value)(value), codegen


def _largest(builder, *values):
    """The largest of the signed integer values (LLVM IR)."""
    top = values[0]
    for value in values[1:]:
        top = builder.select(builder.icmp_signed(">", value, top), value, top)
    return top


def _fortran_view(builder, array, itemsize):
    """(op, leading dimension) of row-major `array`'s memory read as a column-major matrix, as
    int8 and int32 values: that matrix is X^T ('N' gives it) when X's rows are contiguous, else X
    itself ('T'). `array` is the struct of a 2-D array (`cgutils.create_struct_proxy`)."""
    i32, i8 = ir.IntType(32), ir.IntType(8)
    (n0, n1), (s0, s1) = cgutils.unpack_tuple(builder, array.shape), cgutils.unpack_tuple(builder, array.strides)
    size, one = ir.Constant(s0.type, itemsize), ir.Constant(n0.type, 1)
    rows_contiguous = builder.icmp_signed("==", s1, size)
    ld = builder.select(rows_contiguous, _largest(builder, builder.sdiv(s0, size), n1, one),
                        _largest(builder, builder.sdiv(s1, size), n0, one))  # fmt: skip
    op = builder.select(rows_contiguous, ir.Constant(i8, _N), ir.Constant(i8, _T))
    return op, builder.trunc(ld, i32)


@type_callable(gemm)
def _gemm_type(context):
    def typer(A, B, C):
        arrays = (A, B, C)
        if all(isinstance(X, types.Array) and X.ndim == 2 for X in arrays) and A.dtype == B.dtype == C.dtype in _GEMM:
            return types.none

    return typer


@lower_builtin(gemm, types.Array, types.Array, types.Array)
def _gemm_lower(context, builder, signature, args):
    """`gemm` in compiled code: a call of fastmf_?gemm (C^T = B^T A^T in Fortran's terms),
    emitted in place: no function of its own to compile for each layout of A, B and C."""
    proxies = zip(signature.args, args, strict=True)
    A, B, C = (cgutils.create_struct_proxy(ty)(context, builder, value=value) for ty, value in proxies)
    real = signature.args[2].dtype
    itemsize = context.get_abi_sizeof(context.get_data_type(real))
    i32, fp = ir.IntType(32), context.get_value_type(real)
    ta, lda = _fortran_view(builder, A, itemsize)
    tb, ldb = _fortran_view(builder, B, itemsize)
    (c0, c1), (cs0, _) = cgutils.unpack_tuple(builder, C.shape), cgutils.unpack_tuple(builder, C.strides)
    ldc = _largest(builder, builder.sdiv(cs0, ir.Constant(cs0.type, itemsize)), c1, ir.Constant(c1.type, 1))
    inner = cgutils.unpack_tuple(builder, A.shape)[1]
    values = (tb, ta, builder.trunc(c1, i32), builder.trunc(c0, i32), builder.trunc(inner, i32), ir.Constant(fp, 1.0))
    slots = [cgutils.alloca_once_value(builder, v) for v in values]
    rows = slots[2]
    args = [*slots, B.data, cgutils.alloca_once_value(builder, ldb), A.data, cgutils.alloca_once_value(builder, lda),
            cgutils.alloca_once_value(builder, ir.Constant(fp, 0.0)), C.data,
            cgutils.alloca_once_value(builder, builder.trunc(ldc, i32))]  # fmt: skip
    fnty = ir.FunctionType(ir.VoidType(), [arg.type for arg in args])
    builder.call(cgutils.get_or_insert_function(builder.module, fnty, "fastmf_" + _GEMM[real]), args)
    with cgutils.if_unlikely(builder, builder.icmp_signed("<", builder.load(rows), ir.Constant(i32, 0))):
        context.call_conv.return_user_exc(builder, BackendError, ())
    return context.get_dummy_value()


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


# kernels compile or load on their first call, and each module that calls `gemm` imports this one
# first: the BLAS is bound before any of them runs
bind(os.environ.get("FASTMF_BLAS", ""))
