"""`solve_batch`: many seeded GD runs on one problem, advanced together by one compiled kernel.

The theorems hold "with high probability over the initialization"; studying them takes
thousands of runs. Each run is `fastmf.solve(problem, k, lr, max_iter, seed=...)` (same
start, same trajectory to rounding, same stages), in blocks of runs advanced together as
vectors (`fastmf._kernels.batch`), the blocks in parallel. The batch is an engine of
`fastmf.driver`, so it runs in chunks of about 0.05 s: Ctrl-C, callbacks, time limits and
checkpoints work as for one run, and its cost depends on the steps the runs take, not on
max_iter.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from . import _kernels as K
from . import invariants, schedules, stages
from . import options as settings
from ._kernels import layout as S
from ._kernels.batch import run_threads
from .driver import Control, drive
from .init import given_start, initial_factors, stack
from .noise import NoiseStream
from .options import Options, merged
from .problem import Problem
from .recorder import internal_lr, lr_power, noise_steps, plain_update, scheduled, variant_array
from .result import BatchResult
from .scaling import Scale
from .status import batch_message, from_kernel


class BatchRun:
    """The batch kernel's arrays (the states of every run, their summaries and losses) and
    the engine operations of `fastmf.driver`. The runs work in the units of the power of 4
    nearest sigma_1 (`fastmf.scaling`: exact), as `solve` does."""

    def __init__(self, problem: Problem, options: Options, lrs, scales, seeds, Xs, Ys, keep_history: bool):
        self.problem, self.options = problem, options
        self.lrs, self.scales, self.seeds = lrs, scales, seeds
        self.scale = scale = Scale.of(problem.sigma_1)
        self.s = scale.inward(problem.s, 1)
        self.Xs, self.Ys = Xs, Ys  # internal units, C order, updated in place
        dtype = problem.dtype
        # the step of run i at step t is inner_lrs[i] * the schedule's factor at t (`run_batch`);
        # ScaledGD's step, lr (G + lam I)^-1 times a gradient, makes its lr a pure number
        self.lr_power = lr_power(options)
        self.schedule = options.lr if callable(options.lr) else None
        if self.schedule is not None:
            self.inner_lrs = np.ones(seeds.size, dtype)
        elif self.lr_power:
            inner = {lr: internal_lr(scale, lr, self.s[0], dtype) for lr in dict.fromkeys(lrs)}  # once per value
            self.inner_lrs = np.array([inner[lr] for lr in lrs], dtype)
        else:
            self.inner_lrs = np.asarray(lrs, dtype)
        self.variant = None if plain_update(options) else variant_array(options, scale)  # None: plain code only
        # perturbed GD: one noise stream per run, compressed form (`fastmf.noise`)
        self.streams = [NoiseStream(int(seed)) for seed in seeds] if options.noise > 0 else None
        self.nu = scale.inward(options.noise, 0.5)
        self.sides = [(A.shape[1], A.shape[2], dim - A.shape[1])
                      for A, dim in zip((Xs, Ys), problem.shape, strict=True)]  # fmt: skip
        self.tol = min(scale.inward(options.tol, 2), stages.converged_level(self.s, options.k))
        self.delta = -1.0 if options.delta is None else scale.inward(options.delta, 2)
        runs = seeds.size
        self.summary = np.zeros((runs, S.N_SUMMARY))
        self.summary[:, S.STATUS] = K.RUNNING
        self.summary[:, S.FINAL_LOSS] = np.nan
        self.summary[:, [S.T1, S.T0, S.T_DELTA]] = -1
        self.losses = np.full((runs, 0), np.nan)
        self.keep_history = keep_history
        self.step = 0
        self.auto = options.record_every is None  # the stride follows the step
        self.record_every = settings.record_stride(0) if self.auto else options.record_every
        self.before_final = None
        # the per-run extremes of the proofs' quantities (`fastmf.invariants`), carried from call to
        # call like the state: ||B||_F's unless spectral_every = 0, the eigenvalue-based ones when
        # spectral_every > 0 (the kernel compiles only what is asked)
        r, k = problem.rank, options.k
        every = options.spectral_every
        self.proofs = {} if every == 0 else {"extremes": np.full((runs, S.N_EXTREMES), np.nan)}
        if every:
            self.proofs |= {"proof_vecs": np.zeros((runs, S.N_PROOF_TRACKED, max(r, k))),
                            "proof_valid": np.zeros((runs, S.N_PROOF_TRACKED), np.int64)}  # fmt: skip
        # condition (2)'s factor 1 - lr sigma_d / 2 (`theory.delta_bound`); NaN: no bound (not plain GD)
        self.rates = (
            1.0 - np.asarray(lrs, np.float64) * float(problem.s[-1]) / 2.0 if options.plain else np.full(runs, np.nan)
        )
        eps = np.asarray(scales, np.float64)  # (None, for a given start: NaN)
        self.start_ratios = invariants.start_ratios(Xs, Ys, r, problem.shape, scale.inward(eps, 0.5))

    @property
    def work(self) -> int:
        return self.step

    position = work

    @property
    def done(self) -> bool:
        return self.step >= self.options.max_iter or not np.any(self.summary[:, S.STATUS] == K.RUNNING)

    def advance(self, n: int) -> None:
        """Run at most n steps; with the default stride, a call ends where it doubles and the
        losses kept so far are thinned to it (`options.record_stride`, as `Recorder.advance`)."""
        if self.streams is not None:  # a chunk's noise: at most about 2**22 numbers
            n = min(n, noise_steps(self.sides, np.count_nonzero(self.summary[:, S.STATUS] == K.RUNNING)))
        t_stop = min(self.step + n, self.options.max_iter)
        if self.auto:
            t_stop = min(t_stop, settings.DEFAULTS.max_records * self.record_every)
        self._call(t_stop, -1)  # the state at t_stop is left unrecorded, as `Recorder.advance` does
        if self.auto and settings.record_stride(self.step) != self.record_every:
            # a record of step t sits in column t // stride, and the new stride is twice the old
            self.losses = np.ascontiguousarray(self.losses[:, ::2])
            self.record_every = settings.record_stride(self.step)

    def _call(self, t_stop: int, t_final: int) -> None:
        every = self.record_every
        if self.keep_history:  # room for the columns up to t_stop, grown by doubling
            need = t_stop // every + 2
            if need > self.losses.shape[1]:
                grown = np.full((self.losses.shape[0], max(need, 2 * self.losses.shape[1])), np.nan)
                grown[:, : self.losses.shape[1]] = self.losses
                self.losses = grown
        lr_scale = self._schedule(t_stop)
        noise = self._noise(t_stop)
        extremes, spectral = self.proofs.get("extremes"), None
        if "proof_vecs" in self.proofs:
            spectral = (self.proofs["proof_vecs"], self.proofs["proof_valid"], self.rates, self.options.spectral_every)
        run_threads(self.Xs, self.Ys, self.s, self.inner_lrs, lr_scale, self.variant, noise, self.tol, self.step,
                    t_stop, t_final, every, self.delta, self.summary, self.losses, extremes, spectral)  # fmt: skip
        self.step = t_stop

    def _schedule(self, t_stop: int) -> np.ndarray:
        """The schedule's step sizes from this step to t_stop, in internal units ([1]: none)."""
        if self.schedule is None:
            return np.ones(1, self.problem.dtype)
        return scheduled(self.schedule, self.step, t_stop, self.scale, self.lr_power, self.problem.dtype)[1]

    def _noise(self, t_stop: int) -> tuple | None:
        """(ZX, BX, ZY, BY) of `run_batch`: the noise of the running runs from this step to
        t_stop; None without noise."""
        if self.streams is None:
            return None
        runs, n = self.seeds.size, t_stop - self.step
        out = [np.zeros((runs, n, size, k), self.problem.dtype) for rows, k, rest in self.sides
               for size in (rows, min(rest, k))]  # fmt: skip
        for i in np.flatnonzero(self.summary[:, S.STATUS] == K.RUNNING) if n else ():
            for at, (Z, B) in enumerate(self.streams[i].draw(n, self.nu, self.sides)):
                out[2 * at][i], out[2 * at + 1][i] = Z, B
        return tuple(out)

    def latest(self) -> dict:
        """{"step", "loss"}: the median of the runs' last recorded losses."""
        return {"step": self.step, "loss": self.scale.outward(float(np.nanmedian(self.summary[:, S.FINAL_LOSS])), 2)}

    def stage_positions(self):
        """(T1, T0) once every run has reached it: the latest run's."""
        return tuple(int(self.summary[:, c].max()) if np.all(self.summary[:, c] >= 0) else None for c in (S.T1, S.T0))

    def finish(self, status: str) -> str:
        """Record the state of the runs still going (`advance` never records the state it
        reaches); the summary before that record is what `fastmf.resume` continues from."""
        self.before_final = self._kernel_state()
        self._call(self.step, self.step)
        return "max_iter" if status == "done" else status

    def result(self, status: str) -> BatchResult:
        summary = self.summary
        names = np.array([from_kernel(c, status) for c in summary[:, S.STATUS]])
        stage = summary[:, [S.T1, S.T0, S.T_DELTA]].copy()
        stage[stage < 0] = np.nan
        steps = losses = step_lr = None
        if self.keep_history:
            every = self.record_every
            steps = np.minimum(np.arange(self.losses.shape[1], dtype=np.int64) * every, self.step)
            used = int(np.max(np.nonzero(np.isfinite(self.losses).any(axis=0))[0], initial=-1)) + 1
            steps, losses = steps[:used], self.scale.outward(self.losses[:, :used], 2)
            if self.schedule is not None:
                step_lr = schedules.values(self.schedule, steps)
        kept = self._kernel_state() if status == "running" else self.before_final
        state = {"Xs": self.Xs.copy(), "Ys": self.Ys.copy(), "losses": self.losses.copy(), "step": np.array(self.step),
                 "start_ratios": self.start_ratios.copy()} | kept  # fmt: skip
        if self.streams is not None:
            state["noise"] = np.array([json.dumps(stream.state()) for stream in self.streams])
        if self.schedule is not None:  # what a resume checks a schedule given again against
            taken = np.arange(min(self.step, 1)) if self.step < 2 else np.array([0, self.step - 1])
            state["lr_check"] = np.stack([taken, schedules.values(self.schedule, taken)])
        return BatchResult(
            seed=self.seeds.copy(), lr=self.lrs, init_scale=self.scales, n_iter=summary[:, S.N_ITER].astype(np.int64),
            status=names, final_loss=self.scale.outward(summary[:, S.FINAL_LOSS], 2), T1=stage[:, 0],
            T0=stage[:, 1], T_delta=stage[:, 2], message=batch_message(status, names, self.step), steps=steps,
            losses=losses, step_lr=step_lr, problem=self.problem, options=self.options, resume_state=state,
            invariants=self._invariants(),
        )  # fmt: skip

    def _kernel_state(self) -> dict:
        """Copies of what the kernel carries besides the state: the summary and the extremes' arrays."""
        return {"summary": self.summary.copy()} | {name: a.copy() for name, a in self.proofs.items()}

    def _invariants(self) -> dict:
        """The per-run columns of `fastmf.invariants` (NaN: the extremes not taken)."""
        extremes = np.full((self.seeds.size, S.N_EXTREMES), np.nan)
        if "extremes" in self.proofs:
            extremes = invariants.outward(self.scale, self.proofs["extremes"])
        eps = np.asarray(self.scales, np.float64)
        return invariants.summarize(extremes, self.start_ratios, eps, self.problem.rank, self.problem.shape,
                                    self.problem.s, self.problem.dtype)  # fmt: skip

    def restore(self, saved: BatchResult) -> None:
        state = saved.resume_state
        self.summary[:] = state["summary"]
        for name, a in self.proofs.items():  # (a file of an older fastmf has none: they start afresh)
            if name in state:
                a[:] = state[name]
        self.start_ratios = state.get("start_ratios", np.full_like(self.start_ratios, np.nan))
        self.losses = state["losses"].copy()
        self.step = int(state["step"])
        for stream, saved_state in zip(self.streams or [], state.get("noise", []), strict=True):
            stream.set_state(json.loads(str(saved_state)))
        if self.auto:
            self.record_every = settings.record_stride(self.step)
        final = self.step // self.record_every + 1  # the column of an off-stride final record
        if self.step % self.record_every and final < self.losses.shape[1]:
            self.losses[:, final] = np.nan  # the runs still going record it again; a run that stops first, never


def solve_batch(
    problem, k=None, lr=None, max_iter=None, *, seeds, init_scale=None, start=None, tol=None, record_every=None,
    spectral_every=None, delta=None, balance=None, update=None, precondition=None, noise=None, init=None,
    history: bool = False, options: Options | None = None, callback=None, progress=None, time_limit=None,
    checkpoint=None, checkpoint_every=None,
) -> BatchResult:  # fmt: skip
    """GD from one random start per seed (Ye and Du 2021, eqs 6-9, as `fastmf.solve`), all runs
    advanced by one compiled kernel, its blocks of runs on `numba.get_num_threads()` threads of
    the calling thread (`numba.set_num_threads`).

    Run i is ``fastmf.solve(problem, k, lr[i], max_iter, seed=seeds[i],
    init_scale=init_scale[i], tol=tol, record_every=record_every, delta=delta)``: the same
    start and, to rounding, the same trajectory (solve's products are BLAS's, summed in
    another order). Its numbers are the same bit for bit whatever the number of threads,
    the batch size, its place in the batch, or where the batch was stopped and resumed.

    Parameters
    ----------
    problem : Problem or anything `Problem` accepts
        The target; its basis is computed once for all runs.
    k, max_iter, tol, record_every, delta
        As in `fastmf.solve` (`fastmf.Options`).
    spectral_every : int, optional
        The stride of the eigenvalues behind the per-run extremes (`BatchResult.invariants`):
        at the recorded steps that are multiples of it (and the last). Default None: none of
        them (their columns NaN, their held flags True), and ||B||_F's extremes (`max_B_fro`,
        `c_B`, `held_B`) at every record; 0: no extremes at all. A stride such as
        64 * record_every costs about 10% more at d = k = 10 with every step recorded, and
        compiles the eigenvalue code on its first use. Run i's extremes are those of
        ``fastmf.solve(..., spectral_every=spectral_every)`` to rounding; the runs themselves
        (losses, stages, states) do not depend on it, bit for bit.
    lr, init_scale : float, "theory", None or array_like
        As in `fastmf.solve`, one for all runs or one per run.
    seeds : sequence of int
        One seed per run (see `fastmf.init.seed_streams`).
    start : SplitStart, optional
        One start for all runs (`fastmf.SplitStart`; they differ by their noise).
    balance, update, precondition, noise, init : optional
        The GD variants and the law of the random start, for all runs: see `fastmf.Options`.
    history : bool
        Keep each run's recorded losses: 8 bytes per record and run. Without it a run
        keeps only its summary and final state, and the working memory is that of one block
        of runs (32 float64 or 64 float32) per thread.
    options : Options, optional
        Settings to start from; the arguments above that are given replace its fields.
    callback, progress, time_limit, checkpoint, checkpoint_every
        As in `fastmf.solve` (`fastmf.driver.Control`); the callback's state has the
        median of the runs' last losses, and the stage once every run has reached it.
        Ctrl-C returns the batch as it stands within about 0.05 s.

    Returns
    -------
    BatchResult
        A sequence of `SolveResult`, with the per-run columns as arrays.
    """
    problem = problem if isinstance(problem, Problem) else Problem(problem)
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or seeds.dtype.kind not in "iu" or np.any(seeds < 0):
        raise ValueError("seeds must be a non-empty 1-D sequence of integers >= 0, one per run, e.g. range(1000)")
    runs = seeds.size
    given = {"k": k, "max_iter": max_iter, "tol": tol, "record_every": record_every,
             "spectral_every": spectral_every, "delta": delta, "balance": balance, "update": update,
             "precondition": precondition, "noise": noise, "init": init}  # fmt: skip
    options = merged(Options, options, given)
    if options.seed is not None:
        raise ValueError("solve_batch takes one seed per run in seeds=, not options.seed; leave options.seed None")
    lrs = _per_run(options.lr if lr is None else lr, "lr", runs)
    scales = _per_run(options.init_scale if init_scale is None else init_scale, "init_scale", runs)
    if options.method == "direct" or options.complement == "full":
        raise ValueError("solve_batch runs the compressed split engine: leave method and complement at their defaults")
    problem, options, start, _ = given_start(problem, options, None, None, start)
    control = Control(callback, progress, time_limit, checkpoint, checkpoint_every)
    # the settings are resolved once per distinct (lr, init_scale), not once per seed
    resolved = {}
    for pair in dict.fromkeys(zip(lrs, scales, strict=True)):
        given = dataclasses.replace(options, lr=pair[0], init_scale=pair[1], seed=0)
        resolved[pair] = given.resolve(problem.shape, problem.sigma_1, problem.s)
    per_run = [resolved[pair] for pair in zip(lrs, scales, strict=True)]
    scheduled = callable(per_run[0].lr)  # a schedule, shared by the runs, stays in the options
    shared = dataclasses.replace(per_run[0], lr=per_run[0].lr if scheduled else None, init_scale=None, seed=None)
    scale = Scale.of(problem.sigma_1)
    starts = [
        initial_factors(problem, o.k, o.init_scale, int(seed), start, None, o.complement, o.init)
        for o, seed in zip(per_run, seeds, strict=True)
    ]
    Xs = scale.inward(np.stack([stack(left) for left, _ in starts]), 0.5)
    Ys = scale.inward(np.stack([stack(right) for _, right in starts]), 0.5)
    lr_column = np.full(runs, np.nan) if scheduled else np.array([o.lr for o in per_run])
    run = BatchRun(problem, shared, lr_column, np.array([o.init_scale for o in per_run]), seeds.astype(np.int64), Xs,
                   Ys, history)  # fmt: skip
    return drive(run, control, shared.max_iter, "step")


def resume_batch(saved: BatchResult, max_iter, control: Control, lr=None) -> BatchResult:
    """Continue the batch saved in `saved` (`fastmf.resume`); `lr`: its lr schedule given
    again (needed when it was the user's own callable, which a file cannot hold), checked
    against the step sizes it gave."""
    options = saved.options if max_iter is None else dataclasses.replace(saved.options, max_iter=max_iter)
    state = saved.resume_state
    if lr is not None or isinstance(options.lr, schedules.Custom):
        check = state.get("lr_check", np.zeros((2, 0)))  # two steps it took, and then the recorded ones
        steps = np.concatenate([check[0], saved.steps if saved.step_lr is not None else []])
        taken = np.concatenate([check[1], saved.step_lr if saved.step_lr is not None else []])
        options = dataclasses.replace(options, lr=schedules.again(options.lr, lr, steps, taken))
    run = BatchRun(saved.problem, options, saved.lr, saved.init_scale, saved.seed, state["Xs"].copy(),
                   state["Ys"].copy(), saved.steps is not None)  # fmt: skip
    run.restore(saved)
    return drive(run, control, options.max_iter, "step")


def _per_run(value, name, runs) -> list:
    """One value (a number, "theory" or None) per run, from one value or one per run."""
    if value is None or isinstance(value, str) or callable(value) or np.ndim(value) == 0:
        return [value] * runs
    if any(callable(v) for v in value):
        raise TypeError(f"{name}: one schedule serves every run of a batch; pass it once, not one per run")
    values = list(np.asarray(value, dtype=np.float64))
    if len(values) != runs or np.ndim(value) != 1:
        raise ValueError(f"{name} must be one number or {runs} numbers (one per seed), got shape {np.shape(value)}")
    return [float(v) for v in values]
