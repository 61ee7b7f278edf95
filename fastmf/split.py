"""The split engine: GD on the principal/complement state of Ye and Du 2021, eqs (6)-(9).

A `SplitRun` holds everything the compiled loop (`fastmf._kernels.run_blocks`) carries from
step to step: the stacked state, the step, the stage flags, the tracked eigenvectors and
the history. So a run advanced in several calls, or saved and restored in between,
follows exactly the trajectory and records of one call.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import _kernels as K
from . import invariants, stages, theory
from ._kernels import blas
from .init import Factor, seed_streams, stack
from .options import spectral_factor
from .problem import DenseBasis, Problem
from .recorder import Recorder
from .result import SolveResult
from .scaling import Scale
from .status import gd_message


def diagnostic_work(r: int, k: int):
    """Work arrays for a record (`fastmf._kernels.diagnostics`): (E, D, vecs, valid)."""
    n = max(r, k)
    return np.zeros((r + k, r)), np.zeros((8, n, n)), np.zeros((K.N_TRACKED, n)), np.zeros(K.N_TRACKED, np.int64)


class SplitRun(Recorder):
    """One GD run (plain or a variant, `fastmf.options.Options`) on the split state, and the
    engine operations of `fastmf.driver`.

    Perturbed GD's noise is drawn in original coordinates and split for a full complement
    (path by path the direct path's); a compressed complement takes the compressed form
    (`fastmf.noise`: exact in law), after which the complement frames W are fresh Haar
    frames (`frames`).

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
        self.keys = K.KEYS if options.spectral_every != 0 else K.KEYS[: K.N_CHEAP]  # (a record row holds these)
        super().__init__(options.max_iter, options.record_every, scale)
        self.problem, self.options = problem, options
        self.W = (left.W, right.W)
        X, Y = stack(left), stack(right)
        dtype = X.dtype
        k, r = X.shape[1], problem.rank
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
        m, n = problem.shape
        self.compressed_noise = options.noise > 0 and options.complement == "compressed"
        if self.compressed_noise:  # the frame's part of the noise, and B for the rest (`fastmf.noise`)
            sides = [(len(X), k, m - len(X)), (len(Y), k, n - len(Y))]
            if any(rows - r < k and rest > 0 for rows, _, rest in sides):
                raise ValueError(
                    "noise on the compressed complement needs k rows in L_U and L_V where the complement has more "
                    "dimensions than k; pad the start's L with zero rows, or use complement='full'"
                )
        else:  # the full complement adds the original coordinates' draws, split (`noise_arrays`)
            sides = [(m, k, None), (n, k, None)]
        self.variants(options, self.s[0], dtype, sides)
        self.level = stages.converged_level(self.s, k)
        self.tol = min(scale.inward(options.tol, 2), self.level)
        self.Xw, self.Yw = np.empty_like(X), np.empty_like(Y)
        self.tall = tall(X, Y, r)
        self.G = np.zeros((10, k, k), dtype)
        self.P = np.zeros((r if options.precondition is not None else 0, k), dtype)
        # the work of the QR that folds B into a compressed complement (`_kernels.blocks.perturb`)
        qr_rows = max(rows - r + min(rest, k) for rows, _, rest in sides) if self.compressed_noise else 0
        self.Q = np.zeros((qr_rows, k), dtype)
        self.E, self.D, self.vecs, self.valid = diagnostic_work(r, k)
        self.E = self.E.astype(dtype)  # np.dot into E needs the state's dtype; D stays float64
        # the section 3.1 ratios of the start (`fastmf.invariants`; restoring, `restore` puts back the saved ones)
        eps = scale.inward(options.init_scale, 0.5)
        self.start_ratios = invariants.start_ratios(self.X[None], self.Y[None], r, problem.shape, eps)[0]

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
        return super().bookkeeping() | {
            "vecs": self.vecs.copy(), "valid": self.valid.copy(), "start_ratios": self.start_ratios.copy()
        }  # fmt: skip

    def restore(self, history: dict, bookkeeping: dict) -> None:
        """Continue a run saved as (history, bookkeeping): the inverse of `history` + `bookkeeping`."""
        self.vecs[:] = bookkeeping["vecs"]
        self.valid[:] = bookkeeping["valid"]
        self.start_ratios = bookkeeping.get("start_ratios", np.full(len(invariants.RATIOS), np.nan))
        super().restore(history, bookkeeping)

    def noise_arrays(self, draws) -> tuple:
        """The full complement adds the original coordinates' draws Z split as [coords(Z);
        Z - lift(coords(Z))], the same noise as the direct path's; the compressed one takes
        `NoiseStream.draw`'s compressed form as it is."""
        if not self.compressed_noise:
            draws = [(split_noise(basis, Z), B) for basis, (Z, B) in zip(self.bases, draws, strict=True)]
        return super().noise_arrays(draws)

    @property
    def bases(self) -> tuple:
        return self.problem.left, self.problem.right

    def frames(self) -> tuple:
        """The complement frames W of the state reached: the start's, but after a step of
        compressed perturbed GD whose noise reaches beyond the frame (B has rows), a fresh
        Haar frame from the side's seed stream: the frame then follows the noise only in law."""
        if not (self.compressed_noise and self.step > 0):
            return self.W
        r, streams = self.problem.rank, seed_streams(self.options.seed)[1:]
        return tuple(
            W if rest == 0 else fresh_frame(basis, seq, rows - r, self.X.dtype)
            for W, (rows, _, rest), basis, seq in zip(self.W, self.sides, self.bases, streams, strict=True)
        )

    def result(self, status: str) -> SolveResult:
        problem, options = self.problem, self.options
        r = problem.rank
        history = self.history()
        T1, T0 = self.stage_positions()
        bad_step = int(self.info[K.BAD_STEP])
        rate = theory.rate_bound(problem.s, options)
        X, Y = self.state()
        W = self.frames()
        delta = self.scale.inward(options.delta, 2)
        level = self.scale.outward(self.level, 2)
        loss = float(history["loss"][-1]) if history["loss"].size else None
        bookkeeping = self.bookkeeping() if status == "running" else self.final_bookkeeping
        j = self.n_records  # the extremes from the history in internal units, which no scale of Sigma leaves
        internal = {"step": self.steps[:j]} | {key: self.rec[:j, c] for c, key in enumerate(self.keys)}
        lr = self.scale.inward(options.lr, -1) if options.plain else None
        extremes = invariants.outward(self.scale, invariants.from_history(internal, T1, T0, self.s, lr, self.X.dtype))
        proofs = invariants.summarize(extremes, self.start_ratios, options.init_scale, r, problem.shape, problem.s,
                                      self.X.dtype)  # fmt: skip
        found = stages.detect(history["step"], self.internal_loss(), T1, T0, delta, rate, self.s, options.delta)
        if options.plain and T0 is not None and status != "diverged":
            local = theory.local_rate(problem.s, options.lr, X[:r], Y[:r], X[r:], Y[r:])
            found = dataclasses.replace(found, rate_local=local)
        return SolveResult(
            status=status,
            message=gd_message(status, self.step, bad_step, loss, options, problem.sigma_1, level),
            n_iter=self.step,
            history=history,
            stages=found,
            k=X.shape[1],
            init_scale=options.init_scale,
            seed=options.seed,
            problem=problem,
            left=Factor(X[:r], X[r:], W[0]),
            right=Factor(Y[:r], Y[r:], W[1]),
            options=options,
            method="split",
            diverged_at=bad_step if status == "diverged" else None,
            resume_state=bookkeeping,
            invariants=proofs,
        )

    def _call(self, t_stop, t_final):
        with blas.one_thread():  # the products are L2-sized blocks
            K.run_blocks(
                self.X, self.Y, self.s, self.lrs, self.variant, self.tol, t_stop, t_final, self.record_every,
                self.spectral_every, self.Xw, self.Yw, self.G, self.P, self.noise, self.Q, self.E, self.D,
                self.vecs, self.valid, self.steps, self.rec, self.info, self.tall,
            )  # fmt: skip


def tall(X: np.ndarray, Y: np.ndarray, r: int):
    """The kernels' `tall` (`_kernels.diagnostics.record_cheap`): None where neither side of the stacked
    state has more than k complement rows (no QR code compiled for its records), else True."""
    return None if max(X.shape[0], Y.shape[0]) - r <= X.shape[1] else True


def plain_work(X: np.ndarray, Y: np.ndarray) -> tuple:
    """`run_blocks`'s work (G, P, noise, Q) for plain GD on the stacked state X, Y."""
    k, dtype = X.shape[1], X.dtype
    empty = np.zeros((0, k), dtype)
    return np.zeros((10, k, k), dtype), empty, None, empty


def split_noise(basis, Z: np.ndarray) -> np.ndarray:
    """Noise Z (steps, dim, k) in original coordinates as the full complement's stacked
    state takes it: (steps, r + dim, k), the principal coordinates then the complement part."""
    steps, dim, k = Z.shape
    flat = Z.transpose(1, 0, 2).reshape(dim, steps * k)
    principal = basis.coords(flat)
    out = np.concatenate([principal, flat - basis.lift(principal)])
    return out.reshape(len(out), steps, k).transpose(1, 0, 2)


def fresh_frame(basis, seq: np.random.SeedSequence, p: int, dtype):
    """A Haar frame of p orthonormal columns orthogonal to the principal subspace, from `seq`:
    the seed itself for a coordinate basis (`fastmf.init.haar_stiefel` draws it on demand),
    drawn now for a dense one (Gaussian columns projected off range(Phi), then orthonormalized)."""
    if not isinstance(basis, DenseBasis):
        return seq
    G = np.random.default_rng(seq).standard_normal((basis.dim, p))
    for _ in range(2):  # twice: the projection is then orthogonal to rounding
        G -= basis.lift(basis.coords(G))
    Q, R = np.linalg.qr(G)
    return (Q * np.sign(np.diag(R))).astype(dtype)
