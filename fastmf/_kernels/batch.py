"""Many GD runs in one compiled call (`fastmf.solve_batch`), parallel over runs.

The runs go in blocks of `LANES`, each block's states stored with the run index innermost
(rows x k x lanes), so every operation of the stacked step (docs/maths.md section 3, eqs 6-9) is a
vector operation across runs with no BLAS call (a small product costs BLAS more in call
overhead than in arithmetic, and concurrent calls contend inside OpenBLAS). Blocks run in
parallel (prange). A run's arithmetic never mixes with another's and has the same order in
every lane, so its numbers depend only on its start and settings: not on the number of
threads, the batch size or its place in the batch. They equal `fastmf.solve`'s to rounding
(its products are BLAS's, summed in another order).

Recorded at each recorded step: the loss (as `diagnostics.record`: the four blocks in the
split form) and the stage tests (`stages.passes_lanes`, the batch side of `stages.mark`); with
`proofs`, the per-run extremes of the quantities the proofs bound (`layout.EXT_B` ...; `_prove`),
from the same formulas as `diagnostics.record`, lane by lane, on the spectral stride.
A run advanced in several calls follows exactly the trajectory and records of one call:
each call starts from the state alone (its Grams are a function of it).
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .blocks import _due
from .diagnostics import CANCELLED, aat_minus_2s, residual_gram, resolution
from .fpmode import mode_on, mode_restore
from .layout import (
    ALTERNATING,
    BALANCE,
    CONVERGED,
    DIVERGED,
    EXT_AAT,
    EXT_B,
    EXT_B_T0,
    EXT_DELTA,
    EXT_J,
    EXT_K,
    EXT_SIGMA_A,
    EXT_UV,
    FINAL_LOSS,
    N_ITER,
    N_PROOF_TRACKED,
    PRECONDITION,
    RUNNING,
    STATUS,
    T0,
    T1,
    T_DELTA,
)
from .spectral import extreme_eig
from .stages import gram_A, passes_lanes

LANES = 32


@kernel
def _accumulate(X, lo, hi, G):
    """G[a, b] += sum over rows i in [lo, hi) of X[i, a] X[i, b], lane by lane, for a <= b."""
    k, lanes = X.shape[1], X.shape[2]
    for i in range(lo, hi):
        for a in range(k):
            for b in range(a, k):
                for q in range(lanes):
                    G[a, b, q] += X[i, a, q] * X[i, b, q]


@kernel
def _mirror(G):
    """G[b, a] = G[a, b] for a < b: the lower triangle of a symmetric G from its upper one."""
    for a in range(G.shape[0]):
        for b in range(a):
            for q in range(G.shape[2]):
                G[a, b, q] = G[b, a, q]


@kernel
def _grams(X, r, G, Gc):
    """Gc = the Gram of the complement rows r: of X, then G = Gc + that of the principal rows
    :r, i.e. X^T X: the step needs G, the loss both (Gc is not G minus the principal part,
    which would cancel once the complement is small)."""
    k, lanes = X.shape[1], X.shape[2]
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                Gc[a, b, q] = 0.0
    _accumulate(X, r, X.shape[0], Gc)
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                G[a, b, q] = Gc[a, b, q]
    _accumulate(X, 0, r, G)
    _mirror(Gc)
    _mirror(G)


@kernel
def _variant_factor(G, Go, Y, half_bal, lamp, eta, H, F, B, Yp):
    """H = I - eta (G + half_bal (Go - G)) P^-1 and Yp = Y[:r] P^-1, with P = G + lamp I
    (ScaledGD), or P = I when lamp < 0 (Yp is then left alone: the step reads Y). F (k, k,
    lanes) and B (k + r, k, lanes) are work: P = F F^T (Cholesky; a non-positive pivot gives
    NaN, which stops the run as diverged), B = [G + half_bal (Go - G); Y[:r]] solved row by row."""
    k, lanes = G.shape[1], G.shape[2]
    r = Yp.shape[0]
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                B[a, b, q] = G[a, b, q] + half_bal * (Go[a, b, q] - G[a, b, q])
    if lamp >= 0:
        for i in range(r):
            for b in range(k):
                for q in range(lanes):
                    B[k + i, b, q] = Y[i, b, q]
        for j in range(k):
            for i in range(j, k):
                for q in range(lanes):
                    F[i, j, q] = G[i, j, q] + (lamp if i == j else 0.0)
                for c in range(j):
                    for q in range(lanes):
                        F[i, j, q] -= F[i, c, q] * F[j, c, q]
            for q in range(lanes):
                F[j, j, q] = np.sqrt(F[j, j, q]) if F[j, j, q] > 0 else np.nan
            for i in range(j + 1, k):
                for q in range(lanes):
                    F[i, j, q] /= F[j, j, q]
        for i in range(k + r):  # row i of B times P^-1: F z = B[i], then F^T B[i] = z
            for j in range(k):
                for c in range(j):
                    for q in range(lanes):
                        B[i, j, q] -= F[j, c, q] * B[i, c, q]
                for q in range(lanes):
                    B[i, j, q] /= F[j, j, q]
            for j in range(k - 1, -1, -1):
                for c in range(j + 1, k):
                    for q in range(lanes):
                        B[i, j, q] -= F[c, j, q] * B[i, c, q]
                for q in range(lanes):
                    B[i, j, q] /= F[j, j, q]
        for i in range(r):
            for b in range(k):
                for q in range(lanes):
                    Yp[i, b, q] = B[k + i, b, q]
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                H[a, b, q] = (1.0 if a == b else 0.0) - eta[q] * B[a, b, q]


@kernel
def _half_step(X, Y, s, eta, H, Xn):
    """Xn = X H + eta [s o Y[:r]; 0] (eqs 6 and 8 with H = I - eta Y^T Y, or 7 and 9),
    subnormals flushed to zero (`fpmode`)."""
    rows, k, lanes = X.shape
    tiny = np.finfo(X.dtype).tiny
    for i in range(rows):
        for b in range(k):
            for q in range(lanes):
                Xn[i, b, q] = 0.0
            for a in range(k):
                for q in range(lanes):
                    Xn[i, b, q] += X[i, a, q] * H[a, b, q]
            if i < s.shape[0]:
                for q in range(lanes):
                    Xn[i, b, q] += eta[q] * s[i] * Y[i, b, q]
            for q in range(lanes):
                if abs(Xn[i, b, q]) < tiny:
                    Xn[i, b, q] = 0.0


@kernel
def _side(X, Y, G, Go, s, eta, variant, H, F, B, Yp, Xn):
    """Xn: X after one GD step of the variant (`layout` BALANCE, PRECONDITION) with G = Y^T Y
    and Go = X^T X (docs/maths.md section 6): X H + eta [(s o Y[:r]) P^-1; 0]."""
    if variant is not None:  # (None: plain GD, whose code alone is then compiled)
        half_bal, lamp = 0.5 * variant[BALANCE], variant[PRECONDITION]
        if half_bal != 0 or lamp >= 0:
            _variant_factor(G, Go, Y, half_bal, lamp, eta, H, F, B, Yp)
            _half_step(X, Yp if lamp >= 0 else Y, s, eta, H, Xn)
            return
    k, lanes = G.shape[1], G.shape[2]  # plain GD: H = I - eta G
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                H[a, b, q] = (1.0 if a == b else 0.0) - eta[q] * G[a, b, q]
    _half_step(X, Y, s, eta, H, Xn)


@kernel
def _perturb(X, r, Z, B, j, A, w):
    """Perturbed GD's noise of step j of the call (`fastmf.noise`, compressed form), lane by
    lane: X[:r] += Z[q, j, :r]; the complement L = X[r:] becomes the R of the QR of
    [L + Z[q, j, r:]; B[q, j]] (Householder reflections), or L + Z[q, j, r:] when B has no
    rows (the frame is then the whole complement: exact path by path). A is
    ((rows - r) + p, k, lanes) work, w (3, lanes)."""
    rows, k, lanes = X.shape
    p = B.shape[2]
    for i in range(rows):
        for b in range(k):
            for q in range(lanes):
                X[i, b, q] += Z[q, j, i, b]
    if p == 0:
        return
    n = rows - r + p
    for i in range(n):
        for b in range(k):
            for q in range(lanes):
                A[i, b, q] = X[r + i, b, q] if i < rows - r else B[q, j, i - rows + r, b]
    half, alpha, dot = w[0], w[1], w[2]
    for c in range(min(n, k)):  # A[c:, c] becomes v = A[c:, c] - alpha e_c, v^T v = 2 half
        for q in range(lanes):
            half[q] = 0.0
        for i in range(c, n):
            for q in range(lanes):
                half[q] += A[i, c, q] * A[i, c, q]
        for q in range(lanes):
            alpha[q] = -np.copysign(np.sqrt(half[q]), A[c, c, q])
            half[q] -= alpha[q] * A[c, c, q]
            A[c, c, q] -= alpha[q]
        for b in range(c + 1, k):  # A[c:, b] -= v (v^T A[c:, b]) / half
            for q in range(lanes):
                dot[q] = 0.0
            for i in range(c, n):
                for q in range(lanes):
                    dot[q] += A[i, c, q] * A[i, b, q]
            for q in range(lanes):
                dot[q] = dot[q] / half[q] if half[q] > 0 else 0.0
            for i in range(c, n):
                for q in range(lanes):
                    A[i, b, q] -= dot[q] * A[i, c, q]
        for q in range(lanes):
            A[c, c, q] = alpha[q]
        for i in range(c + 1, n):
            for q in range(lanes):
                A[i, c, q] = 0.0
    for c in range(min(n, k)):  # the diagonal of R >= 0, as `blocks.householder_r` leaves it
        for q in range(lanes):
            if A[c, c, q] < 0:
                for b in range(c, k):
                    A[c, b, q] = -A[c, b, q]
    for i in range(r, rows):
        for b in range(k):
            for q in range(lanes):
                X[i, b, q] = A[i - r, b, q]


@kernel(inline="always")
def _cross_lane(X, a0, a1, Y, b0, b1, q):
    """Lane q's ||X[a0:a1] Y[b0:b1]^T||_F^2 as a sum of squares (`diagnostics.cross_block`)."""
    total = 0.0
    for i in range(a0, a1):
        for j in range(b0, b1):
            e = 0.0
            for c in range(X.shape[1]):
                e += np.float64(X[i, c, q]) * np.float64(Y[j, c, q])
            total += e * e
    return total


@kernel
def _record(X, Y, s, N, M, GUc, GVc, W, loss, pend1, pend0, ok1, ok0):
    """loss[q] (float64) for the states X, Y with Grams N, M and complement Grams GUc, GVc;
    ok1[q] / ok0[q]: does the state pass the T1 / T0 test (`stages.passes_lanes`, where T1 /
    T0 is pending: pend1 / pend0). W is (3, n, n, lanes) work."""
    rows, k, lanes = X.shape
    r = s.shape[0]
    E, A, L = W[0], W[1], W[2]
    for q in range(lanes):
        loss[q] = 0.0
    for i in range(r):
        for j in range(r):
            for q in range(lanes):
                E[i, j, q] = 0.0
            for c in range(k):
                for q in range(lanes):
                    E[i, j, q] += X[i, c, q] * Y[j, c, q]
            for q in range(lanes):
                e = (s[i] if i == j else 0.0) - E[i, j, q]
                loss[q] += 0.5 * np.float64(e) * np.float64(e)
    # the three cross blocks from the Grams, with the sums of their terms' sizes, each summed again as
    # the squares of its product's entries where it cancelled (`diagnostics.CANCELLED`)
    blocks = np.zeros((6, lanes))
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                n, cu = np.float64(N[a, b, q]), np.float64(GUc[a, b, q])
                m, cv = np.float64(M[a, b, q]), np.float64(GVc[a, b, q])
                blocks[0, q] += (n - cu) * cv
                blocks[1, q] += cu * (m - cv)
                blocks[2, q] += cu * cv
        for q in range(lanes):  # bounds on the sums of the terms' sizes, from the diagonals
            n, cu = np.float64(N[a, a, q]), np.float64(GUc[a, a, q])
            m, cv = np.float64(M[a, a, q]), np.float64(GVc[a, a, q])
            blocks[3, q] += np.sqrt(abs(n + cu) * abs(cv))
            blocks[4, q] += np.sqrt(abs(cu) * abs(m + cv))
            blocks[5, q] += np.sqrt(abs(cu) * abs(cv))
    for q in range(lanes):
        for block in range(3, 6):
            blocks[block, q] *= blocks[block, q]
        if blocks[0, q] < CANCELLED * blocks[3, q]:
            blocks[0, q] = _cross_lane(X, 0, r, Y, r, rows, q)
        if blocks[1, q] < CANCELLED * blocks[4, q]:
            blocks[1, q] = _cross_lane(X, r, rows, Y, 0, r, q)
        if blocks[2, q] < CANCELLED * blocks[5, q]:
            blocks[2, q] = _cross_lane(X, r, rows, Y, r, rows, q)
        loss[q] += 0.5 * (blocks[0, q] + blocks[1, q] + blocks[2, q])
    for q in range(lanes):
        ok1[q] = pend1[q]
        ok0[q] = pend0[q]
    passes_lanes(X, Y, s, E, A, L, ok1, ok0)


@kernel
def _freeze(src, dst, q):
    """dst[..., q] = src[..., q]: a finished lane keeps its state."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j, q] = src[i, j, q]


@kernel
def _transpose(Xs, X, to_lanes):
    """X[i, a, q] = Xs[q, i, a] (runs to lanes), or the reverse."""
    for q in range(Xs.shape[0]):
        for i in range(Xs.shape[1]):
            for a in range(Xs.shape[2]):
                if to_lanes:
                    X[i, a, q] = Xs[q, i, a]
                else:
                    Xs[q, i, a] = X[i, a, q]


@kernel(inline="always")
def _note(summary, losses, j, t, loss, active, pend1, pend0, ok1, ok0, delta, tol):
    """The record of step t (column j of `losses`) in each active lane's summary: its loss, the
    stages it reaches (T0 only once T1 is reached, as `diagnostics.record`), T_delta, convergence."""
    for q in range(active.size):
        if not active[q]:
            continue
        summary[q, FINAL_LOSS] = loss[q]
        if j < losses.shape[1]:
            losses[q, j] = loss[q]
        if pend1[q] and ok1[q]:
            summary[q, T1] = t
            pend1[q] = False
        if not pend1[q] and pend0[q] and ok0[q]:
            summary[q, T0] = t
            pend0[q] = False
        if summary[q, T_DELTA] < 0 and loss[q] <= delta:
            summary[q, T_DELTA] = t
        if loss[q] <= tol:
            summary[q, STATUS] = CONVERGED
            active[q] = False


@kernel(inline="always")
def _overflows(N, M, summary, active, diverged, t, unrecorded):
    """Stop the active lanes whose new state has (||X||^2 + ||Y||^2)^2 not finite in float64
    (`blocks.overflows`), marking in `diverged` those whose last finite state, at step t, is
    `unrecorded`; the others reach step t + 1."""
    for q in range(active.size):
        if active[q]:
            mass = 0.0
            for a in range(N.shape[0]):
                mass += np.float64(N[a, a, q]) + np.float64(M[a, a, q])
            if not np.isfinite(mass * mass):
                summary[q, STATUS] = DIVERGED
                active[q] = False
                diverged[q] = unrecorded
            else:
                summary[q, N_ITER] = t + 1


@kernel(inline="always")
def _raise(e, c, v):
    """e[c] = max(e[c], v), a NaN e[c] being "nothing yet" and a NaN v no value."""
    if v > e[c] or e[c] != e[c]:
        e[c] = v


@kernel(inline="always")
def _lower(e, c, v):
    """e[c] = min(e[c], v), as `_raise`."""
    if v < e[c] or e[c] != e[c]:
        e[c] = v


@kernel
def _lane_copy(src, q, rows, cols, dst):
    """dst[:rows, :cols] = src[:rows, :cols, q] in float64."""
    for i in range(rows):
        for j in range(cols):
            dst[i, j] = src[i, j, q]


# the tracked slots of `_prove`: sigma_d(A), lambda_max(A A^T - 2 diag(s)), ||J||_op, ||K||_op, sigma_d(Up),
# sigma_d(Vp), Delta_t: the extreme each goes to, whether it is the largest eigenvalue, its square root, the least
_EXTREME = (EXT_SIGMA_A, EXT_AAT, EXT_J, EXT_K, EXT_UV, EXT_UV, EXT_DELTA)
_LARGEST = (False, True, True, True, False, False, True)
_ROOT = (True, False, True, True, True, True, True)
_LOWER = (True, False, False, False, True, True, False)


@kernel
def _prove(X, Y, s, E, Nc, Mc, t, spectral, lanes_in, before0, pend1, pend0, summary, proofs, lo, PW):
    """The extremes (`layout.EXT_B` ...) of the lanes in `lanes_in` at their record of step t,
    with the stages as that record left them (pend1, pend0) and before0: was T0 pending before
    it (so t <= T0)? ||B_t||_F at every record; with `spectral`, the eigenvalues lane by lane
    (`spectral.extreme_eig`, the lane's tracked vectors) of the matrices `diagnostics.record`
    takes them from: sigma_d(A) from T1 on; lambda_max(A A^T - 2 diag(s)), ||J||_op, ||K||_op
    up to T0; sigma_d(Up), sigma_d(Vp) and Delta_t / delta_bound(t) from T0 on while the bound
    is above the resolution of Delta, 1e3 eps ||s|| (eps of the state's dtype). E = Up Vp^T
    (r x r x lanes), Nc, Mc the complement Grams; lane q is run lo + q of `proofs`; PW (8, n,
    max(n, lanes)) float64 work."""
    ext, vecs, valid, rates = proofs[0], proofs[1], proofs[2], proofs[3]
    r = s.shape[0]
    k = X.shape[1]
    p = min(r, k)
    res = resolution(s)
    floor = res * np.finfo(X.dtype).eps / 2.220446049250313e-16  # Delta's resolution in the state's dtype
    sizes = (p, r, k, k, p, p, r)
    floors = (res, res, 0.0, 0.0, res, res, res * res)
    Up, Vp, G, S, W, L, Eq = PW[0], PW[1], PW[2], PW[3], PW[4], PW[5], PW[6]
    b2 = PW[7, 0, : lanes_in.size]  # ||B||_F^2 lane by lane
    b2[:] = 0.0
    for i in range(r):
        for c in range(k):
            for q in range(lanes_in.size):
                d = 0.5 * (X[i, c, q] - Y[i, c, q])  # as `diagnostics.record` sums it
                b2[q] += d * d
    for q in range(lanes_in.size):
        if not lanes_in[q]:
            continue
        e, v, ok = ext[lo + q], vecs[lo + q], valid[lo + q]
        _raise(e, EXT_B, np.sqrt(b2[q]))
        if before0[q]:
            _raise(e, EXT_B_T0, np.sqrt(b2[q]))
        if not spectral:
            continue
        _lane_copy(X, q, r, k, Up)
        _lane_copy(Y, q, r, k, Vp)
        bound = 0.4 * s[r - 1] * rates[lo + q] ** (t - summary[q, T0])
        after0 = not pend0[q]
        # (below the floor, Delta_t is rounding: nothing to check)
        wanted = (not pend1[q], before0[q], before0[q], before0[q], after0, after0, after0 and bound > floor)
        for slot in range(N_PROOF_TRACKED):  # one call site: numba compiles extreme_eig once
            if not wanted[slot]:
                continue
            if slot == 0 or slot >= 4 and slot < 6:  # the Gram of A, Up or Vp (`diagnostics._proof_matrices`)
                gram_A(Vp if slot == 5 else Up, Up if slot == 4 else Vp, r, k, G, S)
            elif slot == 1:
                aat_minus_2s(Up, Vp, s, k, G, S)
            elif slot < 4:
                _lane_copy(Nc if slot == 2 else Mc, q, k, k, G)
            else:
                _lane_copy(E, q, r, r, Eq)
                residual_gram(Eq, s, W, G)
            value = extreme_eig(G, sizes[slot], _LARGEST[slot], floors[slot], v[slot], ok, slot, S, W, L)
            if _ROOT[slot]:
                value = np.sqrt(max(value, 0.0))
            if slot == 6:
                value /= bound
            c = _EXTREME[slot]
            if _LOWER[slot]:
                _lower(e, c, value)
            else:
                _raise(e, c, value)


@kernel
def _run_block(Xs, Ys, s, lrs, lr_scale, variant, noise, tol, t_start, t_stop, t_final, record_every, delta, summary,
               losses, proofs, lo):  # fmt: skip
    """Runs the runs of one block (at most LANES) as lanes, runs lo: of `proofs`; see run_batch."""
    lanes, rows, k = Xs.shape
    active = np.empty(lanes, np.bool_)
    pend1 = np.empty(lanes, np.bool_)
    pend0 = np.empty(lanes, np.bool_)
    for q in range(lanes):
        active[q] = summary[q, STATUS] == RUNNING
        pend1[q] = summary[q, T1] < 0
        pend0[q] = summary[q, T0] < 0
    if not active.any():
        return
    r = s.shape[0]
    n = max(r, k)
    X, Y = np.empty((rows, k, lanes), Xs.dtype), np.empty((Ys.shape[1], k, lanes), Ys.dtype)
    _transpose(Xs, X, True)
    _transpose(Ys, Y, True)
    Xn, Yn = np.empty_like(X), np.empty_like(Y)
    G = np.empty((10, k, k, lanes), X.dtype)
    N, M, Nn, Mn, Nc, Mc, Nnc, Mnc, H, F = G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7], G[8], G[9]
    P = np.empty((r, k, lanes), X.dtype)  # ScaledGD's preconditioned principal rows, and its work
    B = np.empty((k + r, k, lanes), X.dtype)
    if noise is None:
        AX = AY = np.empty((0, k, lanes), X.dtype)
    else:  # perturbed GD's QR
        AX = np.empty((rows - r + noise[1].shape[2], k, lanes), X.dtype)
        AY = np.empty((Y.shape[0] - r + noise[3].shape[2], k, lanes), X.dtype)
    eta = np.empty(lanes, X.dtype)
    w = np.empty((3, lanes), X.dtype)
    W = np.empty((3, n, n, lanes), X.dtype)
    loss = np.empty(lanes)
    ok1 = np.zeros(lanes, np.bool_)
    ok0 = np.zeros(lanes, np.bool_)
    diverged = np.zeros(lanes, np.bool_)
    alternating = False
    if variant is not None:
        alternating = variant[ALTERNATING] != 0
    if proofs is not None:
        was_active = np.empty(lanes, np.bool_)
        before0 = np.empty(lanes, np.bool_)
        PW = np.empty((8, n, max(n, lanes)))
    _grams(X, r, N, Nc)
    _grams(Y, r, M, Mc)
    t = t_start
    while True:
        if _due(t, t_stop, t_final, record_every):
            _record(X, Y, s, N, M, Nc, Mc, W, loss, pend1, pend0, ok1, ok0)
            j = t // record_every if t % record_every == 0 else t_final // record_every + 1
            if proofs is not None:
                for q in range(lanes):
                    was_active[q] = active[q]
                    before0[q] = pend0[q]
            _note(summary, losses, j, t, loss, active, pend1, pend0, ok1, ok0, delta, tol)
            if proofs is not None:
                every = proofs[4]
                spectral = every > 0 and (t % every == 0 or t == t_final)
                _prove(X, Y, s, W[0], Nc, Mc, t, spectral, was_active, before0, pend1, pend0, summary, proofs, lo, PW)
        if t >= t_stop or not active.any():
            break
        factor = lr_scale[min(t - t_start, lr_scale.size - 1)]
        for q in range(lanes):
            eta[q] = lrs[q] * factor
        _side(X, Y, M, N, s, eta, variant, H, F, B, P, Xn)
        if alternating:  # the Y side steps from the new X
            _grams(Xn, r, Nn, Nnc)
        _side(Y, Xn if alternating else X, Nn if alternating else N, M, s, eta, variant, H, F, B, P, Yn)
        if noise is not None:
            _perturb(Xn, r, noise[0], noise[1], t - t_start, AX, w)
            _perturb(Yn, r, noise[2], noise[3], t - t_start, AY, w)
        if noise is not None or not alternating:
            _grams(Xn, r, Nn, Nnc)
        _grams(Yn, r, Mn, Mnc)
        _overflows(Nn, Mn, summary, active, diverged, t, not _due(t, t_stop, t_final, record_every))
        if diverged.any():  # its loss, as `fastmf.solve` records the state it returns (no stage
            _record(X, Y, s, N, M, Nc, Mc, W, loss, pend1, pend0, ok1, ok0)  # test: it may have exploded)
            if proofs is not None:  # the extremes take that record, as solve's history does
                _prove(X, Y, s, W[0], Nc, Mc, t, proofs[4] > 0, diverged, pend0, pend1, pend0, summary, proofs, lo, PW)
            for q in range(lanes):
                if diverged[q]:
                    summary[q, FINAL_LOSS] = loss[q]
                    if summary[q, T_DELTA] < 0 and loss[q] <= delta:
                        summary[q, T_DELTA] = t
                    diverged[q] = False
        for q in range(lanes):
            if not active[q]:
                _freeze(X, Xn, q)
                _freeze(Y, Yn, q)
                _freeze(N, Nn, q)
                _freeze(M, Mn, q)
                _freeze(Nc, Nnc, q)
                _freeze(Mc, Mnc, q)
        X, Xn = Xn, X
        Y, Yn = Yn, Y
        N, Nn = Nn, N
        M, Mn = Mn, M
        Nc, Nnc = Nnc, Nc
        Mc, Mnc = Mnc, Mc
        t += 1
    _transpose(Xs, X, False)
    _transpose(Ys, Y, False)


@kernel(nogil=False, parallel=True)
def run_batch(Xs, Ys, s, lrs, lr_scale, variant, noise, tol, t_start, t_stop, t_final, record_every, delta, summary,
              losses, proofs=None):  # fmt: skip
    """Advance run i of GD from step t_start to t_stop, from (Xs[i], Ys[i]) with step sizes
    lrs[i] * lr_scale[...], in blocks of LANES runs; a run split into calls [0, a], [a, b], ...
    records exactly what one call [0, t_final] records.

    Xs, Ys : (runs, rows, k), (runs, rows2, k) C-contiguous states, updated in place: after
        the call run i's state is the one at step summary[i, N_ITER].
    lrs, lr_scale : the step size of run i at step t is lrs[i] * lr_scale[min(t - t_start,
        lr_scale.size - 1)] (a constant lr: lr_scale = [1]; a schedule shared by the runs: lrs = 1).
    variant : float64 (`layout.N_VARIANT`) or None
        The GD variant shared by the runs, in internal units (docs/maths.md section 6); None:
        plain GD (and then only its code is compiled).
    noise : (ZX, BX, ZY, BY) or None
        Perturbed GD's noise of each side (`fastmf.noise.NoiseStream.draw`, compressed form):
        (runs, steps, rows, k) and (runs, steps, p, k), step j of the call at [:, j]; None:
        no noise (and no noise code compiled).
    summary : (runs, N_SUMMARY) float64, in and out (`layout`): N_ITER, STATUS (RUNNING,
        CONVERGED, DIVERGED), FINAL_LOSS, T1, T0, T_DELTA (-1 until reached). The caller
        sets it once (N_ITER 0, STATUS RUNNING, FINAL_LOSS NaN, stages -1) and passes it
        back to every later call. Runs not RUNNING are left as they are; every RUNNING run
        must be at step t_start.
    t_final : the last step of the whole run (max_iter). The state at step t is recorded
        when t % record_every == 0 and t < t_stop, or t == t_final (`blocks._due`): a loss
        <= tol stops the run (CONVERGED), the first loss <= delta sets T_DELTA. A new state
        with (||X||^2 + ||Y||^2)^2 not finite in float64 stops it (DIVERGED) at its last
        finite state, whose loss goes to FINAL_LOSS.
    losses : (runs, n_cols) float64 out: the record of step t to column t // record_every,
        or t_final // record_every + 1 for an off-stride t_final, where that is < n_cols
        ((runs, 0): keep none).
    proofs : (extremes, vecs, valid, rates, spectral_every) or None
        The per-run extremes of the proofs' quantities, in and out (`_prove`): extremes (runs,
        `layout.N_EXTREMES`) float64, NaN until a step is checked; vecs (runs,
        `layout.N_PROOF_TRACKED`, max(r, k)) float64 and valid (runs, N_PROOF_TRACKED) int64,
        the tracked eigenvectors (zeros to start; carried from call to call like the state);
        rates (runs,) float64, 1 - lr sigma_d / 2 of each run (NaN: no Delta bound); the
        eigenvalues are taken at the recorded steps that are multiples of spectral_every (and
        t_final; 0: never, ||B||_F only). None: nothing of it compiled.
    """
    runs = Xs.shape[0]
    n_blocks = (runs + LANES - 1) // LANES
    for blk in prange(n_blocks):
        mode = mode_on()  # flush-to-zero in each worker thread (`fpmode`)
        lo = blk * LANES
        hi = min(runs, lo + LANES)
        if noise is None:
            _run_block(Xs[lo:hi], Ys[lo:hi], s, lrs[lo:hi], lr_scale, variant, None, tol, t_start, t_stop, t_final,
                       record_every, delta, summary[lo:hi], losses[lo:hi], proofs, lo)  # fmt: skip
        else:
            block = (noise[0][lo:hi], noise[1][lo:hi], noise[2][lo:hi], noise[3][lo:hi])
            _run_block(Xs[lo:hi], Ys[lo:hi], s, lrs[lo:hi], lr_scale, variant, block, tol, t_start, t_stop, t_final,
                       record_every, delta, summary[lo:hi], losses[lo:hi], proofs, lo)  # fmt: skip
        mode_restore(mode)
