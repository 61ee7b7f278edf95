"""Certified extreme eigenvalues of small symmetric matrices, warm-started (docs/maths.md section 4).

The diagnostics the proofs track (sigma_d(A), lambda_d(P), ||P||_op, ||J||_op, ...) are
extreme eigenvalues of r x r or k x k matrices that change little from one record to the
next. Each is tracked by its eigenvector: the previous vector's Rayleigh quotient is taken
as it is where it is certified to 1e-14 n 2^e (mostly: the matrices move little), else one or
two Rayleigh quotient iteration steps (a pivoted LU solve) from it. The Rayleigh quotient
theta of a unit vector always lies inside the spectrum, so for the smallest eigenvalue
theta >= lambda_min, and a successful Cholesky factorization of M - (theta - delta) I
proves lambda_min >= theta - delta: the value is certified to within delta (likewise for
the largest, with (theta + delta) I - M). delta = 1e-12 n 2^e <= 1e-12 n max|M_ij|, 2^e the
power of two with max|M_ij| / 2 < 2^e <= max|M_ij|, far above the rounding of
the factorization (about n eps ||M||), or the resolution of M if that is larger. When a
certificate fails (first call, or an eigenvalue crossing), LAPACK's dsyev gives the exact
value and a new vector (called directly: numba's eigh would add about 2 s to the first
compilation of the kernels).

Measured at r = k = 16 on a 2-core AMD EPYC (Zen 4): about 0.7 us a value where the tracked
vector certifies as it is (0.45 us of it the Cholesky certificate), about 2.2 us with an iteration step.
"""

import math

import llvmlite.binding as llvm
import numpy as np
from numba import carray, types
from numba.extending import get_cython_function_address, overload

from ._jit import kernel
from .blas import _ref, gemm

REL_TOL = 1e-12
# the tracked vector's own Rayleigh quotient is taken only where certified to within AS_IS_TOL n 2^e (or
# the floor): about what an iteration step gives, so that a value does not depend on whether one was taken
AS_IS_TOL = 1e-14
_RQI_STEPS = 2


@kernel
def gram(T, rows, cols, G):
    """G[:cols, :cols] = T[:rows, :cols]^T T[:rows, :cols], every entry summed over the rows in order
    (axpy order: contiguous inner loop), as the stage tests need (`stages`)."""
    for i in range(cols):
        for j in range(cols):
            G[i, j] = 0.0
    for c in range(rows):
        for i in range(cols):
            t = T[c, i]
            for j in range(cols):
                G[i, j] += t * T[c, j]


@kernel
def blas_gram(T, rows, cols, G):
    """`gram` by `gemm` (float64), made exactly symmetric: T's columns from cols on are set to 0
    and G (n x n, n = T's columns) gets the Gram padded with zeros (whole rows of T: one compiled
    kind of `gemm` call)."""
    for c in range(rows):
        for j in range(cols, T.shape[1]):
            T[c, j] = 0.0
    gemm(T[:rows].T, T[:rows], G)
    for i in range(cols):
        for j in range(i):
            G[j, i] = G[i, j]


@kernel
def posdef(M, n, c, sign, L):
    """Is c I + sign M[:n, :n] positive definite? (Cholesky into the work matrix L; NaN fails.)

    The rows below a pivot are formed two at a time: two independent sums in flight (each still
    in the order p = 0, 1, ..., so the factor is bitwise the same as row by row), 18% less time
    at n = 16, where the factorizations are latency chains."""
    for j in range(n):
        Lj = L[j]
        d = c + sign * M[j, j]
        for p in range(j):
            d -= Lj[p] * Lj[p]
        if not d > 0.0:
            return False
        Lj[j] = np.sqrt(d)
        inv = 1.0 / Lj[j]
        i = j + 1
        while i + 1 < n:
            La, Lb = L[i], L[i + 1]
            va, vb = sign * M[i, j], sign * M[i + 1, j]
            for p in range(j):
                f = Lj[p]
                va -= La[p] * f
                vb -= Lb[p] * f
            La[j], Lb[j] = va * inv, vb * inv
            i += 2
        if i < n:  # the last row, when an odd number are below the pivot
            Li = L[i]
            v = sign * M[i, j]
            for p in range(j):
                v -= Li[p] * Lj[p]
            Li[j] = v * inv
    return True


@kernel
def _shifted_solve(M, n, theta, x, W):
    """x[:n] <- (M[:n, :n] - theta I)^{-1} x[:n] by LU with partial pivoting in W; exact zero
    pivots are nudged to eps ||M||, as is usual in inverse iteration."""
    tiny = 0.0
    for i in range(n):
        for j in range(n):
            W[i, j] = M[i, j]
            tiny = max(tiny, abs(M[i, j]))
        W[i, i] -= theta
    tiny = max(tiny * 2.2e-16, 1e-300)
    for k in range(n):
        p = k
        for i in range(k + 1, n):
            if abs(W[i, k]) > abs(W[p, k]):
                p = i
        if p != k:
            for j in range(k, n):
                W[k, j], W[p, j] = W[p, j], W[k, j]
            x[k], x[p] = x[p], x[k]
        if abs(W[k, k]) < tiny:
            W[k, k] = tiny
        inv = 1.0 / W[k, k]
        for i in range(k + 1, n):
            f = W[i, k] * inv
            for j in range(k + 1, n):
                W[i, j] -= f * W[k, j]
            x[i] -= f * x[k]
    for i in range(n - 1, -1, -1):
        acc = x[i]
        for j in range(i + 1, n):
            acc -= W[i, j] * x[j]
        x[i] = acc / W[i, i]


@kernel
def _rayleigh(M, n, v):
    acc = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += M[i, j] * v[j]
        acc += v[i] * row
    return acc


@kernel
def _normalize(v, n):
    nrm = 0.0
    for i in range(n):
        nrm += v[i] * v[i]
    nrm = np.sqrt(nrm)
    if not (nrm > 0.0 and np.isfinite(nrm)):
        return False
    for i in range(n):
        v[i] /= nrm
    return True


def _eigh(A, w, work):
    """Eigenvalues of the symmetric n x n C array A into w (ascending) and their unit
    eigenvectors into the rows of A; returns LAPACK's info (0: done). Compiled code calls
    LAPACK's dsyev (`_eigh_lapack`); this body runs only without the JIT."""
    w[:], V = np.linalg.eigh(A)
    A[:] = V.T
    return 0


_DSYEV = types.ExternalFunction(
    "fastmf_dsyev",
    types.void(*(types.CPointer(t) for t in (types.int8, types.int8, types.intc, types.float64, types.intc,
                                             types.float64, types.float64, types.intc, types.intc))),
)  # fmt: skip
llvm.add_symbol("fastmf_dsyev", get_cython_function_address("scipy.linalg.cython_lapack", "dsyev"))


_JOBZ, _UPLO = ord("V"), ord("L")  # eigenvectors too, from the lower triangle (constants: no string code compiled)


@overload(_eigh)
def _eigh_lapack(A, w, work):
    def impl(A, w, work):
        n = _ref(np.int32(A.shape[0]))
        info = _ref(np.int32(0))
        # column-major A is row-major A^T = A: its columns, the eigenvectors, are our rows
        _DSYEV(_ref(np.int8(_JOBZ)), _ref(np.int8(_UPLO)), n, A.ctypes, n, w.ctypes, work.ctypes,
               _ref(np.int32(work.shape[0])), info)  # fmt: skip
        return carray(info, 1)[0]

    return impl


@kernel
def extreme_eig(M, n, want_max, floor, v, valid, slot, S, W, L):
    """Smallest (or largest, if want_max) eigenvalue of the symmetric M[:n, :n], certified to
    within max(REL_TOL n 2^e, floor) (2^e below); v[:n] is the tracked eigenvector, valid[slot]
    says if it holds one. M, S, W, L are float64 C arrays of at least n x n (one compiled
    version); the work happens on S = M / 2^e, 2^e the power of two with 1 <= max|S_ij| < 2
    (exact), so that a Gram of a vanishing complement (entries 1e-178 and below)
    neither underflows nor hits subnormals.

    `floor` is the resolution at which M itself is known: a matrix formed by cancellation
    (P = diag(s) - sym(Up Vp^T) near convergence) is rounding noise below it, and its
    eigenvectors change arbitrarily from step to step.
    """
    top = 0.0
    for i in range(n):  # (row by row: the rows' maxima are independent chains, which overlap)
        top_i = 0.0
        for j in range(n):
            top_i = max(top_i, abs(M[i, j]))
        top = max(top, top_i)
    if not top > 0.0:  # an exactly zero matrix (NaN cannot reach here: the kernels stop first)
        return 0.0
    scale = math.ldexp(1.0, math.frexp(top)[1] - 1)  # a power of two: the scaling is exact
    inv = 1.0 / scale  # (infinite for a subnormal scale, which then divides)
    for i in range(n):
        for j in range(n):
            S[i, j] = M[i, j] / scale if inv == np.inf else M[i, j] * inv
    delta = max(REL_TOL * n, floor / scale)
    sign = -1.0 if want_max else 1.0
    if valid[slot]:
        theta = _rayleigh(S, n, v)
        tol = max(AS_IS_TOL * n, floor / scale)  # the tracked vector itself first: mostly it is already close enough
        for steps in range(_RQI_STEPS + 1):
            c = theta + tol if want_max else -(theta - tol)
            if posdef(S, n, c, sign, L):
                return theta * scale
            if steps == _RQI_STEPS:
                break
            _shifted_solve(S, n, theta, v, W)
            if not _normalize(v, n):
                break
            theta = _rayleigh(S, n, v)
            tol = delta
    value = _eigh_extreme(S, n, want_max, v)
    if not np.isnan(value):
        valid[slot] = 1
    return value * scale


@kernel(_nrt=True)
def _eigh_extreme(S, n, want_max, v):
    """The smallest (or largest) eigenvalue of the symmetric S[:n, :n] by LAPACK (`_eigh`), its unit
    eigenvector into v[:n]; NaN where S has a non-finite entry or LAPACK fails. The one kernel that
    allocates (LAPACK's arrays, on the rare path where the tracked vector does not certify), so the
    one compiled with Numba's reference counting (`_jit.kernel`)."""
    A = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            if not np.isfinite(S[i, j]):  # never raise from inside a run: report the value as unknown
                return np.nan
            A[i, j] = S[i, j]
    w = np.empty(n)
    if _eigh(A, w, np.empty(66 * n)) != 0:  # (66 n: dsyev's blocked workspace)
        return np.nan
    idx = n - 1 if want_max else 0
    for i in range(n):
        v[i] = A[idx, i]
    return w[idx]
