"""The split engine: GD on the principal/complement state of Ye and Du 2021, eqs (6)-(9).

A `SplitRun` holds everything the compiled loop (`fastmf._kernels.run_blocks`) carries from
step to step: the stacked state, the step, the stage flags, the tracked eigenvectors and
the history. So a run advanced in several calls, or saved and restored in between,
follows exactly the trajectory and records of one call.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _kernels as K
from . import stages, theory
from .init import Factor, stack
from .options import spectral_factor
from .problem import Problem
from .recorder import Recorder, internal_lr
from .result import SolveResult
from .scaling import Scale
from .status import gd_message


def diagnostic_work(r: int, k: int):
    """Work arrays for `diagnostics.record`: (E, D, vecs, valid)."""
    n = max(r, k)
    return np.zeros((r, r)), np.zeros((8, n, n)), np.zeros((K.N_TRACKED, n)), np.zeros(K.N_TRACKED, np.int64)


class SplitRun(Recorder):
    """One GD run on the split state, and the engine operations of `fastmf.driver`.

    Parameters
    ----------
    problem : Problem
    left, right : Factor
        The start (or, restoring, the state reached).
    options : Options
        Resolved (`Options.resolve`).

    The run works in the units of the power of 4 nearest sigma_1 (`fastmf.scaling`: exact).
    """

    def __init__(self, problem: Problem, left: Factor, right: Factor, options):
        scale = Scale.of(problem.sigma_1)
        super().__init__(options.max_iter, options.record_every, scale)
        self.problem, self.options = problem, options
        self.W = (left.W, right.W)
        X, Y = stack(left), stack(right)
        dtype = X.dtype
        k, r = X.shape[1], problem.rank
        self.keys = K.KEYS if options.spectral_every != 0 else K.KEYS[: K.N_CHEAP]
        self.spectral_records = spectral_factor(r, k)  # the default spectral_every, in records
        self.X, self.Y, self.s = scale.inward(X, 0.5), scale.inward(Y, 0.5), scale.inward(problem.s, 1)
        tiny = np.finfo(dtype).tiny
        if 0 < max(np.max(np.abs(self.X)), np.max(np.abs(self.Y))) < tiny:
            warnings.warn(
                "the start is below the smallest normal number at Sigma's scale: it is flushed to U = V = 0, "
                "a saddle GD never leaves; use a larger init_scale",
                RuntimeWarning,
                stacklevel=4,
            )
        self.lr = internal_lr(scale, options.lr, self.s[0], dtype)
        self.level = stages.converged_level(self.s, k)
        self.tol = min(scale.inward(options.tol, 2), self.level)
        self.Xw, self.Yw = np.empty_like(X), np.empty_like(Y)
        self.G = np.zeros((7, k, k), dtype)
        self.E, self.D, self.vecs, self.valid = diagnostic_work(r, k)
        self.E = self.E.astype(dtype)  # np.dot into E needs the state's dtype; D stays float64

    @property
    def spectral_every(self) -> int:
        """The spectral stride: the option's, or by default every `spectral_factor` records."""
        every = self.options.spectral_every
        return self.record_every * self.spectral_records if every is None else every

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the stacked state X, Y in the user's units."""
        return self.scale.outward(self.X, 0.5).copy(), self.scale.outward(self.Y, 0.5).copy()

    def bookkeeping(self) -> dict:
        """What `restore` needs beyond the state and the history (copies)."""
        return {"info": self.info.copy(), "vecs": self.vecs.copy(), "valid": self.valid.copy(),
                "loss": self.internal_loss()}  # fmt: skip

    def restore(self, history: dict, bookkeeping: dict) -> None:
        """Continue a run saved as (history, bookkeeping): the inverse of `history` + `bookkeeping`."""
        self.info[:] = bookkeeping["info"]
        self.vecs[:] = bookkeeping["vecs"]
        self.valid[:] = bookkeeping["valid"]
        self.restore_history(history, bookkeeping.get("loss"))

    def result(self, status: str) -> SolveResult:
        problem, options = self.problem, self.options
        r = problem.rank
        history = self.history()
        T1, T0 = self.stage_positions()
        bad_step = int(self.info[K.BAD_STEP])
        rate = theory.linear_rate(problem.s, options.lr)
        X, Y = self.state()
        delta = self.scale.inward(options.delta, 2)
        level = self.scale.outward(self.level, 2)
        loss = float(history["loss"][-1]) if history["loss"].size else None
        bookkeeping = self.bookkeeping() if status == "running" else self.final_bookkeeping
        return SolveResult(
            status=status,
            message=gd_message(status, self.step, bad_step, loss, options, problem.sigma_1, level),
            n_iter=self.step,
            history=history,
            stages=stages.detect(history["step"], self.internal_loss(), T1, T0, delta, rate, self.s, options.delta),
            k=X.shape[1],
            init_scale=options.init_scale,
            seed=options.seed,
            problem=problem,
            left=Factor(X[:r], X[r:], self.W[0]),
            right=Factor(Y[:r], Y[r:], self.W[1]),
            options=options,
            method="split",
            diverged_at=bad_step if status == "diverged" else None,
            resume_state=bookkeeping,
        )

    def _call(self, t_stop, t_final):
        K.run_blocks(
            self.X, self.Y, self.s, self.lr, self.tol, t_stop, t_final, self.record_every,
            self.spectral_every, self.Xw, self.Yw, self.G, self.E, self.D, self.vecs, self.valid,
            self.steps, self.rec, self.info,
        )  # fmt: skip
