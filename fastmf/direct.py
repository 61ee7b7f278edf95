"""The direct path: GD on a dense Sigma in its own coordinates (Ye and Du 2021, eqs 2-3).

`fastmf.solve(..., method="direct")` runs here. It needs no singular basis, so it suits a
Sigma that is not low rank (where the split engine would need a full SVD first) and short
runs; every step streams Sigma once (`fastmf._kernels.direct`). Only the basis-free
quantities are recorded: the loss and the imbalance.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from . import _kernels as K
from . import checkpoint, stages
from ._validate import check_fits, is_dask_array, real_array
from .init import checked_start, gaussian, seed_streams
from .problem import Problem
from .recorder import Recorder
from .result import SolveResult
from .scaling import Scale
from .status import gd_message

# Below this fraction of ||Sigma||_F^2, 2 f is summed from the residual instead of the
# identity in `_kernels.direct` (whose rounding error is a few eps ||Sigma||_F^2): the
# recorded float64 loss then keeps about 10 digits everywhere. float32 always sums R.
_EXACT_BELOW = {np.dtype(np.float64): 1e-4, np.dtype(np.float32): np.inf}


class DirectRun(Recorder):
    """The direct kernel's arrays: Sigma, the state U, V, work, the history; and the engine
    operations of `fastmf.driver`.

    The run is kept in the units of the power of 4 nearest max |Sigma_ij| (`fastmf.scaling`;
    exact), so that no scale of Sigma overflows or underflows; U, V, lr, tol are given and
    `state` returns them in the user's units. Sigma itself is used as it is, the kernel
    scaling its products, unless its scale is beyond the square root of the dtype's range
    (1e+-154 in float64, 1e+-19 in float32): then the run holds a scaled copy of it. Having
    no spectrum, the converged level (`stages.converged_level`) takes the best loss of width k
    as 0.

    Parameters
    ----------
    S : ndarray
        Sigma, dense, C order, in its dtype.
    U, V : ndarray
        The start (or, restoring, the state reached), in the user's units.
    options : Options
        Resolved.
    """

    keys = ("loss", "imbalance")

    def __init__(self, S, U, V, options):
        scale = Scale.of(K.absmax(S))
        super().__init__(options.max_iter, options.record_every, scale)
        self.options, self.Sigma = options, S
        dtype = S.dtype
        (m, n), k = S.shape, U.shape[1]
        self.U, self.V = scale.inward(U.astype(dtype), 0.5), scale.inward(V.astype(dtype), 0.5)
        if abs(2 * scale.e) <= np.finfo(dtype).maxexp // 2:  # the kernel scales its products by sc
            self.S, self.sc = S, dtype.type(scale.inward(1.0, 1))
        else:  # near the ends of the dtype's range a product with Sigma itself could leave it: a scaled copy
            self.S, self.sc = scale.inward(S, 1), dtype.type(1.0)
        self.s2 = K.norm2(self.S, self.sc)
        self.exact_below = _EXACT_BELOW[dtype]
        # ||Sigma||_F >= sigma_1 stands in for sigma_1 (never computed here): the test of
        # internal_lr then errs towards not warning
        self.variants(options, np.sqrt(self.s2), dtype, [(m, k, None), (n, k, None)])
        self.level = stages.CONVERGED_FRACTION * 0.5 * self.s2
        self.tol = min(scale.inward(options.tol, 2), self.level)
        self.Uw, self.Vw, self.SV = np.empty_like(self.U), np.empty_like(self.V), np.empty_like(self.U)
        self.STU, self.T = np.empty_like(self.V), np.empty_like(self.V)
        self.G = np.zeros((8, k, k), dtype)
        scaled = options.precondition is not None  # ScaledGD's Sigma V P^-1 and Sigma^T U P^-1
        self.P = (np.empty((m if scaled else 0, k), dtype), np.empty((n if scaled else 0, k), dtype))
        self.B = np.empty((min(m, K.block_rows(n)), n), dtype)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of U, V in the user's units."""
        return self.scale.outward(self.U, 0.5).copy(), self.scale.outward(self.V, 0.5).copy()

    def result(self, status: str) -> SolveResult:
        options = self.options
        history = self.history()
        bad_step = int(self.info[K.BAD_STEP])
        sigma_1 = top_singular_value(self.Sigma) if status == "diverged" else np.nan
        U, V = self.state()
        level = self.scale.outward(self.level, 2)
        loss = float(history["loss"][-1]) if history["loss"].size else None
        found = stages.detect(
            history["step"], self.internal_loss(), None, None, self.scale.inward(options.delta, 2), None, None,
            options.delta,
        )  # fmt: skip
        return SolveResult(
            status=status,
            message=gd_message(status, self.step, bad_step, loss, options, sigma_1, level),
            n_iter=self.step,
            history=history,
            stages=found,
            k=U.shape[1],
            init_scale=options.init_scale,
            seed=options.seed,
            options=options,
            method="direct",
            diverged_at=bad_step if status == "diverged" else None,
            resume_state=self.bookkeeping() if status == "running" else self.final_bookkeeping,
            direct_state={"U": U, "V": V, "Sigma": self.Sigma},
        )

    def _call(self, t_stop, t_final):
        K.run_direct(
            self.S, self.sc, self.s2, self.exact_below, self.U, self.V, self.lrs, self.variant, self.tol, t_stop,
            t_final, self.record_every, self.Uw, self.Vw, self.SV, self.STU, self.T, self.G, self.P, self.noise,
            self.B, self.steps, self.rec, self.info,
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


def dense_sigma(Sigma) -> np.ndarray:
    """Sigma as the direct path needs it: a dense array in its dtype and C order."""
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
    return np.ascontiguousarray(real_array(Sigma, "Sigma", 2))


def direct_run(S: np.ndarray, options, U0=None, V0=None) -> DirectRun:
    """A direct-path run on the dense S (`dense_sigma`) for `options` (not yet resolved)."""
    m, n = S.shape
    sigma_1 = None
    if options.lr is None or (U0 is None and options.init_scale is None):
        sigma_1 = top_singular_value(S)
    options = options.resolve(S.shape, sigma_1, None, U0)
    U0, V0 = checked_start(S.shape, options.k, U0, V0)
    check_fits((2 * (m + n), options.k), S.dtype, "the direct path's factors", "use a smaller k")
    if U0 is None:
        rng = np.random.default_rng(seed_streams(options.seed)[0])
        U0, V0 = gaussian(rng, m, n, options.k, options.init_scale, options.init)
    return DirectRun(S, U0, V0, options)


def restored_run(S: np.ndarray, saved: SolveResult, options) -> DirectRun:
    """The direct run saved in `saved`, on the dense S, to go on with `options`."""
    state = saved.direct_state
    if checkpoint.fingerprint(S) != (state.get("sigma") or checkpoint.fingerprint(state["Sigma"])):
        raise ValueError(
            "Sigma is not the matrix this run was saved with (shape, dtype or contents differ); "
            "pass the same Sigma to fastmf.resume"
        )
    run = DirectRun(S, state["U"], state["V"], options)
    run.restore(saved.history, saved.resume_state)
    return run
