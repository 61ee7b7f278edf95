"""GD in the original basis (Ye and Du 2021, eqs 2-3), streaming Sigma once per step.

    U+ = U + lr R V,   V+ = V + lr R^T U,   R = Sigma - U V^T

is computed as U+ = U (I - lr V^T V) + lr Sigma V and V+ = V (I - lr U^T U) + lr Sigma^T U:
the same update with 4 m n k flops a step instead of 6, and R never formed. The GD variants
change the k x k factors and multiply Sigma V, Sigma^T U by ScaledGD's (G + lam I)^-1
(`blocks.step_factor`); alternating updates pay a second pass for Sigma^T U+. Both products
come from one pass over Sigma in row blocks (`products`), each block's part of Sigma^T U
added while the block is in cache. The run is at an internal scale c, a power of 4 (`fastmf.scaling`):
the kernel's U, V, lr are U / sqrt(c), V / sqrt(c), lr c, and Sigma is used as Sigma / c by
multiplying each product with Sigma by `sc` = 1 / c, which is exact. The loss is recorded
from the same pass by

    2 f = ||Sigma||_F^2 - 2 <U, Sigma V> + <U^T U, V^T V>,

whose rounding error is a few eps ||Sigma||_F^2; when 2 f falls below `exact_below`
||Sigma||_F^2 (the caller's choice: the identity would lose digits) the step pays a second
pass that sums the squares of R block by block (`residual_norm2`, 2 m n k flops more).

Products go to BLAS (`blas.gemm`, the BLAS SciPy calls by default), which uses its own threads: a
block of 2 MiB keeps the packed panels in cache (benchmarks/compare.py section 8 measures
the choice). Kernels are pure; float32 arrays stay float32, sums of squares are float64.
"""

import numpy as np

from ._jit import kernel
from .blas import gemm
from .blocks import _add, _copy, _due, overflows, scaled_rows, step_factor
from .fpmode import flush
from .layout import ALTERNATING, BAD_STEP, CONVERGED, DIVERGED, IMBALANCE, LOSS, N_RECORDS, PRECONDITION, STATUS, STEP

# elements of Sigma per row block: 2 MiB of float64
_BLOCK_ELEMS = 1 << 18


@kernel(entry=True)
def block_rows(n):
    """Rows of Sigma per block (at least 8, so that BLAS sees a real matrix)."""
    return max(8, _BLOCK_ELEMS // n)


@kernel
def _times(A, sc):
    """A *= sc (a power of 2: exact)."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] *= sc


@kernel
def products(S, sc, U, V, SV, STU, T, left):
    """SV = (sc Sigma) V (if `left`) and STU = (sc Sigma)^T U in one pass over Sigma; T is (n, k) work.

    sc multiplies the products (exact); the caller keeps it where no product of an entry of
    Sigma with one of U or V can leave the dtype's range (`fastmf.direct.DirectRun`)."""
    m = S.shape[0]
    b = block_rows(S.shape[1])
    for lo in range(0, m, b):
        hi = min(m, lo + b)
        if left:
            gemm(S[lo:hi], V, SV[lo:hi])
            if sc != 1.0:
                _times(SV[lo:hi], sc)
        if lo == 0:
            gemm(S[lo:hi].T, U[lo:hi], STU)
        else:
            gemm(S[lo:hi].T, U[lo:hi], T)
            _add(T, STU)
    if sc != 1.0:
        _times(STU, sc)


@kernel(entry=True)
def absmax(S):
    """max |Sigma_ij| (for the choice of the internal scale)."""
    out = 0.0
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            out = max(out, abs(np.float64(S[i, j])))
    return out


@kernel(entry=True)
def norm2(S, sc):
    """||sc Sigma||_F^2, summed in float64."""
    total = 0.0
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            x = np.float64(S[i, j] * sc)
            total += x * x
    return total


@kernel
def residual_norm2(S, sc, U, V, B):
    """||sc Sigma - U V^T||_F^2 summed block by block in float64; B is (block_rows, n) work."""
    m, n = S.shape
    b = B.shape[0]
    total = 0.0
    for lo in range(0, m, b):
        hi = min(m, lo + b)
        Bb = B[: hi - lo]
        gemm(U[lo:hi], V.T, Bb)
        for i in range(hi - lo):
            for j in range(n):
                r = S[lo + i, j] * sc - Bb[i, j]
                total += r * r
    return total


@kernel
def _frob_inner(A, B):
    """<A, B> in float64."""
    total = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            total += np.float64(A[i, j]) * np.float64(B[i, j])
    return total


@kernel
def _update(X, H, lr, P, Xn):
    """Xn = X H + lr P, subnormals flushed to zero (`fpmode`)."""
    gemm(X, H, Xn)
    for i in range(X.shape[0]):
        for a in range(X.shape[1]):
            Xn[i, a] += lr * P[i, a]
    flush(Xn)


@kernel
def _side_update(X, H, lr, SX, Xn, scaled, Pinv, SP):
    """Xn = X H + lr SX (SX = Sigma V or Sigma^T U), with ScaledGD (`scaled`) + lr SX P^-1 (SP: work alike SX)."""
    if scaled:
        scaled_rows(SX, Pinv, SP)
        _update(X, H, lr, SP, Xn)
    else:
        _update(X, H, lr, SX, Xn)


@kernel(entry=True)
def run_direct(
    S, sc, s2, exact_below, U, V, lrs, variant, tol, t_stop, t_final, record_every, Uw, Vw, SV, STU, T, G, P, noise,
    B, steps, rec, info,
):  # fmt: skip
    """Advance GD (eqs 2-3, or a variant) from step info[STEP] to t_stop; the conventions of
    `blocks.run_blocks` (lrs; variant or None; noise: None, or its ZU, ZV in original coordinates and
    two unused arrays).

    S : (m, n) Sigma, used as sc Sigma (sc = 1 / c, see above); s2 = ||sc Sigma||_F^2.
    U, V : (m, k), (n, k) state, updated in place;
    Uw, Vw alike, SV (m, k), STU and T (n, k), G (8, k, k) and B (block_rows(n), n) work;
    P : (SVP, STUP) work alike SV and STU with ScaledGD, else of length 0.
    A recorded row holds the loss (column LOSS) and the imbalance ||U^T U - V^T V||_F
    (column IMBALANCE), its only columns (no split diagnostics). A new state with (||U||^2 + ||V||^2)^2 not
    finite stops with DIVERGED, leaving the last finite state in U, V.
    """
    GU, GV, HU, HV, A, C, PU, PV = G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7]
    SVP, STUP = P
    alternating = scaled = False
    if variant is not None:
        alternating, scaled = variant[ALTERNATING] != 0, variant[PRECONDITION] >= 0
    k = U.shape[1]
    t = t0 = info[STEP]
    gemm(U.T, U, GU)
    gemm(V.T, V, GV)
    swapped = False
    while True:
        due = _due(t, t_stop, t_final, record_every)
        if due or t < t_stop:
            products(S, sc, U, V, SV, STU, T, True)
        if due:
            f2 = s2 - 2.0 * _frob_inner(U, SV) + _frob_inner(GU, GV)
            if f2 < exact_below * s2:
                f2 = residual_norm2(S, sc, U, V, B)
            imb = 0.0
            for a in range(k):
                for b in range(k):
                    d = np.float64(GU[a, b]) - np.float64(GV[a, b])
                    imb += d * d
            j = info[N_RECORDS]
            rec[j, LOSS] = 0.5 * f2
            rec[j, IMBALANCE] = np.sqrt(imb)
            steps[j] = t
            info[N_RECORDS] = j + 1
            if 0.5 * f2 <= tol:
                info[STATUS] = CONVERGED
                break
        if t >= t_stop:
            break
        lr = lrs[min(t - t0, lrs.shape[0] - 1)]
        step_factor(GV, GU, lr, variant, HU, PU, C, A)
        if not alternating:
            step_factor(GU, GV, lr, variant, HV, PV, C, A)
        _side_update(U, HU, lr, SV, Uw, scaled, PU, SVP)
        if alternating:  # the V side steps from the new U: its Gram and Sigma^T U again
            gemm(Uw.T, Uw, GU)
            step_factor(GU, GV, lr, variant, HV, PV, C, A)
            products(S, sc, Uw, V, SV, STU, T, False)
        _side_update(V, HV, lr, STU, Vw, scaled, PV, STUP)
        if noise is not None:
            _add(noise[0][t - t0], Uw)
            _add(noise[2][t - t0], Vw)
        gemm(Uw.T, Uw, GU)
        gemm(Vw.T, Vw, GV)
        if overflows(GU, GV):
            info[STATUS] = DIVERGED
            info[BAD_STEP] = t + 1
            break
        U, Uw = Uw, U
        V, Vw = Vw, V
        swapped = not swapped
        t += 1
        info[STEP] = t
    if swapped:  # the caller's U is our Uw: leave the state where it was passed in
        _copy(U, Uw)
        _copy(V, Vw)
