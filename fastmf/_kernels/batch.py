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
split form) and the stage tests of `diagnostics.record` (exact Cholesky tests, Ye and Du 2021,
Theorem 3.1): T1 when sigma_min(A)^2 >= sigma_d / 2, then T0 when |P| <= sigma_d / 4.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .blocks import CONVERGED, DIVERGED, RUNNING
from .fpmode import mode_on, mode_restore

LANES = 32
# summary columns
N_ITER, STATUS, FINAL_LOSS, T1, T0, T_DELTA = 0, 1, 2, 3, 4, 5


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
def _half_step(X, Y, s, lr, G, H, Xn):
    """Xn = X (I - lr G) + lr [s o Y[:r]; 0] (eqs 6 and 8 with G = Y^T Y, or 7 and 9),
    subnormals flushed to zero (`fpmode`)."""
    rows, k, lanes = X.shape
    tiny = np.finfo(X.dtype).tiny
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                H[a, b, q] = (1.0 if a == b else 0.0) - lr[q] * G[a, b, q]
    for i in range(rows):
        for b in range(k):
            for q in range(lanes):
                Xn[i, b, q] = 0.0
            for a in range(k):
                for q in range(lanes):
                    Xn[i, b, q] += X[i, a, q] * H[a, b, q]
            if i < s.shape[0]:
                for q in range(lanes):
                    Xn[i, b, q] += lr[q] * s[i] * Y[i, b, q]
            for q in range(lanes):
                if abs(Xn[i, b, q]) < tiny:
                    Xn[i, b, q] = 0.0


@kernel
def _posdef(M, n, c, sign, L, ok):
    """ok[q] &= (c I + sign M[:n, :n, q] is positive definite), by Cholesky lane by lane."""
    lanes = M.shape[2]
    for j in range(n):
        for q in range(lanes):
            d = c + sign * M[j, j, q]
            for p in range(j):
                d -= L[j, p, q] * L[j, p, q]
            if not d > 0.0:
                ok[q] = False
                d = 1.0  # keep this lane's arithmetic finite; its answer is already no
            L[j, j, q] = np.sqrt(d)
        for i in range(j + 1, n):
            for q in range(lanes):
                v = sign * M[i, j, q]
                for p in range(j):
                    v -= L[i, p, q] * L[j, p, q]
                L[i, j, q] = v / L[j, j, q]


@kernel
def _test_T1(X, Y, r, k, sd, A, L, ok1):
    """ok1[q] &= sigma_min(A)^2 > sigma_d / 2 with A = (Up + Vp) / 2, by Cholesky of
    A A^T - sigma_d / 2 (r <= k) or of A^T A - sigma_d / 2."""
    p = min(r, k)
    lanes = X.shape[2]
    for i in range(p):
        for j in range(p):
            for q in range(lanes):
                A[i, j, q] = 0.0
            for c in range(k if r <= k else r):
                for q in range(lanes):
                    if r <= k:
                        A[i, j, q] += 0.25 * (X[i, c, q] + Y[i, c, q]) * (X[j, c, q] + Y[j, c, q])
                    else:
                        A[i, j, q] += 0.25 * (X[c, i, q] + Y[c, i, q]) * (X[c, j, q] + Y[c, j, q])
    _posdef(A, p, -0.5 * sd, 1.0, L, ok1)


@kernel
def _record(X, Y, s, N, M, GUc, GVc, W, loss, pend1, pend0, ok1, ok0):
    """loss[q] (float64) for the states X, Y with Grams N, M and complement Grams GUc, GVc;
    ok1[q] / ok0[q]: does the state pass the T1 / T0 test (tested where T1 / T0 is pending:
    pend1 / pend0; the caller takes T0 only once T1 is reached, as `diagnostics.record`).
    W is (3, n, n, lanes) work."""
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
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                cu, cv = np.float64(GUc[a, b, q]), np.float64(GVc[a, b, q])
                loss[q] += 0.5 * ((np.float64(N[a, b, q]) - cu) * cv + cu * (np.float64(M[a, b, q]) - cv) + cu * cv)
    sd = s[r - 1]
    for q in range(lanes):
        ok1[q] = pend1[q]
        ok0[q] = pend0[q]
    if not ok0.any():  # every stage found (T0 comes last): the loss is all there is to do
        return
    if ok1.any():  # T1: sigma_min(A)^2 >= sigma_d / 2, A = (Up + Vp) / 2: A A^T (r <= k) or A^T A, p x p
        _test_T1(X, Y, r, k, sd, A, L, ok1)
    # T0: -sigma_d / 4 <= P <= sigma_d / 4, P = diag(s) - (E + E^T) / 2
    for i in range(r):
        for j in range(r):
            for q in range(lanes):
                A[i, j, q] = (s[i] if i == j else 0.0) - 0.5 * (E[i, j, q] + E[j, i, q])
    _posdef(A, r, 0.25 * sd, -1.0, L, ok0)
    _posdef(A, r, 0.25 * sd, 1.0, L, ok0)


@kernel
def _freeze(src, dst, q):
    """dst[..., q] = src[..., q]: a finished lane keeps its state."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j, q] = src[i, j, q]


@kernel
def _run_block(X, Y, s, lr, tol, t_stop, record_every, delta, summary, losses):
    """Runs the lanes of one block (states X, Y: rows x k x lanes) to t_stop; see run_batch."""
    rows, k, lanes = X.shape
    n = max(s.shape[0], k)
    Xn, Yn = np.empty_like(X), np.empty_like(Y)
    r = s.shape[0]
    G = np.empty((8, k, k, lanes), X.dtype)
    N, M, Nn, Mn, Nc, Mc, Nnc, Mnc = G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7]
    H = np.empty((k, k, lanes), X.dtype)
    W = np.empty((3, n, n, lanes), X.dtype)
    loss = np.empty(lanes)
    ok1 = np.zeros(lanes, np.bool_)
    ok0 = np.zeros(lanes, np.bool_)
    pend1 = np.ones(lanes, np.bool_)
    pend0 = np.ones(lanes, np.bool_)
    active = np.ones(lanes, np.bool_)
    diverged = np.zeros(lanes, np.bool_)
    for q in range(lanes):
        summary[q, N_ITER] = 0
        summary[q, STATUS] = RUNNING
        summary[q, T1] = summary[q, T0] = summary[q, T_DELTA] = -1
    _grams(X, r, N, Nc)
    _grams(Y, r, M, Mc)
    t = 0
    j = 0
    while True:
        if (t < t_stop and t % record_every == 0) or t == t_stop:
            _record(X, Y, s, N, M, Nc, Mc, W, loss, pend1, pend0, ok1, ok0)
            for q in range(lanes):
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
            j += 1
        if t >= t_stop or not active.any():
            break
        _half_step(X, Y, s, lr, M, H, Xn)
        _half_step(Y, X, s, lr, N, H, Yn)
        _grams(Xn, r, Nn, Nnc)
        _grams(Yn, r, Mn, Mnc)
        for q in range(lanes):
            if active[q]:
                mass = 0.0
                for a in range(k):
                    mass += np.float64(Nn[a, a, q]) + np.float64(Mn[a, a, q])
                if not np.isfinite(mass * mass):
                    summary[q, STATUS] = DIVERGED
                    active[q] = False
                    diverged[q] = t % record_every != 0  # its last finite state, at t, is not recorded yet
                else:
                    summary[q, N_ITER] = t + 1
        if diverged.any():  # its loss, as `fastmf.solve` records the state it returns (no stage
            _record(X, Y, s, N, M, Nc, Mc, W, loss, pend1, pend0, ok1, ok0)  # test: it may have exploded)
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


@kernel(nogil=False, parallel=True)
def run_batch(Xs, Ys, s, lrs, tol, t_stop, record_every, delta, summary, losses):
    """Run i of GD from (Xs[i], Ys[i]) with step lrs[i] for t_stop steps, in blocks of LANES.

    summary : (runs, 6) float64 out: the step reached, status (blocks.RUNNING if it ran to
        t_stop, CONVERGED, DIVERGED), the last recorded loss, T1, T0, T_delta (the first
        recorded step with loss <= delta), -1 where not reached.
    losses : (runs, n_records) float64 out (filled up to each run's last record), or
        (runs, 0) to keep none.
    """
    runs, rows, k = Xs.shape
    n_blocks = (runs + LANES - 1) // LANES
    for blk in prange(n_blocks):
        mode = mode_on()  # flush-to-zero in each worker thread (`fpmode`)
        lo = blk * LANES
        lanes = min(LANES, runs - lo)
        X = np.empty((rows, k, lanes), Xs.dtype)
        Y = np.empty((Ys.shape[1], k, lanes), Ys.dtype)
        for q in range(lanes):
            for i in range(rows):
                for a in range(k):
                    X[i, a, q] = Xs[lo + q, i, a]
            for i in range(Ys.shape[1]):
                for a in range(k):
                    Y[i, a, q] = Ys[lo + q, i, a]
        _run_block(X, Y, s, lrs[lo : lo + lanes], tol, t_stop, record_every, delta,
                   summary[lo : lo + lanes], losses[lo : lo + lanes])  # fmt: skip
        mode_restore(mode)
