"""Fused GD steps on the stacked principal/complement state (Ye and Du 2021, eqs 6-9; docs/maths.md section 3).

The state is X = [Up; L_U] and Y = [Vp; L_V]: r principal rows followed by the complement
rows (k' rows when compressed, the m x k complement itself when full). One step is

    X+ = X (I - lr M) + lr [s o Vp; 0],    M = Y^T Y      (eqs 6 and 8)
    Y+ = Y (I - lr N) + lr [s o Up; 0],    N = X^T X      (eqs 7 and 9)

Products go to BLAS (`blas.gemm`: the BLAS SciPy calls unless FASTMF_BLAS says otherwise);
the loops here do only O(rows k) elementwise work. Measured on a 2-core AMD EPYC (znver3) at k = 10, a step
costs 2.1 us this way against 3.1 us for a plainly written loop nest (numba does not
contract to FMA without fastmath, and loops of length k = 10 stay scalar); at k = 64 it
is 7.5 times faster (benchmarks/compare.py). OpenBLAS's own cost for the four small
products is about 1.5 us of the 2.1 at k = 10 (timed from C).

The GD variants (`fastmf.options.Options`; docs/maths.md section 6) change only k x k
factors and the principal rows, so the compressed complement stays exact:

    X+ = X H_X + lr [(s o Vp) Px^-1; 0],   H_X = I - lr (M + (bal/2)(N - M)) Px^-1,   Px = M + lam I (or I)

and alike for Y (alternating: from X+ and N+ = X+^T X+); perturbed GD then adds its noise
to the new state (`perturb`). Plain GD takes exactly the code path it had before them.

Rows are processed in blocks that stay in L2, so the update and the Gram of the new rows
share one pass over memory; a compressed state is one block and is passed whole (making
row views costs ~0.15 us a step at k = 10). Kernels are pure: arrays in, arrays out, no
allocation in the step loop; float32 and float64 states keep their dtype (diagnostics
accumulate in float64).
"""

import numpy as np

from ._jit import kernel
from .blas import gemm
from .diagnostics import householder_r, record_cheap, record_spectral
from .fpmode import flush
from .layout import ALTERNATING, BAD_STEP, BALANCE, CONVERGED, DIVERGED, N_RECORDS, PRECONDITION, STATUS, STEP
from .stages import mark

# elements per row block: 2 blocks of 8192 doubles (X rows and new rows) fit in a 256 KiB L2
_BLOCK_ELEMS = 8192


@kernel
def _block_rows(k):
    return max(1, _BLOCK_ELEMS // k)


@kernel
def _copy(src, dst):
    """dst[...] = src, as a loop: array slice assignment would compile numba's error
    formatting for mismatched shapes, which doubles the compile time of this module."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@kernel
def _add(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] += src[i, j]


@kernel
def _block_grams(B, lo, r, N, Gc, T, split):
    """Add the Gram of the block B = X[lo:lo + len(B)] to N and, if split, the Gram of its
    complement rows (those >= r) to Gc, which the first block holding such rows sets.

    The first block writes N directly. Blocks are visited in the same order by `grams`
    and `half_step`, so N is bitwise the same whichever computes it and whether or not
    Gc is wanted: what is recorded never changes the trajectory.
    """
    if lo == 0:
        gemm(B.T, B, N)
    else:
        gemm(B.T, B, T)
        _add(T, N)
    if split and lo + B.shape[0] > r:
        if lo <= r:  # the first block holding complement rows sets Gc (its complement part on its own)
            C = B[r - lo :]
            gemm(C.T, C, Gc)
        else:  # (a block with lo > r >= 1 left its Gram in T above)
            _add(T, Gc)


@kernel
def grams(X, r, N, Gc, T, split):
    """N = X^T X and, if split, Gc = X[r:]^T X[r:] (the complement block of N)."""
    rows, k = X.shape
    step = _block_rows(k)
    if split and rows <= r:  # no complement rows
        Gc[:, :] = 0
    for lo in range(0, rows, step):  # (a single block is passed whole: views cost ~0.15 us a step at k = 10)
        _block_grams(X if rows <= step else X[lo : lo + step], lo, r, N, Gc, T, split)


@kernel
def _update_block(B, Y, s, lr, Mh, Bn, lo):
    """Bn = B Mh plus lr s_i Y_i on the principal rows i = lo + j < r (Y: the other side's
    state, or its `scaled_rows`), subnormals flushed to zero (`fpmode`)."""
    gemm(B, Mh, Bn)
    k = B.shape[1]
    for j in range(min(B.shape[0], s.shape[0] - lo)):
        c = lr * s[lo + j]
        for b in range(k):
            Bn[j, b] += c * Y[lo + j, b]
    flush(Bn)


@kernel
def half_step(X, Y, s, lr, Mh, Xn, N, Gc, T, split):
    """One side of eqs (6)-(9): Xn = X Mh + lr [s o Y[:r]; 0] with Mh = I - lr Y^T Y.

    Also returns N = Xn^T Xn (and Gc, see `grams`), accumulated while each block of Xn
    is in cache: one pass over memory for a tall X.
    """
    rows, k = X.shape
    r = s.shape[0]
    step = _block_rows(k)
    if split and rows <= r:  # no complement rows
        Gc[:, :] = 0
    for lo in range(0, rows, step):
        B, Bn = (X, Xn) if rows <= step else (X[lo : lo + step], Xn[lo : lo + step])
        _update_block(B, Y, s, lr, Mh, Bn, lo)
        _block_grams(Bn, lo, r, N, Gc, T, split)


@kernel
def _due(t, t_stop, t_final, record_every):
    """Is the state at step t recorded by a call that runs up to t_stop?"""
    return (t < t_stop and t % record_every == 0) or t == t_final


@kernel
def shifted(G, lr, H):
    """H = I - lr G, the factor of the GD step (I - lr Y^T Y or I - lr X^T X)."""
    k = G.shape[0]
    for a in range(k):
        for b in range(k):
            H[a, b] = -lr * G[a, b]
        H[a, a] += 1


@kernel
def spd_inverse(A, Ainv, C):
    """Ainv = A^-1 for a symmetric positive definite k x k A, from its Cholesky factor
    A = C C^T (C: k x k work, lower triangle); sums in float64. A non-positive pivot (A
    singular, or not positive definite in rounding) gives NaN, which stops the run as
    diverged (`overflows`)."""
    k = A.shape[0]
    for j in range(k):
        for i in range(j, k):
            acc = np.float64(A[i, j])
            for p in range(j):
                acc -= np.float64(C[i, p]) * np.float64(C[j, p])
            if i == j:
                C[i, j] = np.sqrt(acc) if acc > 0 else np.nan
            else:
                C[i, j] = acc / C[j, j]
    for c in range(k):  # column c of A^-1: C y = e_c, then C^T x = y
        for i in range(k):
            acc = 1.0 if i == c else 0.0
            for p in range(i):
                acc -= np.float64(C[i, p]) * np.float64(Ainv[p, c])
            Ainv[i, c] = acc / C[i, i]
        for i in range(k - 1, -1, -1):
            acc = np.float64(Ainv[i, c])
            for p in range(i + 1, k):
                acc -= np.float64(C[p, i]) * np.float64(Ainv[p, c])
            Ainv[i, c] = acc / C[i, i]


@kernel
def step_factor(G, Gown, lr, variant, H, Pinv, C, T):
    """H = I - lr (G + (bal/2)(Gown - G)) P^-1, the factor of one side's step: G is the other
    factor's Gram, Gown this one's, P = G + lam I with ScaledGD (variant[PRECONDITION] = lam
    >= 0; then Pinv = P^-1), else I. C and T are k x k work. Plain GD (variant None, or
    neither): `shifted`."""
    if variant is None:
        shifted(G, lr, H)
        return
    bal, lam = variant[BALANCE], variant[PRECONDITION]
    if bal == 0 and lam < 0:
        shifted(G, lr, H)
        return
    k = G.shape[0]
    for a in range(k):
        for b in range(k):
            T[a, b] = G[a, b] + 0.5 * bal * (Gown[a, b] - G[a, b])
    if lam >= 0:
        for a in range(k):
            for b in range(k):
                H[a, b] = G[a, b]
            H[a, a] += lam
        spd_inverse(H, Pinv, C)
        gemm(T, Pinv, C)
        _copy(C, T)
    shifted(T, lr, H)


@kernel
def scaled_rows(Y, Pinv, out):
    """out = Y[:rows] P^-1 (rows: out's): with ScaledGD, what the principal rows of a step
    add lr s_i times in place of the other side's rows (`side_step`, `direct.run_direct`)."""
    gemm(Y[: out.shape[0]], Pinv, out)


@kernel
def side_step(X, Y, s, lr, H, Xn, N, Gc, T, split, scaled, Pinv, P):
    """`half_step` for one side of a step: Xn = X H + lr [s o Y[:r]; 0], with ScaledGD
    (`scaled`) lr [s o (Y[:r] P^-1); 0] (P: r x k work)."""
    if scaled:
        scaled_rows(Y, Pinv, P)
        half_step(X, P, s, lr, H, Xn, N, Gc, T, split)
    else:
        half_step(X, Y, s, lr, H, Xn, N, Gc, T, split)


@kernel
def variant_step(X, Y, s, lr, variant, Xw, Yw, G, P, split):
    """One step of a GD variant (balance, alternating, ScaledGD: `step_factor`, `side_step`)
    from X, Y into Xw, Yw, with N = Xw^T Xw, M = Yw^T Yw in G as `run_blocks` keeps them."""
    N, M, GUc, GVc, Mh, Nh, T, C, PX, PY = G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7], G[8], G[9]
    scaled = variant[PRECONDITION] >= 0
    step_factor(M, N, lr, variant, Mh, PX, C, T)
    if variant[ALTERNATING] == 0:
        step_factor(N, M, lr, variant, Nh, PY, C, T)
    side_step(X, Y, s, lr, Mh, Xw, N, GUc, T, split, scaled, PX, P)
    if variant[ALTERNATING] != 0:  # the Y side steps from the new X and N = Xw^T Xw
        step_factor(N, M, lr, variant, Nh, PY, C, T)
        side_step(Y, Xw, s, lr, Nh, Yw, M, GVc, T, split, scaled, PY, P)
    else:
        side_step(Y, X, s, lr, Nh, Yw, M, GVc, T, split, scaled, PY, P)


@kernel
def perturb(X, r, Z, B, Q):
    """Perturbed GD's noise on a new state (`fastmf.noise`): X += Z and, when B has rows (a
    compressed complement, exact in law), the complement rows X[r:] replaced by the R of
    the QR of [X[r:]; B]. Q is ((rows - r) + len(B)) x k work."""
    _add(Z, X)
    p = B.shape[0]
    if p == 0:
        return
    rows, k = X.shape[0] - r, X.shape[1]
    A = Q[: rows + p]
    for i in range(rows):
        for c in range(k):
            A[i, c] = X[r + i, c]
    for i in range(p):
        for c in range(k):
            A[rows + i, c] = B[i, c]
    householder_r(A)
    for i in range(rows):
        for c in range(k):
            X[r + i, c] = A[i, c] if c >= i else 0.0


@kernel
def overflows(N, M):
    """Is (||X||^2 + ||Y||^2)^2 = (tr N + tr M)^2 not finite in float64? While it is finite,
    so is every loss term: the divergence test of every GD kernel."""
    mass = 0.0
    for a in range(N.shape[0]):
        mass += np.float64(N[a, a]) + np.float64(M[a, a])
    return not np.isfinite(mass * mass)


@kernel(entry=True)
def run_blocks(
    X, Y, s, lrs, variant, tol, t_stop, t_final, record_every, spectral_every, Xw, Yw, G, P, noise, Q, E, D, vecs,
    valid, steps, rec, info, tall,
):  # fmt: skip
    """Advance GD (eqs 6-9, or a variant) on the stacked state from step info[STEP] to t_stop.

    X, Y : (r + p, k) and (r + q, k) state, updated in place; Xw, Yw work arrays alike.
    lrs : the step sizes from step t0 = info[STEP] on: step t takes lrs[min(t - t0, len - 1)].
    variant : float64 (N_VARIANT,), `layout.BALANCE`, `ALTERNATING`, `PRECONDITION`, taken by
    `variant_step`; None: plain GD, and then only its code is compiled.
    G : (10, k, k) and P (r, k) work.
    noise : (ZX, BX, ZY, BY), perturbed GD's noise of step t at index t - t0 (`perturb`), or
    None (no noise code compiled); Q: the work of `perturb`.
    E, D, vecs, valid, tall: see `diagnostics.record_cheap` and `record_spectral` (a record takes Xw, Yw as
    the work of a tall complement's QR: they are free until the step that follows it). The state at step t
    is recorded into steps[j], rec[j] (j = info[N_RECORDS]) when t % record_every == 0
    (before t_stop) or t == t_final, with the spectral quantities when spectral_every > 0
    divides t (or t == t_final); the trajectory never depends on what is recorded. A
    recorded loss <= tol stops with CONVERGED. A new state with (||X||^2 + ||Y||^2)^2 not
    finite in float64 stops with DIVERGED, leaving the last state (whose loss is finite)
    in X, Y and the step that overflowed in info[BAD_STEP].
    """
    r = s.shape[0]
    N, M, GUc, GVc, Mh, Nh, T = G[0], G[1], G[2], G[3], G[4], G[5], G[6]
    t = t0 = info[STEP]
    split = _due(t, t_stop, t_final, record_every)
    grams(X, r, N, GUc, T, split)
    grams(Y, r, M, GVc, T, split)
    swapped = False
    while True:
        if _due(t, t_stop, t_final, record_every):
            j = info[N_RECORDS]
            spectral = spectral_every > 0 and (t % spectral_every == 0 or t == t_final)
            f = record_cheap(X, Y, s, N, GUc, M, GVc, E, rec[j], tall, Xw, Yw)  # a record (`diagnostics`): 3 parts
            mark(X, Y, s, E, t, spectral, D, info)
            record_spectral(X, Y, s, N, GUc, M, GVc, E, spectral, rec[j], D, vecs, valid)
            steps[j] = t
            info[N_RECORDS] = j + 1
            if f <= tol:
                info[STATUS] = CONVERGED
                break
        if t >= t_stop:
            break
        lr = lrs[min(t - t0, lrs.shape[0] - 1)]
        split = _due(t + 1, t_stop, t_final, record_every)
        if variant is None:
            shifted(M, lr, Mh)
            shifted(N, lr, Nh)
            half_step(X, Y, s, lr, Mh, Xw, N, GUc, T, split)
            half_step(Y, X, s, lr, Nh, Yw, M, GVc, T, split)
        else:
            variant_step(X, Y, s, lr, variant, Xw, Yw, G, P, split)
        if noise is not None:
            perturb(Xw, r, noise[0][t - t0], noise[1][t - t0], Q)
            perturb(Yw, r, noise[2][t - t0], noise[3][t - t0], Q)
            grams(Xw, r, N, GUc, T, split)
            grams(Yw, r, M, GVc, T, split)
        if overflows(N, M):
            info[STATUS] = DIVERGED
            info[BAD_STEP] = t + 1
            break
        X, Xw = Xw, X
        Y, Yw = Yw, Y
        swapped = not swapped
        t += 1
        info[STEP] = t
    if swapped:  # the caller's X is our Xw: leave the state where it was passed in
        _copy(X, Xw)
        _copy(Y, Yw)


@kernel(entry=True)
def flow_rhs(X, Y, s, dX, dY, G):
    """Gradient flow on the stacked state (gradient-flow paper eqs 1-2, Ye and Du 2021 eqs 6-9, lr -> dt):

        dX/dt = -X M + [s o Vp; 0],    dY/dt = -Y N + [s o Up; 0],    M = Y^T Y, N = X^T X.

    G is (4, k, k) work.
    """
    r = s.shape[0]
    N, M, Gc, T = G[0], G[1], G[2], G[3]
    grams(X, r, N, Gc, T, False)
    grams(Y, r, M, Gc, T, False)
    k = X.shape[1]
    for a in range(k):
        for b in range(k):
            N[a, b] = -N[a, b]
            M[a, b] = -M[a, b]
    _update_block(X, Y, s, 1.0, M, dX, 0)
    _update_block(Y, X, s, 1.0, N, dY, 0)


@kernel(entry=True)
def state_record(X, Y, s, G, E, t, spectral, row, D, vecs, valid, info, tall, Xw, Yw):
    """A record (`diagnostics`) of a state given on its own (the flow's) into `row`, with the stage
    tests of step t; returns the loss. G is (5, k, k) work; E, D, vecs, valid as in `run_blocks`; tall,
    Xw, Yw as in `diagnostics.record_cheap`."""
    r = s.shape[0]
    N, M, GUc, GVc, T = G[0], G[1], G[2], G[3], G[4]
    grams(X, r, N, GUc, T, True)
    grams(Y, r, M, GVc, T, True)
    loss = record_cheap(X, Y, s, N, GUc, M, GVc, E, row, tall, Xw, Yw)
    mark(X, Y, s, E, t, spectral, D, info)
    record_spectral(X, Y, s, N, GUc, M, GVc, E, spectral, row, D, vecs, valid)
    return loss
