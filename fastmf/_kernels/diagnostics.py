"""The quantities the proofs track, from the stacked state only (docs/maths.md section 4).

With A = (Up + Vp) / 2 and B = (Up - Vp) / 2 (r x k), E = diag(s) - Up Vp^T = P + Q where
P = diag(s) - A A^T + B B^T = (E + E^T) / 2 and Q = A B^T - B A^T = (E - E^T) / 2, so P
and Q come free with the product Up Vp^T the loss already forms (the work array `E` of
`record` holds that product). Columns of a record row:

    loss, imbalance                       always (exact)
    loss_E, loss_Up_LV, loss_LU_Vp,       the four blocks of the loss, each 1/2 ||.||_F^2
    loss_LU_LV, B_fro, Q_fro              (exact)
    sigma_min_A, lambda_min_P, P_op,      spectral, certified (spectral.py): eigenvalues of
    J_op, K_op, E_op, sigma_min_Up,       the matrix M behind them to 1e-12 ||M||_F, or to
    sigma_min_Vp, lambda_max_AAt_2S       2.2e-13 ||s|| for A A^T, P, the Grams of Up and Vp and
                                          A A^T - 2 diag(s) (2.2e-13 ||s|| for E_op) when that
                                          is larger; NaN off the spectral stride
    grad_fro                              spectral (it costs about a step), exact

sigma_min_A is the smallest of the min(r, k) singular values of A (square root of the
smallest eigenvalue of A A^T or A^T A), J_op and K_op the largest singular values of
L_U and L_V (relative accuracy kept down to the smallest doubles for a compressed
complement; a full one reads 0 once its Gram underflows, below about 1e-154),
E_op = ||Sigma - U V^T||_op restricted to the principal block (Delta_t of Ye and Du 2021,
section 3.3), sigma_min_Up and sigma_min_Vp the smallest of the min(r, k) singular values of Up
and Vp (condition (3) there), lambda_max_AAt_2S the largest eigenvalue of A A^T - 2 diag(s)
(Theorem 3.1 keeps it <= 0 up to T0), and grad_fro = ||grad f||_F = (||grad_U f||_F^2 +
||grad_V f||_F^2)^(1/2), from the rows of X M - [s o Vp; 0] in a form that does not cancel:
-(diag(s) - Up Vp^T) Vp + Up GVc on the principal rows, L_U M on the complement ones (an
orthonormal frame keeps the norms), and alike for V.
"""

import numpy as np

from ._jit import kernel
from .blas import gemm
from .layout import (
    B_FRO,
    E_OP,
    GRAD_FRO,
    IMBALANCE,
    J_OP,
    K_OP,
    LAMBDA_MIN_P,
    LOSS,
    LOSS_E,
    LOSS_LU_LV,
    LOSS_LU_VP,
    LOSS_UP_LV,
    N_CHEAP,
    N_TRACKED,
    P_OP,
    Q_FRO,
    SIGMA_MIN_A,
    SIGMA_MIN_UP,
    SIGMA_MIN_VP,
)
from .spectral import blas_gram, extreme_eig, gram
from .stages import gram_A

# the matrix behind each tracked eigenvalue (column N_CHEAP + slot of a row), in the work D:
# lambda_min(A A^T), lambda_min(P), lambda_max(P), lambda_max(GUc), lambda_max(GVc), lambda_max(E^T E),
# of D[1], D[0], D[0], D[5], D[6], D[2]; then, formed where those were once they are taken
# (`_proof_matrices`), lambda_min of the Grams of Up and Vp and lambda_max(A A^T - 2 diag(s)),
# in D[2], D[5], D[0]
_MATRIX = (1, 0, 0, 5, 6, 2, 2, 5, 0)
_LARGEST = (False, False, True, True, True, True, False, False, True)
_FIRST_PROOF_SLOT = SIGMA_MIN_UP - N_CHEAP


@kernel(inline="always")
def resolution(s):
    """The resolution of the r x r matrices formed from Up Vp^T or A A^T: 1e3 eps ||s||."""
    res = 0.0
    for i in range(s.shape[0]):
        res += float(s[i]) ** 2
    return 1e3 * 2.220446049250313e-16 * np.sqrt(res)


@kernel(inline="always")
def aat_minus_2s(X, Y, s, k, out, T, ordered):
    """out[:r, :r] = A A^T - 2 diag(s), A = (Up + Vp) / 2 (r x k; A^T in T, as in `stages.gram_A`),
    the Gram by `spectral.gram` where `ordered` (the batch: no BLAS in its threads, so its numbers
    never depend on how a BLAS treats the work arrays), else by `spectral.blas_gram`."""
    r = s.shape[0]
    for i in range(r):
        for c in range(k):
            T[c, i] = 0.5 * (X[i, c] + Y[i, c])
    if ordered:
        gram(T, k, r, out)
    else:
        blas_gram(T, k, r, out)
    for i in range(r):
        out[i, i] -= 2.0 * s[i]


@kernel(inline="always")
def residual_gram(E, s, T, EE, ordered):
    """EE = R^T R for R = diag(s) - E (r x r; E = Up Vp^T), whose largest eigenvalue is Delta^2; R in T
    (`ordered`: as in `aat_minus_2s`)."""
    r = s.shape[0]
    for i in range(r):
        for j in range(r):
            T[i, j] = -E[i, j]
        T[i, i] += s[i]
    if ordered:
        gram(T, r, r, EE)
    else:
        blas_gram(T, r, r, EE)


@kernel(inline="always")
def _proof_matrices(X, Y, s, D, ordered):
    """The matrices of the last three tracked slots in D[2], D[5], D[0] (D[6] work): the Grams of
    Up and Vp (`stages.gram_A` of (X, X) is that of Up exactly: (X + X) / 2 = X) and A A^T - 2 diag(s).
    `ordered` (False, but a runtime value: one compiled gram_A) is gram_A's."""
    r = s.shape[0]
    k = X.shape[1]
    gram_A(X, X, r, k, D[2], D[6], ordered)
    gram_A(Y, Y, r, k, D[5], D[6], ordered)
    aat_minus_2s(X, Y, s, k, D[0], D[6], False)


@kernel
def _grad_side(X, Y, s, R, Gc, G, D):
    """||.||_F^2 of one side's gradient, X G - [s o Y[:r]; 0] with G = Y^T Y, from its rows in a
    form that does not cancel: X[:r] Gc - R Y[:r] on the principal rows (R = diag(s) - Up Vp^T for
    the U side, its transpose for the V side; Gc the other side's complement Gram), X[r:] G on the
    complement rows, n at a time. The products are `gemm`'s, of float64 copies in the (n x n) work
    matrices D[0], D[1], D[2], D[5], D[6] (R is in another slot)."""
    r = s.shape[0]
    rows, k = X.shape
    n = D.shape[1]
    A, B, C, P, Q = D[0], D[1], D[2], D[5], D[6]
    for i in range(r):
        for a in range(k):
            A[i, a] = X[i, a]
            C[i, a] = Y[i, a]
    for a in range(k):
        for b in range(k):
            B[a, b] = Gc[a, b]
    gemm(A[:r, :k], B[:k, :k], P[:r, :k])
    gemm(R[:r, :r], C[:r, :k], Q[:r, :k])
    total = 0.0
    for i in range(r):
        total_i = 0.0  # (row sums: the rows' chains are independent and overlap)
        for b in range(k):
            g = P[i, b] - Q[i, b]
            total_i += g * g
        total += total_i
    for a in range(k):
        for b in range(k):
            B[a, b] = G[a, b]
    for lo in range(r, rows, n):
        m = min(n, rows - lo)
        for i in range(m):
            for a in range(k):
                A[i, a] = X[lo + i, a]
        gemm(A[:m, :k], B[:k, :k], P[:m, :k])
        for i in range(m):
            total_i = 0.0
            for b in range(k):
                total_i += P[i, b] * P[i, b]
            total += total_i
    return total


@kernel
def _complement_gram(X, r, Gc, out, T):
    """out * scale^2 = L^T L for the complement rows L = X[r:]; returns scale.

    A compressed complement (at most k rows) whose Gram is near underflow (largest diagonal entry
    max_c ||L[:, c]||^2 within 1/eps^2 of the smallest normal number of Gc's dtype: 4.5e-277 in
    float64, 8.3e-25 in float32) is scaled by max|L| before its Gram is formed, so that J_op stays
    accurate to its last digits long after L^T L itself underflows; otherwise, and for a full
    complement, the kernel's Gram Gc is exact (a full one's reads 0 once it underflows).
    """
    rows, k = X.shape[0] - r, X.shape[1]
    top = 0.0
    for c in range(k):  # (the diagonal first, not max|L|: k entries, not rows x k)
        top = max(top, np.float64(Gc[c, c]))
    scale = 0.0
    if rows <= k and not top > np.finfo(Gc.dtype).tiny / np.finfo(Gc.dtype).eps ** 2:
        for i in range(rows):
            for c in range(k):
                scale = max(scale, abs(X[r + i, c]))
    if scale == 0.0:  # Gc is exact: nothing near underflow (or L = 0)
        for i in range(k):
            for j in range(k):
                out[i, j] = Gc[i, j]
        return 1.0
    for i in range(rows):
        for c in range(k):
            T[i, c] = X[r + i, c] / scale
    blas_gram(T, rows, k, out)
    return scale


# A cross block of the loss from Grams, <GUp, GVc> and alike, is a sum of terms that cancel when
# the two factors' rows are nearly orthogonal (width k > r: Up and L_V live in different
# directions). The terms' sizes sum to at most (sum_a sqrt(G_aa H_aa))^2 for Grams G, H (|G_ab| <=
# sqrt(G_aa G_bb)); below this fraction of that (for float64 Grams; `cancelled` for others) a block has
# lost more than about six digits, and is summed again as the squares of the entries of the product itself.
CANCELLED = 1e-10


@kernel(inline="always")
def cancelled(G):
    """`CANCELLED` for Grams of G's dtype: the same multiple of its machine epsilon (1e-10 for float64,
    0.054 for float32, whose eps is 2^29 times larger)."""
    return CANCELLED if G.itemsize == 8 else CANCELLED * 2.0**29


@kernel
def cross_block(A, B):
    """||A B^T||_F^2 as a sum of squares, the products and sums in float64 (exact products of float32
    entries): no cancellation (`CANCELLED`). (Row views of X and Y: one compiled version, where integer
    bounds would compile one per literal 0 among them.)"""
    total = 0.0
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            e = 0.0
            for c in range(A.shape[1]):
                e += np.float64(A[i, c]) * np.float64(B[j, c])
            total += e * e
    return total


@kernel
def householder_r(A):
    """A (rows x k, rows >= k) overwritten so that its first k rows hold R of A = Q R, the
    diagonal of R >= 0 (Householder reflections; O(rows k^2))."""
    rows, k = A.shape
    for j in range(k):
        norm2 = 0.0
        for i in range(j, rows):
            norm2 += np.float64(A[i, j]) * np.float64(A[i, j])
        norm = np.sqrt(norm2)
        if norm == 0:
            continue
        x = np.float64(A[j, j])
        alpha = -norm if x > 0 else norm  # the reflection maps A[j:, j] to alpha e_j
        A[j, j] = x - alpha  # A[j:, j] is now the reflection's vector v
        vv = 2.0 * norm * (norm + abs(x))  # v^T v
        for c in range(j + 1, k):
            dot = 0.0
            for i in range(j, rows):
                dot += np.float64(A[i, j]) * np.float64(A[i, c])
            f = 2.0 * dot / vv
            for i in range(j, rows):
                A[i, c] -= f * A[i, j]
        A[j, j] = alpha
    for j in range(k):
        if A[j, j] < 0:
            for c in range(j, k):
                A[j, c] = -A[j, c]


@kernel
def complement_r(X, r, W):
    """W[:k] = R of the QR of the complement rows L = X[r:] (more than k of them), upper triangular with
    zeros below its diagonal, so that ||A L^T||_F = ||A R^T||_F for any A (L = Q R, Q's columns
    orthonormal); W (len(L), k) work. Householder reflections: O(len(L) k^2), about a Gram's cost."""
    rows, k = X.shape[0] - r, X.shape[1]
    for i in range(rows):
        for c in range(k):
            W[i, c] = X[r + i, c]
    householder_r(W[:rows])
    for i in range(k):
        for c in range(i):
            W[i, c] = 0.0


@kernel(inline="always")
def record_cheap(X, Y, s, N, GUc, M, GVc, E, row, tall, Xw, Yw):
    """The first part of a record of the stacked state (X, Y): E[:r] = Up Vp^T (E[r:] work) and
    row[:N_CHEAP], the loss and the diagnostics that need no eigenvalue; returns the loss.

    N = X^T X, M = Y^T Y and the complement Grams GUc, GVc are given; E is (r + k, r) work. `tall`:
    None where neither side has more than k complement rows (a compressed complement: every block
    that cancels is summed from its rows, and no QR code is compiled), else True, and then Xw, Yw
    (shaped as X, Y) are the work of `complement_r`. `row` has the N_KEYS columns, or only the N_CHEAP
    cheap ones if `record_spectral` never takes any.
    """
    r = s.shape[0]
    k = X.shape[1]
    Vt = E[r:]  # Vp^T, so that the product's operands are both row-major: OpenBLAS's small-matrix
    for i in range(r):  # kernels take that layout, not Up times a transposed view (0.19 against 0.1 us at k = 10)
        for c in range(k):
            Vt[c, i] = Y[i, c]
    gemm(X[:r], Vt, E[:r])
    # the four blocks of the loss (docs/maths.md section 3), each a sum of squares: ||diag(s) - E||^2,
    # then <GUp, GVc>, <GUc, GVp>, <GUc, GVc> with GUp = N - GUc, GVp = M - GVc
    # (summed row by row: the rows' sums are independent, so their additions overlap instead of waiting in
    # one chain; 0.12 us of 0.37 at r = k = 10)
    e2 = 0.0
    q2 = 0.0
    for i in range(r):
        e2_i = 0.0
        q2_i = 0.0
        for j in range(r):
            e = (s[i] if i == j else 0.0) - E[i, j]
            e2_i += e * e
            q = 0.5 * (E[j, i] - E[i, j])
            q2_i += q * q
        e2 += e2_i
        q2 += q2_i
    up_lv = 0.0
    lu_vp = 0.0
    lu_lv = 0.0
    imb = 0.0
    for a in range(k):
        up_lv_a = 0.0
        lu_vp_a = 0.0
        lu_lv_a = 0.0
        imb_a = 0.0
        for b in range(k):
            up_lv_a += (N[a, b] - GUc[a, b]) * GVc[a, b]
            lu_vp_a += GUc[a, b] * (M[a, b] - GVc[a, b])
            lu_lv_a += GUc[a, b] * GVc[a, b]
            d = N[a, b] - M[a, b]
            imb_a += d * d
        up_lv += up_lv_a
        lu_vp += lu_vp_a
        lu_lv += lu_lv_a
        imb += imb_a
    # bounds on the sums of the terms' sizes (`CANCELLED`), from the Grams' diagonals in float64: (sum_a
    # sqrt(g_a h_a))^2, k square roots each, formed only where a block is below `cancelled` times twice the
    # bound without them, sum_a g_a sum_a h_a (Cauchy-Schwarz; twice: rounding), which clears every block on
    # most steps
    fraction = cancelled(N)
    t_up = t_vp = t_uc = t_vc = 0.0
    for a in range(k):
        t_up += abs(np.float64(N[a, a]) + GUc[a, a])
        t_vp += abs(np.float64(M[a, a]) + GVc[a, a])
        t_uc += abs(np.float64(GUc[a, a]))
        t_vc += abs(np.float64(GVc[a, a]))
    if (up_lv < fraction * (2.0 * t_up * t_vc) or lu_vp < fraction * (2.0 * t_uc * t_vp)
            or lu_lv < fraction * (2.0 * t_uc * t_vc)):  # fmt: skip
        size_up_lv = 0.0
        size_lu_vp = 0.0
        size_lu_lv = 0.0
        for a in range(k):
            size_up_lv += np.sqrt(abs(np.float64(N[a, a]) + GUc[a, a]) * abs(np.float64(GVc[a, a])))
            size_lu_vp += np.sqrt(abs(np.float64(GUc[a, a])) * abs(np.float64(M[a, a]) + GVc[a, a]))
            size_lu_lv += np.sqrt(abs(np.float64(GUc[a, a])) * abs(np.float64(GVc[a, a])))
        # the product of a block is summed from the rows where that costs no more than the Grams (always on a
        # compressed complement, which has at most k rows a side); else a side's complement L = X[r:] or Y[r:]
        # enters through the R of its QR, k rows (`complement_r`), at about the cost of a Gram
        rows_u, rows_v = X.shape[0] - r, Y.shape[0] - r
        budget = (X.shape[0] + Y.shape[0]) * k
        if up_lv < fraction * size_up_lv**2:
            if tall is None or r * rows_v <= budget:
                up_lv = cross_block(X[:r], Y[r:])
            else:
                complement_r(Y, r, Yw)
                up_lv = cross_block(X[:r], Yw[:k])
        if lu_vp < fraction * size_lu_vp**2:
            if tall is None or rows_u * r <= budget:
                lu_vp = cross_block(X[r:], Y[:r])
            else:
                complement_r(X, r, Xw)
                lu_vp = cross_block(Xw[:k], Y[:r])
        if lu_lv < fraction * size_lu_lv**2:
            if tall is None or rows_u * rows_v <= budget:
                lu_lv = cross_block(X[r:], Y[r:])
            elif rows_u <= rows_v:  # the R of the longer side, the rows of the other
                complement_r(Y, r, Yw)
                lu_lv = cross_block(X[r:], Yw[:k])
            else:
                complement_r(X, r, Xw)
                lu_lv = cross_block(Xw[:k], Y[r:])
    b2 = 0.0
    for i in range(r):
        b2_i = 0.0
        for c in range(k):
            d = 0.5 * (X[i, c] - Y[i, c])
            b2_i += d * d
        b2 += b2_i
    row[LOSS_E], row[LOSS_UP_LV], row[LOSS_LU_VP], row[LOSS_LU_LV] = 0.5 * e2, 0.5 * up_lv, 0.5 * lu_vp, 0.5 * lu_lv
    row[LOSS] = row[LOSS_E] + row[LOSS_UP_LV] + row[LOSS_LU_VP] + row[LOSS_LU_LV]
    row[IMBALANCE] = np.sqrt(imb)
    row[B_FRO], row[Q_FRO] = np.sqrt(b2), np.sqrt(q2)
    return row[LOSS]


@kernel(inline="always")
def record_spectral(X, Y, s, N, GUc, M, GVc, E, spectral, row, D, vecs, valid):
    """The last part of a record: row[N_CHEAP:], the certified extreme eigenvalues
    (`spectral.extreme_eig`) and ||grad f||_F, from E and the P and Gram of A that `stages.mark`
    left in D; NaN unless `spectral`.

    D is (8, n, n) float64 work with n = max(r, k); vecs (N_TRACKED, n) and valid (N_TRACKED,)
    carry the tracked eigenvectors from record to record.
    """
    if not spectral:
        for c in range(N_CHEAP, row.shape[0]):
            row[c] = np.nan
        return
    r = s.shape[0]
    k = X.shape[1]
    p = min(r, k)
    EE, W, L, T = D[2], D[3], D[4], D[7]
    residual_gram(E, s, T, EE, False)
    cu = _complement_gram(X, r, GUc, D[5], T)
    cv = _complement_gram(Y, r, GVc, D[6], T)
    sizes = (p, r, r, k, k, r, p, p, r)
    # resolution of the matrices formed from Up Vp^T (rounding ~ eps ||s||); the complement
    # Grams are formed directly and keep their relative accuracy however small they get
    res = resolution(s)
    floors = (res, res, res, 0.0, 0.0, res * res, res, res, res)
    for slot in range(N_TRACKED):  # one call site: numba compiles extreme_eig once, not per literal slot
        if slot == _FIRST_PROOF_SLOT:
            _proof_matrices(X, Y, s, D, slot < _FIRST_PROOF_SLOT)
        row[N_CHEAP + slot] = extreme_eig(
            D[_MATRIX[slot]], sizes[slot], _LARGEST[slot], floors[slot], vecs[slot], valid, slot, T, W, L
        )
    lo, hi = row[LAMBDA_MIN_P], row[P_OP]  # lambda_min(P), lambda_max(P)
    row[P_OP] = max(abs(lo), abs(hi))
    for c in (SIGMA_MIN_A, J_OP, K_OP, E_OP, SIGMA_MIN_UP, SIGMA_MIN_VP):  # eigenvalues of Grams -> singular values
        row[c] = np.sqrt(max(row[c], 0.0))
    row[J_OP] *= cu
    row[K_OP] *= cv
    R, Rt = D[3], D[4]  # diag(s) - Up Vp^T and its transpose, for ||grad f||_F (one compiled _grad_side)
    for i in range(r):
        for j in range(r):
            R[i, j] = (s[i] if i == j else 0.0) - E[i, j]
            Rt[j, i] = R[i, j]
    row[GRAD_FRO] = np.sqrt(_grad_side(X, Y, s, R, GVc, M, D) + _grad_side(Y, X, s, Rt, GUc, N, D))
