"""Results of a run, one model for every engine: status, message, history, stages, the final
state (small, U and V rebuilt on access), saved to and loaded from .npz files (`fastmf.checkpoint`).

`SolveResult` is what `fastmf.solve` returns whatever engine ran (fields an engine cannot
provide are None), `FlowResult` what `fastmf.gradient_flow` returns, and a batch of runs
(`fastmf.batch.BatchResult`) is a sequence of `SolveResult`. Like scipy's OptimizeResult,
each has `success`, `status`, `message`, `loss`, `n_iter`, `history`, `stages`, and
`save()` and `to_frame()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import checkpoint, theory
from . import status as statuses
from ._validate import check_fits
from .init import Factor, complement_matrix, start
from .options import FlowOptions, Options
from .problem import Problem
from .scaling import Scale
from .stages import Stages, converged_level, fit_rate
from .status import gd_message


@dataclass(eq=False)
class Result:
    """What every result offers.

    Attributes
    ----------
    status : str
        How the run ended (`fastmf.status.STATUSES`): "converged", "max_iter" (GD),
        "t_max" (flow), "diverged", "failed" (the ODE solver gave up), "interrupted"
        (KeyboardInterrupt, or SIGTERM under the CLI), "stopped" (the callback asked),
        "time_limit", or "running" (a checkpoint written mid-run). The last four keep the
        state reached, and `fastmf.resume` continues them.
    message : str
        One sentence on what happened.
    n_iter : int
        GD: the step t of the returned state; flow: the steps the ODE solver took.
    history : dict of ndarray
        Equal-length arrays: the step ("step") or time ("t") axis and the recorded
        diagnostics (`fastmf._kernels.layout.KEYS`).
    stages : fastmf.Stages
        T1, T0, T_delta and the linear rate after T0, measured and the theorem's.
    k : int
        The width of the factors.
    init_scale : float or None
        The std of the random start (None when U0, V0 were given).
    seed : int, SeedSequence or None
        What reproduces the random start (None when U0, V0 were given).
    checkpoint_every : int or None
        The checkpoint stride of the run that wrote this (`fastmf.resume` keeps it).
    """

    status: str
    message: str
    n_iter: int
    history: dict
    stages: Stages
    k: int
    init_scale: float | None = None
    seed: object = field(default=None, repr=False)
    checkpoint_every: int | None = field(default=None, repr=False)

    @property
    def success(self) -> bool:
        """Whether the run did what it was asked: converged, or ran its whole length."""
        return statuses.success(self.status)

    @property
    def loss(self) -> float:
        """The last recorded loss: that of the returned state whenever the run has ended (a
        checkpoint written mid-run, status "running", has the last one recorded before it)."""
        return float(self.history["loss"][-1]) if self.history["loss"].size else float("nan")

    def to_frame(self):
        """The history as a pandas DataFrame (pandas is an optional extra)."""
        return to_frame(self.history)


def to_frame(columns: dict):
    """`columns` as a pandas DataFrame, with the fix when pandas is missing."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_frame() needs pandas: pip install pandas (or the fastmf-gd[pandas] extra)") from None
    return pd.DataFrame(columns)


@dataclass(eq=False)
class _Split(Result):
    """A final state in split form, U = Phi Up + W_U L_U, with U, V rebuilt on access."""

    problem: Problem | None = None
    left: Factor | None = None
    right: Factor | None = None

    @property
    def Up(self) -> np.ndarray | None:
        """Principal coordinates Phi^T U (r x k); None on the direct path."""
        return None if self.left is None else self.left.principal

    @property
    def Vp(self) -> np.ndarray | None:
        """Principal coordinates Psi^T V (r x k); None on the direct path."""
        return None if self.right is None else self.right.principal

    @property
    def L_U(self) -> np.ndarray | None:
        """Complement factor of U (k' x k compressed, m x k full); None on the direct path."""
        return None if self.left is None else self.left.L

    @property
    def L_V(self) -> np.ndarray | None:
        """Complement factor of V (k' x k compressed, n x k full); None on the direct path."""
        return None if self.right is None else self.right.L

    @cached_property
    def U(self) -> np.ndarray:
        """U (m x k), rebuilt on first access as Phi Up + W_U L_U."""
        return _rebuild(self.problem.left, self.left, self.problem.dtype)

    @cached_property
    def V(self) -> np.ndarray:
        """V (n x k), rebuilt on first access as Psi Vp + W_V L_V."""
        return _rebuild(self.problem.right, self.right, self.problem.dtype)

    def save(self, path) -> None:
        """Write the result to an .npz file, atomically: the basis of Sigma (not Sigma), the
        final state, the history, the stages and the settings; `fastmf.load` reads it back
        and `fastmf.resume` continues it."""
        arrays, meta = {f"history.{key}": value for key, value in self.history.items()}, {}
        if self.problem is not None:
            arrays, meta = checkpoint.problem_fields(self.problem)
            arrays |= {f"history.{key}": value for key, value in self.history.items()}
            for side, factor in (("left", self.left), ("right", self.right)):
                more_arrays, more_meta = checkpoint.factor_fields(side, factor)
                arrays |= more_arrays
                meta |= more_meta
        meta |= {
            "result": type(self).__name__, "status": self.status, "message": self.message, "n_iter": self.n_iter,
            "k": self.k, "stages": dataclasses.asdict(self.stages), "init_scale": self.init_scale,
            "seed": checkpoint.seed_to_json(self.seed), "options": checkpoint.options_to_json(self.options),
            "checkpoint_every": self.checkpoint_every,
        }  # fmt: skip
        more_arrays, more_meta = self._saved_fields()
        checkpoint.write(path, arrays | more_arrays, meta | more_meta)

    @classmethod
    def _load(cls, arrays: dict, meta: dict):
        history = {key[len("history.") :]: value for key, value in arrays.items() if key.startswith("history.")}
        split = "problem" in meta
        return cls(
            status=meta["status"],
            message=meta["message"],
            n_iter=meta["n_iter"],
            history=history,
            stages=Stages(**meta["stages"]),
            k=meta["k"],
            init_scale=meta["init_scale"],
            seed=checkpoint.seed_from_json(meta["seed"]),
            checkpoint_every=meta["checkpoint_every"],
            problem=checkpoint.problem_from(arrays, meta) if split else None,
            left=checkpoint.factor_from("left", arrays, meta) if split else None,
            right=checkpoint.factor_from("right", arrays, meta) if split else None,
            options=checkpoint.options_from_json(cls._options_type, meta["options"]),
            **cls._loaded_fields(arrays, meta),
        )


@dataclass(eq=False)
class SolveResult(_Split):
    """Outcome of a GD run (`fastmf.solve`, `fastmf.resume`, one run of `fastmf.solve_batch`),
    whatever engine ran it.

    Attributes
    ----------
    status, message, n_iter, history, stages, k, init_scale, seed, success, loss
        As in `Result`. `history` holds "step" (t), "loss" (f(U_t, V_t)) and "imbalance"
        (||U_t^T U_t - V_t^T V_t||_F) and, on the split engine, the loss's four blocks and
        the quantities of docs/maths.md section 4 (spectral ones NaN off `spectral_every`:
        sigma_min_A, lambda_min_P, P_op, J_op, K_op, E_op, and those the proofs of Ye and Du
        2021 bound: sigma_min_Up, sigma_min_Vp, lambda_max_AAt_2S = lambda_max(A A^T - 2
        diag(s)), and grad_fro = ||grad f||_F; `fastmf._kernels.diagnostics`), recorded every
        `options.record_every` steps and at the final step. `stages`: T1
        and T0 need the singular basis (None on the direct path and in a batch without it).
    options : fastmf.Options
        The settings the run used, every default filled in (`Options.resolve`).
    method : {"split", "direct"}
        The engine that ran.
    problem : Problem or None
        Sigma's singular basis (None on the direct path, which never computes it).
    Up, Vp, L_U, L_V : ndarray or None
        The final state in split form, U = Phi Up + W_U L_U (None on the direct path).
    U, V : ndarray
        The final factors (m x k, n x k, Sigma's dtype), rebuilt on first access. After
        perturbed GD (`Options.noise`) on the compressed complement, whose state follows
        the noise exactly in law but not path by path, W_U and W_V are then a fresh Haar
        frame (from the seed): U and V are right in law (for a start whose law is
        rotation-invariant in the complement, as the Gaussian one), the small state and the
        history as for any run. The full complement and the direct path follow the noise
        path by path.
    diverged_at : int or None
        The step whose state overflowed (after a "diverged" run).
    resume_state : dict or None
        What `fastmf.resume` needs besides the state: the kernel's bookkeeping before the
        final record.
    invariants : dict or None
        The run's extremes of what Ye and Du 2021 bound with high probability, and whether each
        bound held throughout (`fastmf.invariants.COLUMNS`: the section 3.1 constant c0 of
        the start, max ||B_t||_F, min sigma_d(A) from T1 on, ...), from the history (the
        eigenvalue-based ones on the spectral stride); None on the direct path.
    """

    options: Options | None = None
    method: str = "split"
    diverged_at: int | None = None
    resume_state: dict | None = field(default=None, repr=False)
    direct_state: dict | None = field(default=None, repr=False)
    invariants: dict | None = field(default=None, repr=False)

    _options_type = Options

    @property
    def lr(self) -> float:
        return self.options.lr

    @property
    def complement(self) -> str | None:
        """How the split engine kept the complement (None on the direct path)."""
        return self.options.complement if self.method == "split" else None

    @cached_property
    def U(self) -> np.ndarray:
        """U (m x k), rebuilt on first access as Phi Up + W_U L_U (on the direct path, kept; after
        compressed perturbed GD, with a fresh Haar frame W_U: right in law only)."""
        return self.direct_state["U"] if self.method == "direct" else super().U

    @cached_property
    def V(self) -> np.ndarray:
        """V (n x k), rebuilt on first access as Psi Vp + W_V L_V (on the direct path, kept)."""
        return self.direct_state["V"] if self.method == "direct" else super().V

    def _saved_fields(self) -> tuple[dict, dict]:
        state = self.resume_state or {}
        arrays = {f"run.{key}": value for key, value in state.items()}
        if self.method == "direct":
            arrays |= {"direct.U": self.direct_state["U"], "direct.V": self.direct_state["V"]}
            sigma = self.direct_state.get("sigma") or checkpoint.fingerprint(self.direct_state["Sigma"])
            return arrays, {"method": "direct", "diverged_at": self.diverged_at, "sigma": sigma}
        return arrays, {"method": "split", "diverged_at": self.diverged_at, "invariants": self.invariants}

    @staticmethod
    def _loaded_fields(arrays: dict, meta: dict) -> dict:
        state = {key[len("run.") :]: value for key, value in arrays.items() if key.startswith("run.")}
        fields = {"method": meta["method"], "diverged_at": meta["diverged_at"], "resume_state": state,
                  "invariants": meta.get("invariants")}  # fmt: skip
        if meta["method"] == "direct":
            fields["direct_state"] = {"U": arrays["direct.U"], "V": arrays["direct.V"], "sigma": meta["sigma"]}
        return fields

    def __repr__(self) -> str:
        m, n = (self.problem.shape if self.problem is not None else
                (self.direct_state["U"].shape[0], self.direct_state["V"].shape[0]))  # fmt: skip
        return (
            f"SolveResult(status={self.status!r}, n_iter={self.n_iter}, loss={self.loss:.6g}, "
            f"{m} x {n}, k={self.k}, lr={_lr_text(self.lr)}, method={self.method!r})"
        )


@dataclass(eq=False)
class FlowResult(_Split):
    """Outcome of `fastmf.gradient_flow`.

    Attributes
    ----------
    status, message, history, stages, k, init_scale, seed, success, loss
        As in `Result`: status "converged" (the loss reached `target_loss`), "t_max",
        "failed" (the integrator gave up; its reason is in `message`), "interrupted",
        "stopped", "time_limit" or "running"; `history` on the time axis "t", with the
        diagnostics of `SolveResult.history` (spectral ones at every recorded time) and
        "imbalance_drift" (||D(t) - D(0)||_F for D = U^T U - V^T V, which the flow
        conserves); `stages` as times, the rate per unit time, the theorem's
        exp(-sigma_d) (`fastmf.theory.flow_rate`).
    n_iter : int
        Steps of the ODE solver.
    t : float
        The time of the returned state (U(t), V(t)).
    nfev : int
        Right-hand-side evaluations.
    options : fastmf.FlowOptions
        The settings the run used, every default filled in.
    problem, Up, Vp, L_U, L_V, U, V
        As in `SolveResult`.
    resume_state : dict or None
        What `fastmf.resume` needs besides the state (`fastmf.flow.FlowRun.bookkeeping`): the
        records so far and the times still to record (internal units), the stage marks and the
        ODE solver's own state; None once the flow converged or failed.
    """

    t: float = 0.0
    nfev: int = 0
    options: FlowOptions | None = None
    resume_state: dict | None = field(default=None, repr=False)

    _options_type = FlowOptions

    def _saved_fields(self) -> tuple[dict, dict]:
        arrays = {f"run.{key}": value for key, value in (self.resume_state or {}).items()}
        return arrays, {"t": self.t, "nfev": self.nfev}

    @staticmethod
    def _loaded_fields(arrays: dict, meta: dict) -> dict:
        state = {key[len("run.") :]: value for key, value in arrays.items() if key.startswith("run.")}
        return {"t": meta["t"], "nfev": meta["nfev"], "resume_state": state}

    def __repr__(self) -> str:
        m, n = self.problem.shape
        return (
            f"FlowResult(status={self.status!r}, t={self.t:.6g}, loss={self.loss:.6g}, {m} x {n}, "
            f"k={self.k}, nfev={self.nfev})"
        )


@dataclass(eq=False)
class BatchResult(Sequence):
    """Outcome of `fastmf.solve_batch`: a sequence of runs, in the order of the seeds.

    ``batch[i]`` is run i's `SolveResult` (its U, V rebuilt on request from the small final
    state kept here); the batch iterates over its runs and `fastmf.plot.plot_runs` takes it.
    The per-run columns are arrays:

    Attributes
    ----------
    seed, lr, init_scale : ndarray
        What each run started from.
    n_iter : ndarray of int
        The step each run ended at.
    status : ndarray of str
        "max_iter", "converged" (a recorded loss <= tol) or "diverged"; the runs still
        going when the batch was stopped have the batch's reason ("interrupted",
        "stopped", "time_limit", or "running" in a checkpoint).
    final_loss : ndarray
        The loss of each run's final state.
    T1, T0, T_delta : ndarray of float
        Stage steps (`fastmf.stages`), NaN where not reached; exact to `record_every`.
    steps, losses : ndarray or None
        With ``history=True``: the recorded steps (shared by all runs) and the losses,
        runs x len(steps), NaN past a run's end.
    step_lr : ndarray or None
        With ``history=True`` and an lr schedule: the step size at each recorded step
        (the history's "lr"); the lr column is then NaN and ``options.lr`` is the schedule.
    message : str
        How the batch ended, in a sentence.
    invariants : dict of ndarray
        Per run, the extremes of what Ye and Du 2021 bound with high probability and whether
        each bound held throughout (`fastmf.invariants.COLUMNS`): c0 and its five ratios at
        t = 0; max_B_fro, min_sigma_A, max_lambda_AAt_2S, min_sigma_UV, c_B, c_JK,
        max_Delta_ratio; held_AAt, held_B, held_JK, held_sigma_UV, held_Delta (bool). The
        eigenvalue-based ones on the batch's spectral stride (`fastmf.solve_batch`), NaN (and
        the flags True) where nothing was checked.
    problem : Problem
    options : Options
        The settings shared by the runs, resolved (lr, init_scale and seed are per run, above).
    resume_state : dict
        The kernel's state and bookkeeping, in its units, for `fastmf.resume`.
    checkpoint_every : int or None
        As in `Result`.
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
    message: str = ""
    steps: np.ndarray | None = None
    losses: np.ndarray | None = None
    step_lr: np.ndarray | None = None
    problem: Problem | None = field(default=None, repr=False)
    options: Options | None = field(default=None, repr=False)
    resume_state: dict | None = field(default=None, repr=False)
    checkpoint_every: int | None = field(default=None, repr=False)
    invariants: dict | None = field(default=None, repr=False)

    _COLUMNS = ("seed", "lr", "init_scale", "n_iter", "status", "final_loss", "T1", "T0", "T_delta")

    def __len__(self) -> int:
        return self.seed.size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._run(range(len(self))[i])  # negative indices; IndexError past the end

    def _run(self, i: int) -> SolveResult:
        """Run i as a `SolveResult`: its final state with the complement bases of its start
        (drawn again from its seed), its losses and stages. With perturbed GD the complement
        is right in law only: its frame is a fresh Haar one (`fastmf.noise`)."""
        problem, r = self.problem, self.problem.rank
        lr = self.options.lr if callable(self.options.lr) else float(self.lr[i])
        options = dataclasses.replace(self.options, lr=lr, init_scale=float(self.init_scale[i]), seed=int(self.seed[i]))
        left, right = start(problem, options)
        scale = Scale.of(problem.sigma_1)
        X, Y = (scale.outward(self.resume_state[name][i], 0.5) for name in ("Xs", "Ys"))
        n_iter, loss = int(self.n_iter[i]), float(self.final_loss[i])
        steps, losses = np.array([], np.int64), np.array([])
        history = {}
        if self.losses is not None:
            kept = np.isfinite(self.losses[i])
            steps, losses = self.steps[kept], self.losses[i][kept]
            if self.step_lr is not None:
                history["lr"] = self.step_lr[kept]
        if not (steps.size and steps[-1] == n_iter):  # the final state, recorded on its own
            steps, losses = np.append(steps, n_iter), np.append(losses, loss)
            if "lr" in history:
                history["lr"] = np.append(history["lr"], np.nan)
        T1, T0, T_delta = (None if np.isnan(x) else int(x) for x in (self.T1[i], self.T0[i], self.T_delta[i]))
        rate = None if T0 is None else fit_rate(steps, losses, T0, problem.s)
        plain = options.plain and T0 is not None and self.status[i] != "diverged"
        local = theory.local_rate(problem.s, lr, X[:r], Y[:r], X[r:], Y[r:]) if plain else None
        level = converged_level(problem.s, X.shape[1])
        return SolveResult(
            status=str(self.status[i]),
            message=gd_message(
                str(self.status[i]), n_iter, n_iter + 1, loss, options, problem.sigma_1, level, resumable=False
            ),  # fmt: skip
            n_iter=n_iter,
            history={"step": steps, "loss": losses} | history,
            stages=Stages(T1, T0, T_delta, options.delta, rate, theory.rate_bound(problem.s, options), local),
            k=X.shape[1],
            init_scale=options.init_scale,
            seed=options.seed,
            problem=problem,
            left=Factor(X[:r], X[r:], left.W),
            right=Factor(Y[:r], Y[r:], right.W),
            options=options,
            diverged_at=n_iter + 1 if self.status[i] == "diverged" else None,
            invariants=None if self.invariants is None else {name: v[i].item() for name, v in self.invariants.items()},
        )

    @property
    def success(self) -> np.ndarray:
        """Per run: whether it converged or ran all its steps."""
        return np.array([statuses.success(s) for s in self.status])

    @property
    def k(self) -> int:
        return self.options.k

    @property
    def loss(self) -> np.ndarray:
        """Per run: the loss of its final state (`final_loss`)."""
        return self.final_loss

    @property
    def history(self) -> dict:
        """{"step": the recorded steps, "loss": runs x steps} with ``history=True``, else
        {"step": each run's final step (its n_iter), "loss": its final loss} (one column)."""
        if self.steps is None:
            return {"step": self.n_iter, "loss": self.final_loss[:, None]}
        return {"step": self.steps, "loss": self.losses} | ({} if self.step_lr is None else {"lr": self.step_lr})

    @property
    def stages(self) -> Stages:
        """The stages of every run as arrays (NaN where not reached); the measured rate is per
        run (`batch[i].stages`)."""
        plain = self.options.plain  # else no bound: NaN
        rate = np.array([theory.rate_bound(self.problem.s, dataclasses.replace(self.options, lr=float(lr)))
                         if plain else None for lr in self.lr], dtype=np.float64)  # fmt: skip
        return Stages(self.T1, self.T0, self.T_delta, self.options.delta, None, rate)

    def table(self) -> dict:
        """The per-run summary as columns of equal length: `seed` ... `T_delta`, then `invariants`."""
        return {name: getattr(self, name) for name in self._COLUMNS} | (self.invariants or {})

    def to_frame(self):
        """`table` as a pandas DataFrame (pandas is an optional extra)."""
        return to_frame(self.table())

    def save(self, path) -> None:
        """Write the batch to an .npz file, atomically (the basis of Sigma, not Sigma);
        `fastmf.load` reads it back and `fastmf.resume` continues it."""
        arrays, meta = checkpoint.problem_fields(self.problem)
        arrays |= {f"batch.{name}": getattr(self, name) for name in self._COLUMNS if name not in ("seed", "status")}
        arrays |= {f"run.{key}": value for key, value in self.resume_state.items()}
        if self.steps is not None:
            arrays |= {"batch.steps": self.steps, "batch.losses": self.losses}
        if self.step_lr is not None:
            arrays["batch.step_lr"] = self.step_lr
        arrays |= {f"invariants.{name}": value for name, value in (self.invariants or {}).items()}
        meta |= {
            "result": "BatchResult", "message": self.message, "status": self.status.tolist(),
            "seed": [int(s) for s in self.seed], "options": checkpoint.options_to_json(self.options),
            "checkpoint_every": self.checkpoint_every,
        }  # fmt: skip
        checkpoint.write(path, arrays, meta)

    @classmethod
    def _load(cls, arrays: dict, meta: dict):
        columns = {key[len("batch.") :]: value for key, value in arrays.items() if key.startswith("batch.")}
        proofs = {key[len("invariants.") :]: value for key, value in arrays.items() if key.startswith("invariants.")}
        return cls(
            seed=np.array(meta["seed"], dtype=np.int64),
            status=np.array(meta["status"]),
            message=meta["message"],
            checkpoint_every=meta["checkpoint_every"],
            problem=checkpoint.problem_from(arrays, meta),
            options=checkpoint.options_from_json(Options, meta["options"]),
            resume_state={key[len("run.") :]: value for key, value in arrays.items() if key.startswith("run.")},
            invariants=proofs or None,
            **columns,
        )

    def __repr__(self) -> str:
        names, counts = np.unique(self.status, return_counts=True)
        counts = ", ".join(f"{name}: {count}" for name, count in zip(names, counts, strict=True))
        return f"BatchResult({len(self)} runs; {counts})"


def load(path):
    """Read a result or checkpoint written by `save` or by ``checkpoint=...`` (a
    `SolveResult`, `FlowResult` or `fastmf.batch.BatchResult`), with ``allow_pickle=False``.

    Raises
    ------
    FileNotFoundError
        No such file.
    fastmf.checkpoint.CheckpointError
        A ValueError: the file is corrupt, truncated, or not a fastmf result.
    """
    arrays, meta = checkpoint.read(path)
    kinds = {"SolveResult": SolveResult, "FlowResult": FlowResult, "BatchResult": BatchResult}
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


def _lr_text(lr) -> str:
    """lr for a repr: a number as %g, a schedule as its repr."""
    return repr(lr) if callable(lr) else format(lr, "g")
