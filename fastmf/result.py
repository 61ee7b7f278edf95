"""The result of a run: recorded history, status, the small final state, lazily rebuilt U, V."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._validate import check_fits
from .init import Factor, complement_matrix
from .problem import Problem

STATUSES = ("converged", "max_iter", "diverged", "interrupted")


@dataclass(eq=False)
class SolveResult:
    """Outcome of `fastmf.solve`.

    Attributes
    ----------
    status : str
        "converged" (a recorded loss <= tol), "max_iter" (all steps done), "diverged"
        (the state went non-finite; the last finite state is kept) or "interrupted"
        (KeyboardInterrupt; the state reached so far is kept).
    message : str
        One sentence on what happened, with the step and, after divergence, a stable lr.
    n_iter : int
        The step t of the returned state (U_t, V_t).
    history : dict of ndarray
        Equal-length arrays: "step" (t), "loss" (f(U_t, V_t)) and "imbalance"
        (||U_t^T U_t - V_t^T V_t||_F), recorded every `record_every` steps and at the
        final step; float64 whatever the state's dtype.
    Up, Vp : ndarray
        Principal coordinates Phi^T U and Psi^T V (r x k).
    L_U, L_V : ndarray
        Complement factors: U = Phi Up + W_U L_U (L_U is k' x k compressed, m x k full).
    diverged_at : int or None
        The step whose state overflowed (after a "diverged" run).
    init_scale : float or None
        The standard deviation of the random start (None when U0, V0 were given).
    seed : int, SeedSequence or None
        What reproduces the random start: the seed passed, or the fresh entropy drawn
        when seed=None.
    """

    problem: Problem
    rank: int
    lr: float
    complement: str
    status: str
    message: str
    n_iter: int
    history: dict
    left: Factor
    right: Factor
    diverged_at: int | None = None
    init_scale: float | None = None
    seed: object = field(default=None, repr=False)

    @property
    def Up(self) -> np.ndarray:
        return self.left.principal

    @property
    def Vp(self) -> np.ndarray:
        return self.right.principal

    @property
    def L_U(self) -> np.ndarray:
        return self.left.L

    @property
    def L_V(self) -> np.ndarray:
        return self.right.L

    @property
    def loss(self) -> float:
        """The last recorded loss."""
        return float(self.history["loss"][-1])

    @cached_property
    def U(self) -> np.ndarray:
        """U_t (m x k), rebuilt on first access as Phi Up + W_U L_U."""
        return _rebuild(self.problem.left, self.left, self.problem.dtype)

    @cached_property
    def V(self) -> np.ndarray:
        """V_t (n x k), rebuilt on first access as Psi Vp + W_V L_V."""
        return _rebuild(self.problem.right, self.right, self.problem.dtype)

    def __repr__(self) -> str:
        m, n = self.problem.shape
        return (
            f"SolveResult(status={self.status!r}, n_iter={self.n_iter}, loss={self.loss:.6g}, "
            f"{m} x {n}, rank={self.rank}, lr={self.lr:g}, complement={self.complement!r})"
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
