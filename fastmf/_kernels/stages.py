"""The stage tests of Ye and Du 2021 (arXiv:2106.14289), Theorem 3.1, for the single-run and the batch kernels.

GD from a small start passes T1, the first step with sigma_min(A)^2 >= sigma_d / 2, where
A = (Up + Vp) / 2 (r x k) and sigma_min is the smallest of its p = min(r, k) singular
values; then T0, the first step from T1 on with -sigma_d / 4 <= P <= sigma_d / 4, where
P = diag(s) - (Up Vp^T + Vp Up^T) / 2. Both are decided exactly, without eigenvalues, by
Cholesky factorizations (a pivot that is not > 0, NaN included, says no):

    T1:  G - sigma_d / 2 I > 0,  G = A A^T (r <= k) or A^T A (k < r), p x p
    T0:  sigma_d / 4 I - P > 0  and  sigma_d / 4 I + P > 0

The factorizations test the strict inequalities: a state exactly on a threshold has not
passed it.

The single-run kernel (`diagnostics.record`, from `mark`) forms G and P in float64 (for a
float32 state the sums Up + Vp and the product Up Vp^T are float32); the batch kernel
(`batch`, from `passes_lanes`) forms them lane by lane in the state's dtype, with its own
Cholesky. The two agree but within rounding of a threshold: for float32, within its
relative 6e-8.
"""

import numpy as np

from ._jit import kernel
from .layout import T0, T1
from .spectral import gram, posdef

# the single-run kernel: one state, float64 work matrices


@kernel
def gram_A(X, Y, r, k, G, T):
    """G = A A^T (r <= k) or A^T A (k < r), whose eigenvalues are sigma_i(A)^2; T is work."""
    if r <= k:  # A^T stored in T (k x r)
        for i in range(r):
            for c in range(k):
                T[c, i] = 0.5 * (X[i, c] + Y[i, c])
        gram(T, k, r, G)
    else:
        for i in range(r):
            for c in range(k):
                T[i, c] = 0.5 * (X[i, c] + Y[i, c])
        gram(T, r, k, G)


@kernel
def _diagonal_fails(X, Y, r, k, shift):
    """Does some diagonal pivot shift + G_jj of the T1 test fail (not > 0), G = `gram_A`'s? Each
    G_jj is summed as `spectral.gram` sums it (bitwise the same), and a Cholesky pivot is
    shift + G_jj less non-negative terms: where one fails, so does `posdef`, whose O(p^3) test
    (and the O(p^2 max(r, k)) Gram) this O(r k) sweep then spares."""
    p, depth = min(r, k), max(r, k)
    for j in range(p):
        g = 0.0
        for c in range(depth):
            i, col = (j, c) if r <= k else (c, j)
            a = 0.5 * (X[i, col] + Y[i, col])
            g += a * a
        if not shift + g > 0.0:
            return True
    return False


@kernel(inline="always")
def mark(X, Y, s, E, t, spectral, D, info):
    """The tests at step t of the state (X, Y) with E = Up Vp^T: info[T1] = t if T1 is
    pending and passes, then info[T0] = t if T1 is reached, T0 pending and passes.

    D is (8, n, n) float64 work, n = max(r, k). Leaves P in D[0] and G in D[1] where `spectral`
    asks for them (used in their top-left r x r and p x p), for the spectral diagnostics
    (`diagnostics.record`). A test whose diagonal already fails (a pivot c + M_jj not > 0, which
    no Cholesky passes) forms no matrix and factors nothing: the answer is the same, bit for bit.
    """
    r = s.shape[0]
    k = X.shape[1]
    P, G, L = D[0], D[1], D[4]
    sd = s[r - 1]
    formed = info[T1] < 0 and not _diagonal_fails(X, Y, r, k, -0.5 * sd)
    if formed:  # T1
        gram_A(X, Y, r, k, G, D[7])
        if posdef(G, min(r, k), -0.5 * sd, 1.0, L):
            info[T1] = t
    t0_due = info[T1] >= 0 and info[T0] < 0
    if t0_due:  # the diagonal pivots of T0's two tests, sd / 4 -+ P_jj
        for j in range(r):
            pjj = s[j] - 0.5 * (E[j, j] + E[j, j])
            if not (0.25 * sd - pjj > 0.0 and 0.25 * sd + pjj > 0.0):
                t0_due = False
    if t0_due or spectral:
        for i in range(r):
            for j in range(r):
                P[i, j] = (s[i] if i == j else 0.0) - 0.5 * (E[i, j] + E[j, i])
    if t0_due and posdef(P, r, 0.25 * sd, -1.0, L) and posdef(P, r, 0.25 * sd, 1.0, L):  # T0
        info[T0] = t
    if spectral and not formed:
        gram_A(X, Y, r, k, G, D[7])


# the batch kernel: one state per lane (the last index), work in the state's dtype


@kernel(inline="always")
def _lanes_dot(L, rows, i, j, A):
    """A[i, j, q] = sum over b < rows of L[b, i, q] L[b, j, q], lane by lane, summed in order."""
    for q in range(L.shape[2]):
        A[i, j, q] = 0.0
    for b in range(rows):
        for q in range(L.shape[2]):
            A[i, j, q] += L[b, i, q] * L[b, j, q]


@kernel(inline="always")
def passes_lanes(X, Y, s, E, A, L, active, pend1, pend0, ok1, ok0):
    """ok1[q] / ok0[q]: is T1 / T0 pending (pend1 / pend0) and passed by the state of lane q, an
    `active` lane, with E = Up Vp^T; T0 is tested only where T1 is reached (before or by this
    state), as `mark`. A and L are (n, n, lanes) float64 work, n = max(r, k). The arithmetic of
    `mark` (G and P in float64 from the state's sums and products, `spectral.posdef`'s Cholesky)
    lane by lane, the lanes innermost so that every loop vectorizes: a state gets the same
    answers from both. As in `mark`, a lane whose diagonal already fails (a pivot c + sign M_jj
    not > 0: the Cholesky's pivots are that less squares) is answered no before the factorization,
    and the matrix is neither completed nor factored where no lane is left: the same answers."""
    r, k, lanes = s.shape[0], X.shape[1], X.shape[2]
    p = min(r, k)
    sd = s[r - 1]
    for q in range(lanes):
        ok1[q] = pend1[q] and active[q]
    for test in range(3):  # T1: G - sigma_d / 2 I > 0, then T0: sigma_d / 4 I -+ P > 0
        ok = ok1 if test == 0 else ok0
        n, c, sign = (p, -0.5 * sd, 1.0) if test == 0 else (r, 0.25 * sd, -1.0 if test == 1 else 1.0)
        if test == 0:  # G = A A^T (r <= k) or A^T A (k < r), A^T or A stored in L
            if not ok1.any():
                continue
            rows, cols = (k, r) if r <= k else (r, k)
            for i in range(r):
                for b in range(k):
                    for q in range(lanes):
                        L[b if r <= k else i, i if r <= k else b, q] = 0.5 * (X[i, b, q] + Y[i, b, q])
            for i in range(cols):  # the diagonal first: where no lane passes it, nothing more
                _lanes_dot(L, rows, i, i, A)
                for q in range(lanes):
                    ok1[q] = ok1[q] and A[i, i, q] + c > 0.0
            if not ok1.any():
                continue
            for i in range(cols):
                for j in range(i + 1, cols):
                    _lanes_dot(L, rows, i, j, A)
                    for q in range(lanes):
                        A[j, i, q] = A[i, j, q]
        elif test == 1:  # P, where T1 is reached and both diagonals pass
            for q in range(lanes):
                ok0[q] = pend0[q] and active[q] and not (pend1[q] and not ok1[q])
            if not ok0.any():
                return
            for j in range(r):
                for q in range(lanes):
                    A[j, j, q] = s[j] - 0.5 * (E[j, j, q] + E[j, j, q])
                    ok0[q] = ok0[q] and -A[j, j, q] + c > 0.0 and A[j, j, q] + c > 0.0
            if not ok0.any():
                return
            for i in range(r):
                for j in range(r):
                    if i != j:
                        for q in range(lanes):
                            A[i, j, q] = 0.0 - 0.5 * (E[i, j, q] + E[j, i, q])
        for j in range(n):  # c I + sign A = L L^T, L[j, j] holding 1 / L's diagonal entry
            for i in range(j, n):
                for q in range(lanes):
                    L[i, j, q] = sign * A[i, j, q] + c if i == j else sign * A[i, j, q]
                for b in range(j):
                    for q in range(lanes):
                        L[i, j, q] -= L[i, b, q] * L[j, b, q]
            for q in range(lanes):
                if not L[j, j, q] > 0.0:
                    ok[q] = False
                    L[j, j, q] = 1.0  # keep this lane's arithmetic finite; its answer is already no
                L[j, j, q] = 1.0 / np.sqrt(L[j, j, q])
            for i in range(j + 1, n):
                for q in range(lanes):
                    L[i, j, q] *= L[j, j, q]
