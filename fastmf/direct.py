"""The direct path: GD on a dense Sigma in its own coordinates (Ye and Du 2021, eqs 2-3).

`fastmf.solve(..., method="direct")` runs here. It needs no singular basis, so it suits a
Sigma that is not low rank (where the split engine would need a full SVD first) and short
runs; every step streams Sigma once (`fastmf._kernels.direct`). Only the basis-free
quantities are recorded: the loss and the imbalance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from . import _kernels as K
from . import stages
from ._validate import check_fits, finite_float, is_dask_array, real_array
from .init import checked_start, default_scale, gaussian, seed_streams
from .monitor import Monitor
from .problem import Problem
from .result import DirectResult
from .scaling import Scale
from .solver import Recorder, execute, internal_lr, message

# Below this fraction of ||Sigma||_F^2, 2 f is summed from the residual instead of the
# identity in `_kernels.direct` (whose rounding error is a few eps ||Sigma||_F^2): the
# recorded float64 loss then keeps about 10 digits everywhere. float32 always sums R.
_EXACT_BELOW = {np.dtype(np.float64): 1e-4, np.dtype(np.float32): np.inf}
HISTORY_KEYS = ("loss", "imbalance")


@dataclass(frozen=True)
class DirectSettings:
    """What fixes a direct run besides its start (the fields `solver.execute` reads)."""

    lr: float
    max_iter: int
    tol: float
    record_every: int
    delta: float | None
    checkpoint: None = None
    checkpoint_every: None = None


class DirectRun(Recorder):
    """The direct kernel's arrays: Sigma, the state U, V, work, the history.

    The run is kept in the units of the power of 4 nearest max |Sigma_ij| (`fastmf.scaling`;
    exact), so that no scale of Sigma overflows or underflows; U, V, lr, tol are given and
    `state` returns them in the user's units. Sigma itself is used as it is, the kernel
    scaling its products, unless its scale is beyond the square root of the dtype's range
    (1e+-154 in float64, 1e+-19 in float32): then the run holds a scaled copy of it. Having
    no spectrum, the converged level (`stages.converged_level`) takes the best loss of width k
    as 0.
    """

    def __init__(self, S, U, V, lr, tol, max_iter, record_every):
        scale = Scale.of(K.absmax(S))
        super().__init__(max_iter, record_every, scale)
        dtype = S.dtype
        (m, n), k = S.shape, U.shape[1]
        self.U, self.V = scale.inward(U, 0.5), scale.inward(V, 0.5)
        if abs(2 * scale.e) <= np.finfo(dtype).maxexp // 2:  # the kernel scales its products by sc
            self.S, self.sc = S, dtype.type(scale.inward(1.0, 1))
        else:  # near the ends of the dtype's range a product with Sigma itself could leave it: a scaled copy
            self.S, self.sc = scale.inward(S, 1), dtype.type(1.0)
        self.s2 = K.norm2(self.S, self.sc)
        self.exact_below = _EXACT_BELOW[dtype]
        # ||Sigma||_F >= sigma_1 stands in for sigma_1 (never computed here): the test of
        # internal_lr then errs towards not warning
        self.lr = internal_lr(scale, lr, np.sqrt(self.s2), dtype)
        self.level = stages.CONVERGED_FRACTION * 0.5 * self.s2
        self.tol = min(scale.inward(tol, 2), self.level)
        self.Uw, self.Vw, self.SV = np.empty_like(U), np.empty_like(V), np.empty_like(U)
        self.STU, self.T = np.empty_like(V), np.empty_like(V)
        self.G = np.zeros((4, k, k), dtype)
        self.B = np.empty((min(m, K.block_rows(n)), n), dtype)

    def history(self) -> dict:
        return self._history(HISTORY_KEYS)

    def bookkeeping(self) -> dict:
        return {}

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of U, V in the user's units."""
        return self.scale.outward(self.U, 0.5).copy(), self.scale.outward(self.V, 0.5).copy()

    def _call(self, t_stop, t_final):
        K.run_direct(
            self.S, self.sc, self.s2, self.exact_below, self.U, self.V, self.lr, self.tol, t_stop, t_final,
            self.record_every, self.Uw, self.Vw, self.SV, self.STU, self.T, self.G, self.B, self.steps, self.rec,
            self.info,
        )  # fmt: skip


def top_singular_value(S: np.ndarray) -> float:
    """sigma_1 of a dense matrix: LAPACK for small ones, else Lanczos (ARPACK) to ~1e-15; of
    S / c for c the power of 4 nearest max |S_ij| (exact), so that no scale of S overflows or
    underflows inside the solver (for Lanczos, 1 / c multiplies the vectors: S is not copied)."""
    c = Scale.of(K.absmax(S))
    if min(S.shape) <= 128:
        return c.outward(float(np.linalg.norm(c.inward(S.astype(np.float64), 1), 2)), 1)
    A, inv = np.asarray(S, dtype=np.float64), c.inward(1.0, 1)
    op = scipy.sparse.linalg.LinearOperator(
        A.shape, matvec=lambda x: A @ (x * inv), rmatvec=lambda y: A.T @ (y * inv), dtype=np.float64
    )
    v0 = np.random.default_rng(0).standard_normal(min(S.shape))
    return c.outward(float(scipy.sparse.linalg.svds(op, k=1, v0=v0, return_singular_vectors=False)[0]), 1)


def direct_start(Sigma, rank, U0, V0):
    """Validated (S, k, U0, V0) for the direct path: S dense in its dtype and C order."""
    if isinstance(Sigma, Problem):
        if Sigma.kind != "dense":
            raise ValueError(
                f"method='direct' needs Sigma as a dense array, got a Problem of kind {Sigma.kind!r}: "
                "use method='split' (or 'auto')"
            )
        Sigma = Sigma.Sigma
    if scipy.sparse.issparse(Sigma) or isinstance(Sigma, scipy.sparse.linalg.LinearOperator) or is_dask_array(Sigma):
        raise ValueError(
            "method='direct' needs Sigma as a dense array in memory: use method='split' (or 'auto') for it"
        )
    S = np.ascontiguousarray(real_array(Sigma, "Sigma", 2))
    return (S, *checked_start(*S.shape, rank, U0, V0))


def solve_direct(S, k, lr, max_iter, init_scale, seed, U0, V0, settings_args, monitor: Monitor) -> DirectResult:
    """`fastmf.solve` on the direct path, for a validated dense S (its dtype, C order) and
    the validated (tol, record_every, delta); U0, V0 validated float64 or None."""
    tol, record_every, delta = settings_args
    m, n = S.shape
    if isinstance(lr, str) or isinstance(init_scale, str):
        raise ValueError(
            "lr='theory' and init_scale='theory' need the singular values of Sigma, which the direct path "
            "never computes: use method='split', or give numbers"
        )
    lr = finite_float(lr, "lr", positive=True)
    check_fits((2 * (m + n), k), S.dtype, "the direct path's factors", "use a smaller rank")
    if U0 is None:
        if init_scale is None:
            init_scale = default_scale(top_singular_value(S), m, n)
        init_scale = finite_float(init_scale, "init_scale", positive=True)
        if seed is None:
            seed = np.random.SeedSequence().entropy
        U0, V0 = gaussian(np.random.default_rng(seed_streams(seed)[0]), m, n, k, init_scale)
    else:
        init_scale = seed = None
    settings = DirectSettings(lr, max_iter, tol, record_every, delta)
    run = DirectRun(S, U0.astype(S.dtype), V0.astype(S.dtype), lr, tol, max_iter, record_every)

    def wrap(status, _bookkeeping):
        history = run.history()
        bad_step = int(run.info[K.BAD_STEP])
        sigma_1 = top_singular_value(S) if status == "diverged" else np.nan
        U, V = run.state()
        level = run.scale.outward(run.level, 2)
        return DirectResult(
            U=U,
            V=V,
            rank=k,
            lr=lr,
            status=status,
            message=message(status, run.step, bad_step, history, settings, sigma_1, level, resumable=False),
            n_iter=run.step,
            history=history,
            stages=stages.detect(
                history["step"], run.internal_loss(), None, None, run.scale.inward(delta, 2), None, None, delta
            ),
            diverged_at=bad_step if status == "diverged" else None,
            init_scale=init_scale,
            seed=seed,
        )

    return execute(run, settings, monitor, wrap)
