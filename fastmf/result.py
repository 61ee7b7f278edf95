"""Results of a run: recorded history, status, the small final state, lazily rebuilt U, V;
saved to and loaded from .npz files (`fastmf.checkpoint`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import checkpoint
from ._validate import check_fits
from .init import Factor, complement_matrix
from .problem import Problem
from .stages import Stages

# what `fastmf.resume` needs besides the state and the history (solver.Run.bookkeeping): the
# kernel's info slots, the tracked eigenvectors, and the recorded losses in the run's internal
# units, which the history in the user's units cannot give back where they over- or underflow
_BOOKKEEPING = ("info", "vecs", "valid", "loss")


class _Recorded:
    """What every result with a `history` offers."""

    @property
    def loss(self) -> float:
        """The last recorded loss: that of the returned state whenever the run has ended (a
        checkpoint written mid-run, status "running", has the last one recorded before it)."""
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


@dataclass(eq=False)
class _Factors(_Recorded):
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

    def save(self, path) -> None:
        """Write the result to an .npz file, atomically: the basis of Sigma (not Sigma),
        the final state, the history, the stages; `fastmf.load` reads it back and, for a GD
        run, `fastmf.resume` continues it."""
        arrays, meta = checkpoint.problem_fields(self.problem)
        for side, factor in (("left", self.left), ("right", self.right)):
            more_arrays, more_meta = checkpoint.factor_fields(side, factor)
            arrays |= more_arrays
            meta |= more_meta
        arrays |= {f"history.{key}": value for key, value in self.history.items()}
        meta |= {
            "result": type(self).__name__, "rank": self.rank, "stages": dataclasses.asdict(self.stages),
            "init_scale": self.init_scale, "seed": checkpoint.seed_to_json(self.seed),
        }  # fmt: skip
        more_arrays, more_meta = self._saved_fields()
        checkpoint.write(path, arrays | more_arrays, meta | more_meta)

    @classmethod
    def _load(cls, arrays: dict, meta: dict):
        history = {key[len("history.") :]: value for key, value in arrays.items() if key.startswith("history.")}
        return cls(
            problem=checkpoint.problem_from(arrays, meta),
            rank=meta["rank"],
            left=checkpoint.factor_from("left", arrays, meta),
            right=checkpoint.factor_from("right", arrays, meta),
            history=history,
            stages=Stages(**meta["stages"]),
            init_scale=meta["init_scale"],
            seed=checkpoint.seed_from_json(meta["seed"]),
            **cls._loaded_fields(arrays, meta),
        )

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
        (the state overflowed; the last finite state is kept), "interrupted"
        (KeyboardInterrupt, or SIGTERM under the CLI), "stopped" (the callback asked),
        "time_limit", or "running" (a checkpoint written mid-run). The last four keep
        the state reached and `fastmf.resume` continues them.
    message : str
        One sentence on what happened, with the step and, after divergence, a stable lr.
    n_iter : int
        The step t of the returned state (U_t, V_t).
    history : dict of ndarray
        Equal-length float64 arrays, recorded every `record_every` steps and at the final
        step: "step" (t), "loss" (f(U_t, V_t)), "imbalance" (||U_t^T U_t - V_t^T V_t||_F),
        the loss's four blocks and the quantities of docs/maths.md section 4 (keys in
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
    resume_state : dict
        What `fastmf.resume` needs besides the state: the run's settings and the kernel's
        bookkeeping before the final record.
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
    resume_state: dict | None = field(default=None, repr=False)

    def _saved_fields(self) -> tuple[dict, dict]:
        arrays = {f"run.{key}": self.resume_state[key] for key in _BOOKKEEPING if key in self.resume_state}
        return arrays, {
            "lr": self.lr, "complement": self.complement, "status": self.status, "message": self.message,
            "n_iter": self.n_iter, "diverged_at": self.diverged_at, "settings": self.resume_state["settings"],
        }  # fmt: skip

    @staticmethod
    def _loaded_fields(arrays: dict, meta: dict) -> dict:
        state = {key: arrays[f"run.{key}"] for key in _BOOKKEEPING if f"run.{key}" in arrays}
        state["settings"] = meta["settings"]
        fields = ("lr", "complement", "status", "message", "n_iter", "diverged_at")
        return {name: meta[name] for name in fields} | {"resume_state": state}

    def __repr__(self) -> str:
        m, n = self.problem.shape
        return (
            f"SolveResult(status={self.status!r}, n_iter={self.n_iter}, loss={self.loss:.6g}, "
            f"{m} x {n}, rank={self.rank}, lr={self.lr:g}, complement={self.complement!r})"
        )


@dataclass(eq=False)
class DirectResult(_Recorded):
    """Outcome of ``fastmf.solve(..., method="direct")``: GD on Sigma itself (Ye and Du 2021, eqs 2-3).

    Attributes
    ----------
    U, V : ndarray
        The final factors (m x k, n x k), in Sigma's dtype.
    status, message, n_iter, diverged_at, init_scale, seed
        As in `SolveResult` (status "converged", "max_iter", "diverged", "interrupted",
        "stopped" or "time_limit").
    history : dict of ndarray
        "step", "loss" and "imbalance" (the direct path has no singular basis, so none of
        the split diagnostics).
    stages : fastmf.stages.Stages
        Only T_delta (T1, T0 and the rates need the singular basis: None).
    """

    U: np.ndarray
    V: np.ndarray
    rank: int
    lr: float
    status: str
    message: str
    n_iter: int
    history: dict
    stages: Stages
    diverged_at: int | None = None
    init_scale: float | None = None
    seed: object = field(default=None, repr=False)

    def __repr__(self) -> str:
        m, n = self.U.shape[0], self.V.shape[0]
        return (
            f"DirectResult(status={self.status!r}, n_iter={self.n_iter}, loss={self.loss:.6g}, "
            f"{m} x {n}, rank={self.rank}, lr={self.lr:g})"
        )


@dataclass(eq=False)
class FlowResult(_Factors):
    """Outcome of `fastmf.gradient_flow`.

    Attributes
    ----------
    status : str
        "converged" (the loss reached `target_loss`), "t_max" (integrated to t_max),
        "failed" (the integrator gave up; its reason is in `message`), "interrupted"
        (KeyboardInterrupt; the state reached so far is kept), "stopped" (the callback
        asked) or "time_limit".
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

    def _saved_fields(self) -> tuple[dict, dict]:
        return {}, {"status": self.status, "message": self.message, "t": self.t, "nfev": self.nfev}

    @staticmethod
    def _loaded_fields(arrays: dict, meta: dict) -> dict:
        return {name: meta[name] for name in ("status", "message", "t", "nfev")}

    def __repr__(self) -> str:
        m, n = self.problem.shape
        return (
            f"FlowResult(status={self.status!r}, t={self.t:.6g}, loss={self.loss:.6g}, {m} x {n}, "
            f"rank={self.rank}, nfev={self.nfev})"
        )


def load(path) -> SolveResult | FlowResult:
    """Read a result or checkpoint written by `SolveResult.save`, `FlowResult.save` or
    ``solve(..., checkpoint=...)`` (with ``allow_pickle=False``).

    Raises
    ------
    FileNotFoundError
        No such file.
    fastmf.checkpoint.CheckpointError
        A ValueError: the file is corrupt, truncated, or not a fastmf result.
    """
    arrays, meta = checkpoint.read(path)
    kinds = {"SolveResult": SolveResult, "FlowResult": FlowResult}
    try:
        return kinds[meta["result"]]._load(arrays, meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"{path} is a fastmf file with missing or bad fields ({exc!r})") from None


def _rebuild(basis, factor: Factor, dtype) -> np.ndarray:
    k = factor.principal.shape[1]
    # what the rebuild holds at once: the result and the product W L (dim x k each), and for a
    # W drawn from its seed the Gaussian draw, its Q and W itself (float64, dim x k' each)
    drawn = isinstance(factor.W, np.random.SeedSequence)
    nbytes = 2 * np.dtype(dtype).itemsize + (3 * 8 + 8 if drawn else 0)  # + 8: LAPACK's QR work
    check_fits(
        (basis.dim, k, nbytes),
        np.uint8,
        "rebuilding this factor",
        "use the small state instead: result.Up, result.Vp, result.L_U, result.L_V",
    )
    out = basis.lift(factor.principal)
    if factor.W is None:
        out += factor.L
    else:
        out += complement_matrix(basis, factor, dtype) @ factor.L
    return out
