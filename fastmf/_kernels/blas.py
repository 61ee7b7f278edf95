"""The matrix products of every kernel, and the one setting that picks who computes them.

Kernels call `gemm(A, B, C)` (C = A B, any of A, B a transposed view). It compiles to a
call of two external symbols, fastmf_cblas_dgemm and fastmf_cblas_sgemm, which `bind`
points, once per process and before any kernel runs, at the cblas_?gemm of one backend:

* "openblas" (default): the OpenBLAS that SciPy ships (what numba's np.dot calls);
* "mkl": Intel MKL's libmkl_rt, from the `mkl` package (``pip install "fastmf-gd[mkl]"``);
* "loops": plain compiled loops (`_loop_gemm`), no BLAS at all.

The environment variable FASTMF_BLAS chooses (read when fastmf is imported). Compiled and
cached kernels refer to the symbols by name, so one cache serves every backend. Which
library ran and with how many threads: `fastmf.blas_info()` (threadpoolctl). The one LAPACK
call (the rare eigh fallback of `spectral.py`) stays with numba's, on SciPy's OpenBLAS.
"""

import ctypes
import glob
import os
import sys

import llvmlite.binding as llvm
import numpy as np
from numba import carray, cfunc, njit, types
from numba.extending import overload

BACKENDS = ("openblas", "mkl", "loops")
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _signature(real):
    i, p = types.intc, types.intp
    return types.void(i, i, i, i, i, i, real, p, i, p, i, real, p, i)


_EXTERNAL = {
    np.dtype(np.float64): types.ExternalFunction("fastmf_cblas_dgemm", _signature(types.float64)),
    np.dtype(np.float32): types.ExternalFunction("fastmf_cblas_sgemm", _signature(types.float32)),
}


def gemm(A, B, C):
    """C = A B (float32 or float64, C C-contiguous, A and B each C- or F-contiguous).

    Compiled code calls the bound backend (`_gemm`); this body runs only without the JIT
    (NUMBA_DISABLE_JIT=1).
    """
    np.dot(A, B, out=C)


@overload(gemm)
def _gemm(A, B, C):
    external = _EXTERNAL[np.dtype(C.dtype.name)]

    def impl(A, B, C):
        m, k = A.shape
        it = A.itemsize
        ta, lda = (_NO_TRANS, A.strides[0] // it) if A.strides[1] == it else (_TRANS, A.strides[1] // it)
        tb, ldb = (_NO_TRANS, B.strides[0] // it) if B.strides[1] == it else (_TRANS, B.strides[1] // it)
        ldc = C.strides[0] // it
        external(_ROW_MAJOR, ta, tb, m, C.shape[1], k, 1.0, A.ctypes.data, max(lda, k if ta == _NO_TRANS else m, 1),
                 B.ctypes.data, max(ldb, C.shape[1] if tb == _NO_TRANS else k, 1), 0.0, C.ctypes.data,
                 max(ldc, C.shape[1], 1))  # fmt: skip

    return impl


@njit(cache=True, nogil=True)
def _loop_gemm(ta, tb, m, n, k, A, lda, B, ldb, C, ldc):
    """C = op(A) op(B) (row-major), axpy order: the innermost loop runs along a row of C."""
    for i in range(m):
        for j in range(n):
            C[i * ldc + j] = 0
        for p in range(k):
            a = A[i * lda + p] if ta == _NO_TRANS else A[p * lda + i]
            if tb == _NO_TRANS:
                for j in range(n):
                    C[i * ldc + j] += a * B[p * ldb + j]
            else:
                for j in range(n):
                    C[i * ldc + j] += a * B[j * ldb + p]


def _loop_cfunc(real):
    """cblas_?gemm's signature over `_loop_gemm` (alpha = 1, beta = 0: all `gemm` asks)."""
    ptr, i = types.CPointer(real), types.intc

    @cfunc(types.void(i, i, i, i, i, i, real, ptr, i, ptr, i, real, ptr, i), cache=True)
    def loop(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        rows_a = m if ta == _NO_TRANS else k
        rows_b = k if tb == _NO_TRANS else n
        _loop_gemm(ta, tb, m, n, k, carray(a, rows_a * lda), lda, carray(b, rows_b * ldb), ldb,
                   carray(c, m * ldc), ldc)  # fmt: skip

    return loop


def _library_address(backend: str, name: str) -> int:
    if backend == "mkl":
        found = glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")) + glob.glob(
            os.path.join(sys.prefix, "Library", "bin", "mkl_rt*.dll")
        )
        if not found:
            raise ImportError(
                'FASTMF_BLAS=mkl needs Intel MKL in this environment: pip install "fastmf-gd[mkl]" '
                "(or unset FASTMF_BLAS for SciPy's OpenBLAS)"
            )
        _bound["path"] = found[0]
        return ctypes.cast(getattr(ctypes.CDLL(found[0]), name), ctypes.c_void_p).value
    import scipy

    found = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs", "libscipy_openblas*"))
    if not found:
        raise ImportError("cannot find the OpenBLAS that SciPy ships (scipy.libs/libscipy_openblas*)")
    _bound["path"] = found[0]
    return ctypes.cast(getattr(ctypes.CDLL(found[0]), "scipy_" + name), ctypes.c_void_p).value


_bound = {}  # the backend, its library's path, and the loop cfuncs (kept alive here)


def bind(backend: str) -> None:
    """Point the kernels' gemm symbols at `backend`'s; once per process, before any kernel runs."""
    if backend not in BACKENDS:
        raise ValueError(f"FASTMF_BLAS must be one of {', '.join(BACKENDS)}, got {backend!r}")
    for real, name in ((types.float64, "cblas_dgemm"), (types.float32, "cblas_sgemm")):
        if backend == "loops":
            _bound[name] = _loop_cfunc(real)
            address = _bound[name].address
        else:
            address = _library_address(backend, name)
        llvm.add_symbol("fastmf_" + name, address)
    _bound["backend"] = backend


def info() -> dict:
    """{"backend": ..., "library": ..., "version": ..., "threads": ...}; library details
    come from threadpoolctl when it is installed (the `cli` extra)."""
    backend = _bound["backend"]
    out = {"backend": backend, "library": "fastmf loops" if backend == "loops" else None, "threads": 1}
    if backend == "loops":
        return out
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return out | {"library": backend, "threads": None}
    for lib in threadpool_info():
        if os.path.realpath(lib["filepath"]) == os.path.realpath(_bound["path"]):
            return out | {"library": lib["filepath"], "version": lib["version"], "threads": lib["num_threads"]}
    return out
