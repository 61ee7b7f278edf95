"""`solve`: GD on the principal/complement split, run by the compiled kernel in chunks.

Between chunks the Python layer may stop the run (KeyboardInterrupt); the state and the
history live in arrays the kernel updates in place, so an interrupt loses nothing and the
chunk size never changes the numbers.
"""

from __future__ import annotations

import time

import numpy as np

from . import _kernels as K
from . import stages, theory
from ._validate import finite_float, positive_int
from .init import Factor, stack, start
from .result import SolveResult

# A chunk of steps should take about this long: short enough to honour Ctrl-C promptly,
# long enough that the ~10 us of Python per chunk is noise.
_CHUNK_SECONDS = 0.05
_FIRST_CHUNK = 64


def solve(
    Sigma,
    rank: int,
    lr: float | str,
    max_iter: int,
    *,
    init_scale: float | str | None = None,
    seed=None,
    U0=None,
    V0=None,
    tol: float = 0.0,
    record_every: int = 1,
    spectral_every: int | None = None,
    delta: float | None = None,
    complement: str = "compressed",
) -> SolveResult:
    """Constant-step GD on min 1/2 ||U V^T - Sigma||_F^2 from a random or given start.

    Runs U+ = U + lr R V, V+ = V + lr R^T U with R = Sigma - U V^T (seed 001, eqs 2-3)
    exactly, in the singular basis of Sigma where it splits into eqs (6)-(9); the
    complement is compressed to k x k matrices by default (DESIGN.md section 3), so a step
    costs O(k^3) whatever m and n are. The quantities the proofs track are recorded along
    the way (DESIGN.md section 4, `fastmf._kernels.diagnostics`), and the stages detected.

    Parameters
    ----------
    Sigma : array_like, sparse matrix, LinearOperator or Problem
        The target (m x n). Anything but a Problem is passed to ``Problem(Sigma)``.
    rank : int
        Width k of the factors, 1 <= k <= min(m, n); may differ from the rank r of Sigma.
    lr : float or "theory"
        Step size eta > 0. GD from a small start is stable for lr <= 1 / (3 sigma_1).
        "theory": Theorem 1.1's eta = sigma_d eps^2 / (d sigma_1^3) (`fastmf.theory`).
    max_iter : int
        Number of steps (>= 0).
    init_scale : float, "theory" or None
        Standard deviation eps of the iid Gaussian entries of U0 and V0; default
        1e-3 * sqrt(sigma_1 / (m + n)), which makes ||U0||_op about 1e-3 sqrt(sigma_1)
        whatever the size (the theory's eps also scales as 1 / sqrt(m + n)). "theory":
        Theorem 1.1's eps = sigma_d / sqrt(d^3 sigma_1 (m + n)). Ignored when U0 and V0
        are given.
    seed : int, sequence of int, numpy.random.SeedSequence or None
        Seed of the initialization (see `fastmf.init` for the streams it feeds).
    U0, V0 : array_like, optional
        Initial factors (m x k, n x k), both or neither; not modified.
    tol : float
        Stop at the first recorded step whose loss is <= tol (0 disables the early stop
        unless the loss is exactly 0).
    record_every : int
        Record the diagnostics every this many steps (and at the last step).
    spectral_every : int, optional
        Also record the spectral diagnostics (sigma_min_A, lambda_min_P, P_op, J_op, K_op,
        E_op) at the recorded steps that are multiples of this (and the last); default
        record_every; 0 never. Elsewhere they are NaN.
    delta : float, optional
        Loss level whose first recorded step is `stages.T_delta`; default tol (if > 0).
    complement : {"compressed", "full"}
        "full" keeps the complement as m x k and n x k matrices (one pass over them per
        step); both give the same numbers to rounding.

    Returns
    -------
    SolveResult
        With `history`, `stages`, `status`, `message`, `n_iter`, the small final state
        and the final U, V rebuilt on first access.
    """
    max_iter = positive_int(max_iter, "max_iter", minimum=0)
    tol = finite_float(tol, "tol")
    record_every = positive_int(record_every, "record_every")
    spectral_every = record_every if spectral_every is None else positive_int(spectral_every, "spectral_every", 0)
    delta = (tol if tol > 0 else None) if delta is None else finite_float(delta, "delta", positive=True)
    st = start(Sigma, rank, init_scale, seed, U0, V0, complement)
    problem = st.problem
    if isinstance(lr, str):
        if lr != "theory":
            raise ValueError(f"lr must be a positive number or 'theory', got {lr!r}")
        m, n = problem.shape
        lr = theory.step_size(problem.s, st.init_scale or theory.init_scale(problem.s, m, n))
    lr = finite_float(lr, "lr", positive=True)

    X, Y = stack(st.left), stack(st.right)
    status, n_iter, bad_step, history, (T1, T0) = run_chunks(
        X, Y, problem, lr, tol, max_iter, record_every, spectral_every
    )
    r = problem.rank
    return SolveResult(
        problem=problem,
        rank=st.rank,
        lr=lr,
        complement=complement,
        status=status,
        message=_message(status, n_iter, bad_step, history, lr, tol, max_iter, problem),
        n_iter=n_iter,
        history=history,
        stages=stages.detect(
            history["step"], history["loss"], T1, T0, delta, theory.linear_rate(problem.s, lr), problem.s
        ),
        left=Factor(X[:r].copy(), X[r:].copy(), st.left.W),
        right=Factor(Y[:r].copy(), Y[r:].copy(), st.right.W),
        diverged_at=bad_step if status == "diverged" else None,
        init_scale=st.init_scale,
        seed=st.seed,
    )


def diagnostic_work(r: int, k: int):
    """Work arrays for `diagnostics.record`: (E, D, vecs, valid)."""
    n = max(r, k)
    return np.zeros((r, r)), np.zeros((8, n, n)), np.zeros((K.N_TRACKED, n)), np.zeros(K.N_TRACKED, np.int64)


def run_chunks(X, Y, problem, lr, tol, max_iter, record_every, spectral_every=0):
    """Advance the stacked state (X, Y) in place by max_iter GD steps, calling `run_blocks`
    chunk by chunk; returns (status, n_iter, bad_step, history, (T1, T0))."""
    dtype = problem.dtype
    k = X.shape[1]
    r = problem.rank
    n_records = max_iter // record_every + 2
    steps = np.zeros(n_records, np.int64)
    rec = np.zeros((n_records, K.N_KEYS))
    info = np.zeros(K.N_INFO, np.int64)
    info[K.T1] = info[K.T0] = -1
    Xw, Yw = np.empty_like(X), np.empty_like(Y)
    G = np.zeros((7, k, k), dtype)
    E, D, vecs, valid = diagnostic_work(r, k)
    E = E.astype(dtype)  # np.dot into E needs the state's dtype; D stays float64
    lr_ = dtype.type(lr)
    chunk = _FIRST_CHUNK
    status = "max_iter"
    try:
        while True:
            t_stop = min(info[K.STEP] + chunk, max_iter)
            start_time = time.perf_counter()
            K.run_blocks(
                X, Y, problem.s, lr_, tol, t_stop, max_iter, record_every, spectral_every,
                Xw, Yw, G, E, D, vecs, valid, steps, rec, info,
            )  # fmt: skip
            if info[K.STATUS] != K.RUNNING or info[K.STEP] >= max_iter:
                break
            elapsed = time.perf_counter() - start_time
            chunk = int(np.clip(chunk * _CHUNK_SECONDS / max(elapsed, 1e-6), 1, 4 * chunk))
    except KeyboardInterrupt:
        status = "interrupted"
    status = {K.CONVERGED: "converged", K.DIVERGED: "diverged"}.get(int(info[K.STATUS]), status)
    j = int(info[K.N_RECORDS])
    keys = K.KEYS if spectral_every else K.KEYS[: K.N_CHEAP]
    history = {"step": steps[:j].copy()} | {key: rec[:j, c].copy() for c, key in enumerate(keys)}
    found = tuple(int(info[i]) if info[i] >= 0 else None for i in (K.T1, K.T0))
    return status, int(info[K.STEP]), int(info[K.BAD_STEP]), history, found


def _message(status, n_iter, bad_step, history, lr, tol, max_iter, problem) -> str:
    last = f"loss {history['loss'][-1]:.6g}" if history["loss"].size else "no loss recorded"
    if status == "converged":
        return f"converged: loss {history['loss'][-1]:.6g} <= tol {tol:g} at step {n_iter}"
    if status == "max_iter":
        return f"reached max_iter = {max_iter} steps; {last}"
    if status == "interrupted":
        return f"interrupted (KeyboardInterrupt) at step {n_iter}; the state and history up to it are kept, {last}"
    bound = 1.0 / (3.0 * problem.sigma_1)
    return (
        f"diverged: the iterate went non-finite at step {bad_step} with lr = {lr:g}; the returned state is "
        f"the last finite one (step {n_iter}). GD from a small start is stable for lr <= 1 / (3 sigma_1) "
        f"= {bound:.4g}"
    )
