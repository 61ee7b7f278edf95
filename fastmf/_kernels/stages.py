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

The single-run kernel (`mark`, in a record of `diagnostics`) forms G and P in float64 (for a
float32 state the sums Up + Vp and the product Up Vp^T are float32); the batch kernel
(`batch.passes_lanes`) forms them lane by lane in the state's dtype, with its own
Cholesky. The two agree but within rounding of a threshold: for float32, within its
relative 6e-8.
"""

from ._jit import kernel
from .layout import T0, T1
from .spectral import blas_gram, gram, posdef

# the single-run kernel: one state, float64 work matrices


@kernel
def gram_A(X, Y, r, k, G, T, ordered=True):
    """G = A A^T (r <= k) or A^T A (k < r), whose eigenvalues are sigma_i(A)^2; T is work. Summed in
    order (`spectral.gram`) for the T1 test, else (the spectral diagnostics) by `spectral.blas_gram`."""
    rows, cols = (k, r) if r <= k else (r, k)
    for i in range(r):
        for c in range(k):
            T[c if r <= k else i, i if r <= k else c] = 0.5 * (X[i, c] + Y[i, c])  # A^T (k x r) or A (r x k)
    if ordered:
        gram(T, rows, cols, G)
    else:
        blas_gram(T, rows, cols, G)


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
    (`diagnostics.record_spectral`). A test whose diagonal already fails (a pivot c + M_jj not > 0, which
    no Cholesky passes) forms no matrix and factors nothing: the answer is the same, bit for bit.
    """
    r = s.shape[0]
    k = X.shape[1]
    P, G, L = D[0], D[1], D[4]
    sd = s[r - 1]
    formed = info[T1] < 0 and not _diagonal_fails(X, Y, r, k, -0.5 * sd)
    if formed:  # T1 (`formed` is the ordered flag of both calls of gram_A: a runtime value, one compiled version)
        gram_A(X, Y, r, k, G, D[7], formed)
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
        gram_A(X, Y, r, k, G, D[7], formed)
