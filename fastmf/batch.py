"""`solve_batch`: many seeded GD runs on one problem, advanced in one compiled call.

The theorems hold "with high probability over the initialization"; studying them takes
thousands of runs. Each run is `fastmf.solve(problem, rank, lr, max_iter, seed=...)` (same
start, same trajectory to rounding, same stages), in blocks of runs advanced together as
vectors (`fastmf._kernels.batch`), the blocks in parallel.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import _kernels as K
from . import stages
from ._validate import finite_float, positive_int
from .init import stack, start
from .problem import Problem
from .scaling import Scale
from .solver import internal_lr

_STATUS = {K.RUNNING: "max_iter", K.CONVERGED: "converged", K.DIVERGED: "diverged"}  # a run's end
# One batch kernel at a time in this process: Numba's workqueue threading layer (the one
# available without TBB or OpenMP) aborts the process when two threads launch parallel
# kernels at once, and each call already uses every Numba thread.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(eq=False)
class BatchResult:
    """Outcome of `solve_batch`: one entry per run, in the order of `seeds`.

    Attributes
    ----------
    seed, lr, init_scale : ndarray
        What each run started from.
    n_iter : ndarray of int
        The step each run ended at.
    status : ndarray of str
        "max_iter", "converged" (a recorded loss <= tol) or "diverged".
    final_loss : ndarray
        The last recorded loss of each run.
    T1, T0, T_delta : ndarray of float
        Stage steps (`fastmf.stages`), NaN where not reached; exact to `record_every`.
    steps, losses : ndarray or None
        With ``history=True``: the recorded steps (shared by all runs) and the losses,
        runs x len(steps), NaN past a run's end.
    """

    seed: np.ndarray
    lr: np.ndarray
    init_scale: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray
    final_loss: np.ndarray
    T1: np.ndarray
    T0: np.ndarray
    T_delta: np.ndarray
    steps: np.ndarray | None = None
    losses: np.ndarray | None = None

    def table(self) -> dict:
        """The per-run summary as columns of equal length (``pandas.DataFrame(result.table())``)."""
        names = ("seed", "lr", "init_scale", "n_iter", "status", "final_loss", "T1", "T0", "T_delta")
        return {name: getattr(self, name) for name in names}

    def frame(self):
        """`table` as a pandas DataFrame (pandas is an optional extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("frame() needs pandas: pip install pandas (or the fastmf-gd[pandas] extra)") from None
        return pd.DataFrame(self.table())


def solve_batch(
    problem,
    rank: int,
    lr,
    max_iter: int,
    *,
    seeds,
    init_scale=None,
    tol: float = 0.0,
    record_every: int = 1,
    delta: float | None = None,
    history: bool = False,
) -> BatchResult:
    """GD from one random start per seed (Ye and Du 2021, eqs 6-9, as `fastmf.solve`), all runs
    in one compiled call, parallel over runs (numba threads: `numba.set_num_threads`).

    Run i is ``fastmf.solve(problem, rank, lr[i], max_iter, seed=seeds[i],
    init_scale=init_scale[i], tol=tol, record_every=record_every, delta=delta)``: the same
    start and, to rounding, the same trajectory (solve's products are BLAS's, summed in
    another order). Its numbers are the same bit for bit whatever the number of threads,
    the batch size or its place in the batch.

    Parameters
    ----------
    problem : Problem or anything `Problem` accepts
        The target; its basis is computed once for all runs.
    rank : int
        Width k of the factors.
    lr : float or array_like
        Step size, one for all runs or one per run.
    max_iter : int
        Steps per run.
    seeds : sequence of int
        One seed per run (see `fastmf.init.seed_streams`).
    init_scale : float, array_like or None
        As in `fastmf.solve` (None: its default), one or one per run.
    tol, record_every, delta
        As in `fastmf.solve`; the spectral diagnostics are never recorded (T1 and T0 do
        not need them).
    history : bool
        Keep each run's recorded losses: 8 bytes per record, (max_iter // record_every + 2)
        records per run. Without it a run keeps only its summary (72 bytes), and the
        working memory is that of one run per thread.
    """
    problem = problem if isinstance(problem, Problem) else Problem(problem)
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or seeds.dtype.kind not in "iu":
        raise ValueError("seeds must be a non-empty 1-D sequence of integers, one per run, e.g. range(1000)")
    runs = seeds.size
    max_iter = positive_int(max_iter, "max_iter", minimum=0)
    record_every = positive_int(record_every, "record_every")
    tol = finite_float(tol, "tol")
    delta = (tol if tol > 0 else None) if delta is None else finite_float(delta, "delta", positive=True)
    lrs = _per_run(lr, "lr", runs)
    scales = _per_run(init_scale, "init_scale", runs) if init_scale is not None else [None] * runs
    starts = [start(problem, rank, scales[i], int(seeds[i]), None, None, "compressed") for i in range(runs)]
    # the kernel works at the internal scale of `solve` (fastmf.scaling: exact)
    scale = Scale.of(problem.sigma_1)
    s = scale.inward(problem.s, 1)
    Xs = scale.inward(np.stack([stack(st.left) for st in starts]), 0.5)
    Ys = scale.inward(np.stack([stack(st.right) for st in starts]), 0.5)
    inner_lrs = np.array([internal_lr(scale, lr, s[0], problem.dtype) for lr in lrs], problem.dtype)
    inner_tol = min(scale.inward(tol, 2), stages.converged_level(s, starts[0].rank))
    summary = np.full((runs, K.N_SUMMARY), -1.0)  # stages not reached
    summary[:, K.N_ITER] = 0
    summary[:, K.STATUS] = K.RUNNING
    summary[:, K.FINAL_LOSS] = np.nan
    steps = np.unique(np.r_[np.arange(0, max_iter + 1, record_every), max_iter])  # the recorded steps
    losses = np.full((runs, steps.size if history else 0), np.nan)
    with _ONE_AT_A_TIME:
        K.run_batch(Xs, Ys, s, inner_lrs, inner_tol, 0, max_iter, max_iter, record_every,
                    -1.0 if delta is None else scale.inward(delta, 2), summary, losses)  # fmt: skip
    final_loss = scale.outward(summary[:, K.FINAL_LOSS], 2)
    losses = scale.outward(losses, 2)
    stage = summary[:, [K.T1, K.T0, K.T_DELTA]]
    stage[stage < 0] = np.nan
    return BatchResult(
        seed=seeds.copy(),
        lr=lrs,
        init_scale=np.array([st.init_scale for st in starts]),
        n_iter=summary[:, K.N_ITER].astype(np.int64),
        status=np.array([_STATUS[int(c)] for c in summary[:, K.STATUS]]),
        final_loss=final_loss,
        T1=stage[:, 0],
        T0=stage[:, 1],
        T_delta=stage[:, 2],
        steps=steps if history else None,
        losses=losses if history else None,
    )


def _per_run(value, name, runs) -> np.ndarray:
    """One positive float per run, from a scalar or an array of `runs` values."""
    if isinstance(value, str):
        raise ValueError(f"{name} must be a number or one number per run for solve_batch, got {value!r}")
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(runs, float(arr))
    if arr.shape != (runs,):
        raise ValueError(f"{name} must be one number or {runs} numbers (one per seed), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0 for every run")
    return arr
