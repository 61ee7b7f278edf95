"""The quantities the proofs track, from the stacked state only (docs/maths.md section 4).

With A = (Up + Vp) / 2 and B = (Up - Vp) / 2 (r x k), E = diag(s) - Up Vp^T = P + Q where
P = diag(s) - A A^T + B B^T = (E + E^T) / 2 and Q = A B^T - B A^T = (E - E^T) / 2, so P
and Q come free with the E the loss already forms. Columns of a record row:

    loss, imbalance                       always (exact)
    loss_E, loss_Up_LV, loss_LU_Vp,       the four blocks of the loss, each 1/2 ||.||_F^2
    loss_LU_LV, B_fro, Q_fro              (exact)
    sigma_min_A, lambda_min_P, P_op,      spectral, certified (spectral.py): eigenvalues of
    J_op, K_op, E_op                      the matrix M behind them to 1e-12 ||M||_F, or to
                                          2.2e-13 ||s|| for A A^T and P (2.2e-13 ||s|| for
                                          E_op) when that is larger; NaN off the spectral stride

sigma_min_A is the smallest of the min(r, k) singular values of A (square root of the
smallest eigenvalue of A A^T or A^T A), J_op and K_op the largest singular values of
L_U and L_V (relative accuracy kept down to the smallest doubles for a compressed
complement; a full one reads 0 once its Gram underflows, below about 1e-154),
E_op = ||Sigma - U V^T||_op restricted to the principal block.
"""

import numpy as np

from ._jit import kernel
from .blas import gemm
from .spectral import extreme_eig, posdef

KEYS = (
    "loss", "imbalance", "loss_E", "loss_Up_LV", "loss_LU_Vp", "loss_LU_LV", "B_fro", "Q_fro",
    "sigma_min_A", "lambda_min_P", "P_op", "J_op", "K_op", "E_op",
)  # fmt: skip
N_KEYS = len(KEYS)
N_CHEAP = 8  # KEYS[:N_CHEAP] need no eigenvalue
N_TRACKED = 6  # eigenvectors tracked between records, one per extreme eigenvalue:
# lambda_min(A A^T), lambda_min(P), lambda_max(P), lambda_max(GUc), lambda_max(GVc), lambda_max(E^T E),
# of the work matrices D[1], D[0], D[0], D[5], D[6], D[2]
_MATRIX = (1, 0, 0, 5, 6, 2)
_LARGEST = (False, False, True, True, True, True)
# info[] slots for the stages (-1 until reached), after blocks.STEP .. BAD_STEP
T1, T0 = 4, 5
N_INFO = 6


@kernel
def _gram(T, rows, cols, G):
    """G[:cols, :cols] = T[:rows, :cols]^T T[:rows, :cols] (axpy order: contiguous inner loop)."""
    for i in range(cols):
        for j in range(cols):
            G[i, j] = 0.0
    for c in range(rows):
        for i in range(cols):
            t = T[c, i]
            for j in range(cols):
                G[i, j] += t * T[c, j]


@kernel
def _gram_A(X, Y, r, k, G, T):
    """G = A A^T (r <= k) or A^T A (k < r), whose eigenvalues are sigma_i(A)^2; T is work."""
    if r <= k:  # A^T stored in T (k x r)
        for i in range(r):
            for c in range(k):
                T[c, i] = 0.5 * (X[i, c] + Y[i, c])
        _gram(T, k, r, G)
    else:
        for i in range(r):
            for c in range(k):
                T[i, c] = 0.5 * (X[i, c] + Y[i, c])
        _gram(T, r, k, G)


@kernel
def _complement_gram(X, r, Gc, out, T):
    """out * scale^2 = L^T L for the complement rows L = X[r:]; returns scale.

    A compressed complement (at most k rows) is scaled by max|L| before its Gram is formed,
    so that J_op stays accurate to its last digits long after L^T L itself underflows
    (below about 1e-154); a full one uses the kernel's Gram Gc (read 0 below that).
    """
    rows, k = X.shape[0] - r, X.shape[1]
    scale = 0.0
    if rows <= k:
        for i in range(rows):
            for c in range(k):
                scale = max(scale, abs(X[r + i, c]))
    if rows > k or scale == 0.0 or scale > 1e-140:  # Gc is exact: nothing near underflow
        for i in range(k):
            for j in range(k):
                out[i, j] = Gc[i, j]
        return 1.0
    for i in range(rows):
        for c in range(k):
            T[i, c] = X[r + i, c] / scale
    _gram(T, rows, k, out)
    return scale


@kernel
def record(X, Y, s, N, GUc, M, GVc, E, t, spectral, row, D, vecs, valid, info):
    """Fill `row` (KEYS) for the stacked state (X, Y) at step t and return the loss.

    N = X^T X, M = Y^T Y and the complement Grams GUc, GVc are given; E is (r, r) work
    and ends up holding Up Vp^T. D is (8, n, n) float64 work with n = max(r, k); vecs
    (N_TRACKED, n) and valid (N_TRACKED,) carry the tracked eigenvectors from record to
    record. Stages are checked exactly (Cholesky of the shifted matrix) while pending:
    info[T1] = t when sigma_min(A)^2 >= sigma_d / 2, then info[T0] = t when
    -sigma_d / 4 <= P <= sigma_d / 4 (Ye and Du 2021, Theorem 3.1).
    """
    r = s.shape[0]
    k = X.shape[1]
    p = min(r, k)
    gemm(X[:r], Y[:r].T, E)
    # the four blocks of the loss (docs/maths.md section 3), each a sum of squares: ||diag(s) - E||^2,
    # then <GUp, GVc>, <GUc, GVp>, <GUc, GVc> with GUp = N - GUc, GVp = M - GVc
    e2 = 0.0
    q2 = 0.0
    for i in range(r):
        for j in range(r):
            e = (s[i] if i == j else 0.0) - E[i, j]
            e2 += e * e
            q = 0.5 * (E[j, i] - E[i, j])
            q2 += q * q
    up_lv = 0.0
    lu_vp = 0.0
    lu_lv = 0.0
    imb = 0.0
    for a in range(k):
        for b in range(k):
            up_lv += (N[a, b] - GUc[a, b]) * GVc[a, b]
            lu_vp += GUc[a, b] * (M[a, b] - GVc[a, b])
            lu_lv += GUc[a, b] * GVc[a, b]
            d = N[a, b] - M[a, b]
            imb += d * d
    b2 = 0.0
    for i in range(r):
        for c in range(k):
            d = 0.5 * (X[i, c] - Y[i, c])
            b2 += d * d
    row[2], row[3], row[4], row[5] = 0.5 * e2, 0.5 * up_lv, 0.5 * lu_vp, 0.5 * lu_lv
    row[0] = row[2] + row[3] + row[4] + row[5]
    row[1] = np.sqrt(imb)
    row[6], row[7] = np.sqrt(b2), np.sqrt(q2)

    P, GA, EE, W, L = D[0], D[1], D[2], D[3], D[4]  # used in their top-left r x r, p x p
    for i in range(r):
        for j in range(r):
            P[i, j] = (s[i] if i == j else 0.0) - 0.5 * (E[i, j] + E[j, i])
    sd = s[r - 1]
    if info[T1] < 0 or spectral:
        _gram_A(X, Y, r, k, GA, D[7])
    if info[T1] < 0 and posdef(GA, p, -0.5 * sd, 1.0, L):
        info[T1] = t
    if info[T1] >= 0 and info[T0] < 0:
        if posdef(P, r, 0.25 * sd, -1.0, L) and posdef(P, r, 0.25 * sd, 1.0, L):
            info[T0] = t
    if not spectral:
        for c in range(N_CHEAP, N_KEYS):
            row[c] = np.nan
        return row[0]
    T = D[7]  # diag(s) - E, then EE = its Gram
    for i in range(r):
        for j in range(r):
            T[i, j] = -E[i, j]
        T[i, i] += s[i]
    _gram(T, r, r, EE)
    cu = _complement_gram(X, r, GUc, D[5], D[7])
    cv = _complement_gram(Y, r, GVc, D[6], D[7])
    sizes = (p, r, r, k, k, r)
    # resolution of the matrices formed from Up Vp^T (rounding ~ eps ||s||); the complement
    # Grams are formed directly and keep their relative accuracy however small they get
    res = 0.0
    for i in range(r):
        res += float(s[i]) ** 2
    res = 1e3 * 2.220446049250313e-16 * np.sqrt(res)
    floors = (res, res, res, 0.0, 0.0, res * res)
    for slot in range(N_TRACKED):  # one call site: numba compiles extreme_eig once, not per literal slot
        M = D[_MATRIX[slot]]
        row[N_CHEAP + slot] = extreme_eig(
            M, sizes[slot], _LARGEST[slot], floors[slot], vecs[slot], valid, slot, D[7], W, L
        )
    lo, hi = row[9], row[10]
    row[10] = max(abs(lo), abs(hi))
    for c in (8, 11, 12, 13):  # eigenvalues of Grams -> singular values
        row[c] = np.sqrt(max(row[c], 0.0))
    row[11] *= cu
    row[12] *= cv
    return row[0]
