"""Many GD runs in one compiled call (`fastmf.solve_batch`), parallel over runs.

Each run is `blocks.run_blocks` from step 0 to t_stop on its own state with its own work
arrays, so a run's numbers depend on nothing but its start and settings: not on the number
of threads, the batch size or its place in the batch (and they equal `fastmf.solve`'s).
Only a summary of each run is kept, and its loss history when asked.
"""

import numpy as np
from numba import njit, prange

from .blocks import N_RECORDS, STATUS, STEP, run_blocks
from .diagnostics import N_INFO, N_KEYS, N_TRACKED, T0, T1


@njit(cache=True, parallel=True)
def run_batch(Xs, Ys, s, lrs, tol, t_stop, record_every, spectral_every, delta, summary, losses):
    """Advance run i from (Xs[i], Ys[i]) with step lrs[i] to t_stop (in place).

    summary : (runs, 6) float64 out: final step, status, recorded final loss, T1, T0 and
        T_delta (the first recorded step with loss <= delta; -1 where not reached).
    losses : (runs, n_records) float64 out, the recorded losses (NaN past a run's end), or
        (runs, 0) to keep none.
    """
    runs, rows_x, k = Xs.shape
    r = s.shape[0]
    n = max(r, k)
    n_rec = t_stop // record_every + 2
    for i in prange(runs):
        X, Y = Xs[i], Ys[i]
        info = np.zeros(N_INFO, np.int64)
        info[T1] = -1
        info[T0] = -1
        steps = np.zeros(n_rec, np.int64)
        rec = np.full((n_rec, N_KEYS), np.nan)
        run_blocks(
            X, Y, s, lrs[i], tol, t_stop, t_stop, record_every, spectral_every, np.empty_like(X), np.empty_like(Y),
            np.zeros((7, k, k), X.dtype), np.zeros((r, r), X.dtype), np.zeros((8, n, n)), np.zeros((N_TRACKED, n)),
            np.zeros(N_TRACKED, np.int64), steps, rec, info,
        )  # fmt: skip
        j = info[N_RECORDS]
        t_delta = -1
        for a in range(j):
            if rec[a, 0] <= delta:
                t_delta = steps[a]
                break
        summary[i, 0] = info[STEP]
        summary[i, 1] = info[STATUS]
        summary[i, 2] = rec[j - 1, 0]
        summary[i, 3] = info[T1]
        summary[i, 4] = info[T0]
        summary[i, 5] = t_delta
        for a in range(min(j, losses.shape[1])):
            losses[i, a] = rec[a, 0]
