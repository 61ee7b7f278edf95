"""Results of a run: recorded history, status, the small final state, lazily rebuilt U, V."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._validate import check_fits
from .init import Factor, complement_matrix
from .problem import Problem
from .stages import Stages


@dataclass(eq=False)
class _Factors:
    """The final state in split form, U = Phi Up + W_U L_U, and U, V rebuilt on access."""

    problem: Problem
    rank: int
    left: Factor
    right: Factor

    @property
    def Up(self) -> np.ndarray:
        """Principal coordinates Phi^T U (r x k)."""
        return self.left.principal

    @property
    def Vp(self) -> np.ndarray:
        """Principal coordinates Psi^T V (r x k)."""
        return self.right.principal

    @property
    def L_U(self) -> np.ndarray:
        """Complement factor of U (k' x k compressed, m x k full)."""
        return self.left.L

    @property
    def L_V(self) -> np.ndarray:
        """Complement factor of V (k' x k compressed, n x k full)."""
        return self.right.L

    @property
    def loss(self) -> float:
        """The last recorded loss."""
        return float(self.history["loss"][-1])

    def history_frame(self):
        """The history as a pandas DataFrame (pandas is an optional extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "history_frame() needs pandas: pip install pandas (or the fastmf-gd[pandas] extra)"
            ) from None
        return pd.DataFrame(self.history)

    @cached_property
    def U(self) -> np.ndarray:
        """U (m x k), rebuilt on first access as Phi Up + W_U L_U."""
        return _rebuild(self.problem.left, self.left, self.problem.dtype)

    @cached_property
    def V(self) -> np.ndarray:
        """V (n x k), rebuilt on first access as Psi Vp + W_V L_V."""
        return _rebuild(self.problem.right, self.right, self.problem.dtype)


@dataclass(eq=False)
class SolveResult(_Factors):
    """Outcome of `fastmf.solve`.

    Attributes
    ----------
    status : str
        "converged" (a recorded loss <= tol), "max_iter" (all steps done), "diverged"
        (the state overflowed; the last finite state is kept) or "interrupted"
        (KeyboardInterrupt; the state reached so far is kept).
    message : str
        One sentence on what happened, with the step and, after divergence, a stable lr.
    n_iter : int
        The step t of the returned state (U_t, V_t).
    history : dict of ndarray
        Equal-length float64 arrays, recorded every `record_every` steps and at the final
        step: "step" (t), "loss" (f(U_t, V_t)), "imbalance" (||U_t^T U_t - V_t^T V_t||_F),
        the loss's four blocks and the quantities of DESIGN.md section 4 (keys in
        `fastmf._kernels.diagnostics.KEYS`; spectral ones NaN off `spectral_every`).
    stages : fastmf.stages.Stages
        T1, T0, T_delta (steps, None where not reached) and the linear rate after T0,
        measured and the theorem's.
    Up, Vp, L_U, L_V : ndarray
        The final state in split form: U = Phi Up + W_U L_U.
    U, V : ndarray
        The final factors, rebuilt on first access.
    diverged_at : int or None
        The step whose state overflowed (after a "diverged" run).
    init_scale : float or None
        The standard deviation of the random start (None when U0, V0 were given).
    seed : int, SeedSequence or None
        What reproduces the random start: the seed passed, or the fresh entropy drawn
        when seed=None.
    """

    lr: float
    complement: str
    status: str
    message: str
    n_iter: int
    history: dict
    stages: Stages
    diverged_at: int | None = None
    init_scale: float | None = None
    seed: object = field(default=None, repr=False)

    def __repr__(self) -> str:
        m, n = self.problem.shape
        return (
            f"SolveResult(status={self.status!r}, n_iter={self.n_iter}, loss={self.loss:.6g}, "
            f"{m} x {n}, rank={self.rank}, lr={self.lr:g}, complement={self.complement!r})"
        )


@dataclass(eq=False)
class FlowResult(_Factors):
    """Outcome of `fastmf.gradient_flow`.

    Attributes
    ----------
    status : str
        "converged" (the loss reached `target_loss`), "t_max" (integrated to t_max),
        "failed" (the integrator gave up; its reason is in `message`) or "interrupted"
        (KeyboardInterrupt; the state reached so far is kept).
    message : str
        One sentence on what happened.
    t : float
        The time of the returned state (U(t), V(t)).
    history : dict of ndarray
        Equal-length arrays on the time axis "t", with the same diagnostics as
        `SolveResult.history` (spectral ones at every recorded time) and
        "imbalance_drift" (||D(t) - D(0)||_F for D = U^T U - V^T V, which the flow
        conserves), at the requested times and at the final time.
    stages : fastmf.stages.Stages
        T1, T0, T_delta as times (exact to the recorded times) and the linear rate after
        T0 per unit time, measured and the theorem's exp(-sigma_d / 2).
    nfev : int
        Right-hand-side evaluations.
    """

    status: str
    message: str
    t: float
    history: dict
    stages: Stages
    nfev: int = 0
    init_scale: float | None = None
    seed: object = field(default=None, repr=False)

    def __repr__(self) -> str:
        m, n = self.problem.shape
        return (
            f"FlowResult(status={self.status!r}, t={self.t:.6g}, loss={self.loss:.6g}, {m} x {n}, "
            f"rank={self.rank}, nfev={self.nfev})"
        )


def _rebuild(basis, factor: Factor, dtype) -> np.ndarray:
    k = factor.principal.shape[1]
    check_fits(
        (basis.dim, k),
        dtype,
        "rebuilding this factor",
        "use the small state instead: result.Up, result.Vp, result.L_U, result.L_V",
    )
    out = basis.lift(factor.principal)
    if factor.W is None:
        out += factor.L
    else:
        out += complement_matrix(basis, factor, dtype) @ factor.L
    return out
