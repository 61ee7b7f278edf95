"""`solve` and `resume`: GD on the principal/complement split, run by the compiled kernel in chunks.

Between chunks the Python layer shows progress, calls the callback, checks the time limit,
writes checkpoints and notices Ctrl-C (`fastmf.monitor`). Everything the loop carries from
step to step lives in the arrays of a `Run`, so an interrupt loses nothing, and neither
the chunk size nor a save and `resume` in between changes the numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.sparse.linalg import LinearOperator

from . import _kernels as K
from . import stages, theory
from ._kernels.fpmode import flushing
from ._validate import finite_float, is_dask_array, positive_int
from .init import Factor, stack, start
from .monitor import Monitor
from .problem import Problem
from .result import DirectResult, FlowResult, SolveResult, load
from .scaling import Scale

# A chunk of steps should take about this long: short enough to honour Ctrl-C promptly,
# long enough that the ~10 us of Python per chunk is noise.
_CHUNK_SECONDS = 0.05
_FIRST_CHUNK = 64
# History rows allocated up front; more as the run goes (Run._reserve).
_FIRST_RESERVE = 4096


def solve(
    Sigma,
    rank: int,
    lr: float | str,
    max_iter: int,
    *,
    init_scale: float | str | None = None,
    seed=None,
    U0=None,
    V0=None,
    tol: float = 0.0,
    record_every: int = 1,
    spectral_every: int | None = None,
    delta: float | None = None,
    complement: str = "compressed",
    method: str = "auto",
    callback=None,
    progress: bool | None = None,
    time_limit: float | None = None,
    checkpoint=None,
    checkpoint_every: int | None = None,
) -> SolveResult | DirectResult:
    """Constant-step GD on min 1/2 ||U V^T - Sigma||_F^2 from a random or given start.

    Runs U+ = U + lr R V, V+ = V + lr R^T U with R = Sigma - U V^T (Ye and Du 2021, eqs 2-3)
    exactly, in the singular basis of Sigma where it splits into eqs (6)-(9); the
    complement is compressed to k x k matrices by default (docs/maths.md section 3), so a step
    costs O(k^3) whatever m and n are. The quantities the proofs track are recorded along
    the way (docs/maths.md section 4, `fastmf._kernels.diagnostics`), and the stages detected.
    Any finite scale of Sigma runs as scale 1 does (the engines work in units of the power
    of 4 nearest sigma_1, which changes no bit: `fastmf.scaling`), and numbers below the
    smallest normal float are flushed to zero, so a step costs the same however long the
    run (docs/maths.md section 5).

    Parameters
    ----------
    Sigma : array_like, sparse matrix, LinearOperator or Problem
        The target (m x n). Anything but a Problem is passed to ``Problem(Sigma)``.
    rank : int
        Width k of the factors, 1 <= k <= min(m, n); may differ from the rank r of Sigma.
    lr : float or "theory"
        Step size eta > 0. GD from a small start is stable for lr <= 1 / (3 sigma_1).
        "theory": Theorem 1.1's eta = sigma_d eps^2 / (d sigma_1^3) (`fastmf.theory`).
    max_iter : int
        Number of steps (>= 0).
    init_scale : float, "theory" or None
        Standard deviation eps of the iid Gaussian entries of U0 and V0; default
        1e-3 * sqrt(sigma_1 / (m + n)), which makes ||U0||_op about 1e-3 sqrt(sigma_1)
        whatever the size (the theory's eps also scales as 1 / sqrt(m + n)). "theory":
        Theorem 1.1's eps = sigma_d / sqrt(d^3 sigma_1 (m + n)). Ignored when U0 and V0
        are given.
    seed : int, sequence of int, numpy.random.SeedSequence or None
        Seed of the initialization (see `fastmf.init` for the streams it feeds).
    U0, V0 : array_like, optional
        Initial factors (m x k, n x k), both or neither; not modified.
    tol : float
        Stop ("converged") at the first recorded step whose loss is <= tol and also within
        1e-4 of the way from 1/2 ||Sigma||_F^2 (the loss of U = V = 0) down to the best loss
        of width k, 1/2 sum_{i > k} s_i^2 (`stages.converged_level`; the direct path takes
        that best loss as 0), so that a tol large for the scale of Sigma cannot stop a run
        at step 0. 0 disables the early stop unless the loss is exactly 0.
    record_every : int
        Record the diagnostics every this many steps (and at the last step).
    spectral_every : int, optional
        Also record the spectral diagnostics (sigma_min_A, lambda_min_P, P_op, J_op, K_op,
        E_op) at the recorded steps that are multiples of this (and the last); 0 never.
        Elsewhere they are NaN. Default record_every when the rank r of Sigma is at most
        k; when r > k (a spectral record costs O(r^3), a step O((r + k) k^2)), every
        ceil((r / k)^2) records, so that they cost about what the steps cost.
    delta : float, optional
        Loss level whose first recorded step is `stages.T_delta`; default tol (if > 0).
    complement : {"compressed", "full"}
        "full" keeps the complement as m x k and n x k matrices (one pass over them per
        step); both give the same numbers to rounding.
    method : {"auto", "split", "direct"}
        "split": the engine above (a `SolveResult`). "direct": eqs (2)-(3) on a dense
        Sigma itself, one pass over Sigma per step (4 m n k flops), no basis, the loss and
        the imbalance only (a `DirectResult`; no checkpoints). "auto" (default): split,
        unless Sigma is a dense array whose exact basis a sketch of at most
        max(32, max_iter k / 2) columns does not find, so that the basis would cost more
        than the whole direct run (`Problem.if_low_rank`), or whose rank r makes the split
        run's records (O(r^2) each) cost more than the direct run's steps (4 m n k flops).
    callback : callable, optional
        ``callback(state) -> bool``, called between chunks of the compiled loop (about
        every 0.05 s, and at each checkpoint) with a `fastmf.monitor.RunState`: the step,
        the latest recorded diagnostics and the stage. Returning True stops the run
        (status "stopped").
    progress : bool or None
        A tqdm progress bar with the step, loss and stage: None (default) shows one on
        runs longer than a second when stderr is a terminal and tqdm is installed.
    time_limit : float, optional
        Stop after this many wall-clock seconds (status "time_limit").
    checkpoint : str or os.PathLike, optional
        Save the run to this .npz file every `checkpoint_every` steps and when it ends,
        however it ends (Ctrl-C included); `fastmf.resume` continues it bit for bit.
        Each write replaces the file atomically, so a crash mid-write leaves the last one.
    checkpoint_every : int, optional
        Steps between checkpoints; default: only at the end.

    Returns
    -------
    SolveResult or DirectResult
        With `history`, `stages`, `status`, `message`, `n_iter` and the final U, V (for
        the split engine also the small final state, U and V rebuilt on first access,
        and `save`, which writes it to a file).
    """
    if method not in ("auto", "split", "direct"):
        raise ValueError(f"method must be 'auto', 'split' or 'direct', got {method!r}")
    max_iter = positive_int(max_iter, "max_iter", minimum=0)
    tol = finite_float(tol, "tol")
    record_every = positive_int(record_every, "record_every")
    if spectral_every is not None:
        spectral_every = positive_int(spectral_every, "spectral_every", 0)
    delta = (tol if tol > 0 else None) if delta is None else finite_float(delta, "delta", positive=True)
    checkpoint, checkpoint_every = _checkpoint_args(checkpoint, checkpoint_every)
    monitor = Monitor(progress, callback, time_limit, max_iter, "step")
    if method == "auto":
        method, Sigma = _choose(Sigma, rank, max_iter, record_every)
    if method == "direct":
        from .direct import direct_start, solve_direct  # direct.py builds on this module

        if checkpoint is not None:
            raise ValueError("checkpoints are for the split engine: use method='split', or drop checkpoint")
        S, k, U0, V0 = direct_start(Sigma, rank, U0, V0)
        return solve_direct(S, k, lr, max_iter, init_scale, seed, U0, V0, (tol, record_every, delta), monitor)
    st = start(Sigma, rank, init_scale, seed, U0, V0, complement)
    problem = st.problem
    if isinstance(lr, str):
        if lr != "theory":
            raise ValueError(f"lr must be a positive number or 'theory', got {lr!r}")
        m, n = problem.shape
        lr = theory.step_size(problem.s, st.init_scale or theory.init_scale(problem.s, m, n))
    lr = finite_float(lr, "lr", positive=True)
    if spectral_every is None:
        spectral_every = default_spectral_every(problem.rank, st.rank, record_every)
    settings = Settings(
        lr, complement, max_iter, tol, record_every, spectral_every, delta, checkpoint, checkpoint_every
    )
    run = Run(stack(st.left), stack(st.right), problem.s, lr, tol, max_iter, record_every, spectral_every)
    origin = (problem, st.rank, st.left.W, st.right.W, st.init_scale, st.seed)
    return _execute(run, origin, settings, monitor)


def default_spectral_every(r: int, k: int, record_every: int) -> int:
    """The spectral stride `solve` takes by default: every record when r <= k; when the rank r
    of Sigma exceeds the width k, every ceil((r / k)^2) records, since a spectral record costs
    O(r^3) and a step O((r + k) k^2): the spectral diagnostics then cost about a step."""
    return record_every * (1 if r <= k else -(-(r * r) // (k * k)))


# Cost of a split-engine record per entry of an r x r matrix, in flops of a BLAS product: the
# loss and the stage tests pass over E = Up Vp^T and P a few times in scalar, partly strided
# loops (about 6 ns an entry against about 0.2 ns a flop for the direct path's BLAS products,
# 2-core AMD EPYC).
_RECORD_FLOPS_PER_ENTRY = 30


def _choose(Sigma, rank, max_iter, record_every):
    """("split" or "direct", Sigma or its Problem) for method="auto" (see `solve`): split when
    a sketch of at most max(32, max_iter k / 2) columns finds the exact basis (cheaper than
    the direct run) and the split run, records included, costs less than the direct one."""
    if isinstance(Sigma, (Problem, LinearOperator)) or scipy.sparse.issparse(Sigma) or is_dask_array(Sigma):
        return "split", Sigma
    k = positive_int(rank, "rank")
    m, n = np.shape(Sigma)[:2] if np.ndim(Sigma) == 2 else (1, 1)  # Problem checks the rest
    direct = 4 * m * n * k  # flops of a direct step
    r_max = int(np.sqrt(direct * record_every / _RECORD_FLOPS_PER_ENTRY))  # past it, records cost more
    problem = Problem.if_low_rank(Sigma, min(max(32, max_iter * k // 2), max(r_max, 32)))
    if problem is None:
        return "direct", Sigma
    records = _RECORD_FLOPS_PER_ENTRY * problem.rank**2 / record_every  # a split step costs less than these
    return ("direct", Sigma) if records > direct else ("split", problem)


def resume(
    source,
    max_iter: int | None = None,
    *,
    callback=None,
    progress: bool | None = None,
    time_limit: float | None = None,
    checkpoint=None,
    checkpoint_every: int | None = None,
) -> SolveResult:
    """Continue a GD run saved by ``solve(..., checkpoint=...)`` or `SolveResult.save`.

    The continued run gives exactly the numbers (state, history, stages) of a run that
    was never stopped, with the settings saved in the file (lr, tol, strides, ...).

    Parameters
    ----------
    source : str, os.PathLike or SolveResult
        A saved run (read with ``allow_pickle=False``) or a result in memory whose status
        is "running" (a checkpoint), "interrupted", "stopped", "time_limit" or "max_iter".
    max_iter : int, optional
        Total number of steps, counted from step 0; default the saved run's.
    callback, progress, time_limit
        As in `solve`, for this call.
    checkpoint : str, os.PathLike or False, optional
        Where to keep saving the run; default: back into `source` when it is a file (with
        the saved run's checkpoint_every), else where the saved run did; False: nowhere.
    checkpoint_every : int, optional
        Default the saved run's.
    """
    result = load(source) if not isinstance(source, (SolveResult, FlowResult)) else source
    if not isinstance(result, SolveResult):
        raise TypeError("only GD runs resume: this file holds a gradient flow result (FlowResult)")
    if result.status in ("converged", "diverged"):
        raise ValueError(
            f"this run has {result.status} ({result.message}); there is nothing to resume. "
            "Start a new run with solve() (for a converged run, with a smaller tol)"
        )
    saved = Settings(**result.resume_state["settings"])
    max_iter = saved.max_iter if max_iter is None else positive_int(max_iter, "max_iter", minimum=0)
    if max_iter < result.n_iter:
        raise ValueError(f"max_iter must be at least the saved run's step {result.n_iter}, got {max_iter}")
    if checkpoint is None:
        from_file = isinstance(source, (str, os.PathLike))
        checkpoint = os.fspath(source) if from_file else saved.checkpoint
        checkpoint_every = checkpoint_every or saved.checkpoint_every
    checkpoint, checkpoint_every = _checkpoint_args(checkpoint or None, checkpoint_every)
    monitor = Monitor(progress, callback, time_limit, max_iter, "step")
    settings = dataclasses.replace(saved, max_iter=max_iter, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    problem = result.problem
    run = Run(stack(result.left), stack(result.right), problem.s, saved.lr, saved.tol, max_iter,
              saved.record_every, saved.spectral_every)  # fmt: skip
    run.restore(result.history, result.resume_state)
    origin = (problem, result.rank, result.left.W, result.right.W, result.init_scale, result.seed)
    return _execute(run, origin, settings, monitor)


@dataclass(frozen=True)
class Settings:
    """What fixes a GD run besides its start; saved with it so that `resume` goes on alike."""

    lr: float
    complement: str
    max_iter: int
    tol: float
    record_every: int
    spectral_every: int
    delta: float | None
    checkpoint: str | None
    checkpoint_every: int | None


def _checkpoint_args(checkpoint, checkpoint_every):
    if checkpoint is None:
        if checkpoint_every is not None:
            raise ValueError("checkpoint_every needs a checkpoint file: pass checkpoint='run.npz'")
        return None, None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path (str or os.PathLike), got {type(checkpoint).__name__}")
    checkpoint = os.fspath(checkpoint)
    folder = os.path.dirname(os.path.abspath(checkpoint))
    if not os.path.isdir(folder):
        raise ValueError(f"checkpoint: the folder {folder} does not exist; create it or choose another path")
    if checkpoint_every is not None:
        checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
    return checkpoint, checkpoint_every


def _execute(run: Run, origin, settings: Settings, monitor: Monitor) -> SolveResult:
    """Drive a split-engine run to its end and wrap it up as a SolveResult."""
    return execute(run, settings, monitor, lambda status, state: _result(run, origin, settings, status, state))


def execute(run: Recorder, settings, monitor: Monitor, wrap):
    """Drive `run` to its end, record the final state, save it if asked, and return
    ``wrap(status, bookkeeping)``, the result (bookkeeping: the run's before the final record)."""
    try:
        status = _drive(run, settings, monitor, wrap)
    except Exception:  # a callback, the kernel, the disk: save what the run has, then let it propagate
        if settings.checkpoint is not None:
            with contextlib.suppress(Exception):
                wrap("running", run.bookkeeping()).save(settings.checkpoint)
        raise
    finally:
        monitor.close()
    before_final = run.bookkeeping()
    run.record_final()
    status = {K.CONVERGED: "converged", K.DIVERGED: "diverged"}.get(int(run.info[K.STATUS]), status)
    result = wrap(status, before_final)
    if settings.checkpoint is not None:
        result.save(settings.checkpoint)
    return result


def _drive(run: Recorder, settings, monitor: Monitor, wrap) -> str:
    """Advance `run` chunk by chunk to max_iter; between chunks: checkpoints, the monitor,
    Ctrl-C. Returns the status ("max_iter", "stopped", "time_limit", "interrupted")."""
    max_iter, every = settings.max_iter, settings.checkpoint_every
    chunk = _FIRST_CHUNK
    try:
        while run.running and run.step < max_iter:
            t_stop = min(run.step + chunk, max_iter)
            if every is not None:
                t_stop = min(t_stop, (run.step // every + 1) * every)
            start_time = time.perf_counter()
            run.advance(t_stop)
            elapsed = time.perf_counter() - start_time
            chunk = int(np.clip(chunk * _CHUNK_SECONDS / max(elapsed, 1e-6), 1, 4 * chunk))
            if every is not None and run.step % every == 0 and run.running and run.step < max_iter:
                wrap("running", run.bookkeeping()).save(settings.checkpoint)
            stop = monitor.update(run.step, run.latest(), *run.stage_steps())
            if stop is not None:
                return stop
    except KeyboardInterrupt:
        return "interrupted"
    return "max_iter"


def _result(run: Run, origin, settings: Settings, status: str, resume_state: dict) -> SolveResult:
    problem, rank, W_left, W_right, init_scale, seed = origin
    r = problem.rank
    history = run.history()
    T1, T0 = run.stage_steps()
    bad_step = int(run.info[K.BAD_STEP])
    rate = theory.linear_rate(problem.s, settings.lr)
    X, Y = run.state()
    delta = run.scale.inward(settings.delta, 2)
    level = run.scale.outward(run.level, 2)
    return SolveResult(
        problem=problem,
        rank=rank,
        lr=settings.lr,
        complement=settings.complement,
        status=status,
        message=message(status, run.step, bad_step, history, settings, problem.sigma_1, level),
        n_iter=run.step,
        history=history,
        stages=stages.detect(history["step"], run.internal_loss(), T1, T0, delta, rate, run.s, settings.delta),
        left=Factor(X[:r], X[r:], W_left),
        right=Factor(Y[:r], Y[r:], W_right),
        diverged_at=bad_step if status == "diverged" else None,
        init_scale=init_scale,
        seed=seed,
        resume_state={"settings": dataclasses.asdict(settings)} | resume_state,
    )


def diagnostic_work(r: int, k: int):
    """Work arrays for `diagnostics.record`: (E, D, vecs, valid)."""
    n = max(r, k)
    return np.zeros((r, r)), np.zeros((8, n, n)), np.zeros((K.N_TRACKED, n)), np.zeros(K.N_TRACKED, np.int64)


class Recorder:
    """The history and bookkeeping of a compiled loop advanced in chunks (`Run`, `direct.DirectRun`).

    Subclasses hold the state and implement ``_call(t_stop, t_final)``, which runs their
    kernel with the conventions of `blocks.run_blocks`, and ``history()``.
    """

    def __init__(self, max_iter, record_every, scale: Scale):
        self.record_every = record_every
        self.scale = scale
        self.info = np.zeros(K.N_INFO, np.int64)
        self.info[K.T1] = self.info[K.T0] = -1
        self.steps = np.zeros(0, np.int64)
        self.rec = np.zeros((0, K.N_KEYS))
        self._reserve(min(max_iter, _FIRST_RESERVE))

    @property
    def step(self) -> int:
        return int(self.info[K.STEP])

    @property
    def running(self) -> bool:
        return self.info[K.STATUS] == K.RUNNING

    @property
    def n_records(self) -> int:
        return int(self.info[K.N_RECORDS])

    def stage_steps(self) -> tuple[int | None, int | None]:
        """(T1, T0) found so far."""
        return tuple(int(self.info[i]) if self.info[i] >= 0 else None for i in (K.T1, K.T0))

    def advance(self, t_stop: int) -> None:
        """Run to step t_stop (or a stop), recording on the stride; the state at t_stop is
        left unrecorded, so the next call starts exactly where an unbroken loop would be."""
        self._reserve(t_stop - self.step)
        with flushing():
            self._call(t_stop, -1)

    def _reserve(self, n_steps: int) -> None:
        """Room in the history for n_steps more steps and a final record (grown by doubling,
        so a long max_iter costs memory only as the run gets there)."""
        need = self.n_records + n_steps // self.record_every + 2
        if need > self.steps.size:
            size = max(need, 2 * self.steps.size)
            self.steps = np.concatenate([self.steps, np.zeros(size - self.steps.size, np.int64)])
            self.rec = np.concatenate([self.rec, np.full((size - self.rec.shape[0], K.N_KEYS), np.nan)])

    def record_final(self) -> None:
        """Record the current state if it is not recorded yet (the end of a run; after a
        divergence, the last finite state, which is the one returned: its loss, but no stage,
        since a state about to overflow makes the stage tests meaningless)."""
        j = self.n_records
        if not (j and self.steps[j - 1] == self.step):
            diverged = self.info[K.STATUS] == K.DIVERGED
            kept = self.info.copy()
            if diverged:
                self.info[K.STATUS] = K.RUNNING
            self._reserve(0)
            with flushing():
                self._call(self.step, self.step)
            if diverged:
                self.info[[K.STATUS, K.T1, K.T0]] = kept[[K.STATUS, K.T1, K.T0]]

    def latest(self) -> dict:
        """The last recorded row, as {"step": t, key: value}."""
        j = self.n_records - 1
        if j < 0:
            return {}
        row = dict(zip(K.KEYS, self.rec[j].tolist(), strict=True))
        return self.scale.history_outward({"step": int(self.steps[j])} | row)

    def _history(self, keys) -> dict:
        """The recorded columns `keys`, in the user's units."""
        j = self.n_records
        history = {"step": self.steps[:j].copy()} | {key: self.rec[:j, c].copy() for c, key in enumerate(keys)}
        return self.scale.history_outward(history)

    def internal_loss(self) -> np.ndarray:
        """The recorded losses in the run's internal units (`fastmf.scaling`)."""
        return self.rec[: self.n_records, 0].copy()


class Run(Recorder):
    """The compiled loop's arrays for one GD run: the stacked state, the history, the bookkeeping.

    Everything the kernel carries from one step to the next lives here (the state, the
    step, the stage flags, the tracked eigenvectors), so a run advanced in several calls,
    or saved and restored in between, follows exactly the trajectory and records of one call.
    """

    def __init__(self, X, Y, s, lr, tol, max_iter, record_every, spectral_every):
        """X, Y: the stacked start, s, lr, tol in the user's units; the run keeps them in the
        units of the power of 4 nearest sigma_1 (`fastmf.scaling`: exact)."""
        scale = Scale.of(s[0])
        super().__init__(max_iter, record_every, scale)
        dtype = X.dtype
        k, r = X.shape[1], s.size
        self.X, self.Y, self.s = scale.inward(X, 0.5), scale.inward(Y, 0.5), scale.inward(s, 1)
        tiny = np.finfo(dtype).tiny
        if 0 < max(np.max(np.abs(self.X)), np.max(np.abs(self.Y))) < tiny:
            warnings.warn(
                "the start is below the smallest normal number at Sigma's scale: it is flushed to U = V = 0, "
                "a saddle GD never leaves; use a larger init_scale",
                RuntimeWarning,
                stacklevel=4,
            )
        self.lr = internal_lr(scale, lr, self.s[0], dtype)
        self.level = stages.converged_level(self.s, k)
        self.tol = min(scale.inward(tol, 2), self.level)
        self.spectral_every = spectral_every
        self.Xw, self.Yw = np.empty_like(X), np.empty_like(Y)
        self.G = np.zeros((7, k, k), dtype)
        self.E, self.D, self.vecs, self.valid = diagnostic_work(r, k)
        self.E = self.E.astype(dtype)  # np.dot into E needs the state's dtype; D stays float64

    def history(self) -> dict:
        return self._history(K.KEYS if self.spectral_every else K.KEYS[: K.N_CHEAP])

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
        j = self.n_records
        self._reserve(0)
        history = self.scale.history_inward(history)
        self.steps[:j] = history["step"][:j]
        for c, key in enumerate(K.KEYS):
            if key in history:
                self.rec[:j, c] = history[key][:j]
        if "loss" in bookkeeping:  # exact where the user's units over- or underflow
            self.rec[:j, 0] = bookkeeping["loss"][:j]

    def _call(self, t_stop, t_final):
        K.run_blocks(
            self.X, self.Y, self.s, self.lr, self.tol, t_stop, t_final, self.record_every, self.spectral_every,
            self.Xw, self.Yw, self.G, self.E, self.D, self.vecs, self.valid, self.steps, self.rec, self.info,
        )  # fmt: skip


def internal_lr(scale: Scale, lr: float, sigma_1, dtype):
    """lr in a run's internal units and dtype; warns when it is too small to move the state
    in that precision (1 - lr sigma_1 rounds to 1: GD would not move)."""
    with np.errstate(over="ignore"):
        inner = dtype.type(scale.inward(lr, -1))
    if not np.isfinite(inner):
        raise ValueError(f"lr = {lr:g} is beyond the range of {dtype.name} for this Sigma; use a smaller lr")
    if dtype.type(1) - inner * dtype.type(sigma_1) == 1:
        warnings.warn(
            f"lr = {lr:g} is so small that 1 - lr sigma_1 rounds to 1 in {dtype.name}: GD will not move; "
            "use a larger lr" + (" or float64 data" if dtype == np.float32 else ""),
            RuntimeWarning,
            stacklevel=4,
        )
    return inner


def message(status, n_iter, bad_step, history, settings, sigma_1, level=None, resumable=True) -> str:
    """One sentence on how a GD run ended (`SolveResult.message`); `level`: the converged
    level (`stages.converged_level`) in the user's units, when it is below tol."""
    last = f"loss {history['loss'][-1]:.6g}" if history["loss"].size else "no loss recorded"
    again = "; fastmf.resume() continues it" if resumable else ""
    if status == "converged":
        capped = "" if level is None or level >= settings.tol else f" and <= {level:.6g} (1e-4 of Sigma's scale)"
        return f"converged: loss {history['loss'][-1]:.6g} <= tol {settings.tol:g}{capped} at step {n_iter}"
    if status == "max_iter":
        return f"reached max_iter = {settings.max_iter} steps; {last}"
    if status == "running":
        return f"checkpoint at step {n_iter} of {settings.max_iter}; {last}{again}"
    if status == "interrupted":
        return f"interrupted (KeyboardInterrupt) at step {n_iter}; the state and history so far are kept, {last}{again}"
    if status == "stopped":
        return f"stopped by the callback at step {n_iter}; {last}{again}"
    if status == "time_limit":
        return f"stopped at the time limit at step {n_iter}; {last}{again}"
    bound = 1.0 / (3.0 * sigma_1)
    head = (
        f"diverged: the iterate went non-finite at step {bad_step} with lr = {settings.lr:g}; the returned state "
        f"is the last finite one (step {n_iter}). "
    )
    if settings.lr > bound:
        return head + f"GD from a small start is stable for lr <= 1 / (3 sigma_1) = {bound:.4g}"
    return head + (
        f"lr is within GD's stable range from a small start (lr <= 1 / (3 sigma_1) = {bound:.4g}), so the start "
        "was too large: use a smaller init_scale (or smaller U0, V0)"
    )
