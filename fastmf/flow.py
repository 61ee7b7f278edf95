"""Gradient flow, its closed forms, and GD next to it (the gradient-flow paper; Ye and Du 2021, Corollary 1.2).

The flow dU/dt = R V, dV/dt = R^T U (R = Sigma - U V^T) is GD's eta -> 0 limit. It is
integrated on the same compressed state as `solve` (docs/maths.md section 3: the complement
only ever multiplies on the right, so k x k matrices carry it exactly), with the
right-hand side compiled and SciPy's Runge-Kutta (or implicit) solvers stepping it.
For rank one (r = k = 1) that state is exactly the papers' four-variable reduction: the
scalars u, v of the principal block and the complement norms ||J||, ||K|| (each L is 1 x 1).

The flow is an engine of `fastmf.driver` (`FlowRun`), advanced a chunk of solver steps at a
time with the callback, progress bar, time limit, Ctrl-C and checkpoints of every run. Its
checkpoints hold the ODE solver's own state (the numbers among its attributes: step size,
stages, difference arrays, Jacobian, LU factors), so `fastmf.resume` continues a flow bit
for bit (`resume_flow`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy

from . import _kernels as K
from . import stages, theory
from . import status as statuses
from ._kernels.fpmode import flushing
from ._validate import finite_float, real_array
from .driver import Control, deferred_interrupts, drive
from .init import Factor, checked_start, given_start, stack, start
from .options import FlowOptions, Options, merged
from .problem import Problem
from .result import FlowResult
from .scaling import Scale
from .split import SplitRun, diagnostic_work, tall


class _State:
    """Packs the stacked state (X, Y) into the flat float64 vector the ODE solvers step.

    The flow is integrated in the units of the power of 4 nearest sigma_1 (`fastmf.scaling`):
    X / sqrt(c), Y / sqrt(c), s / c, and the time tau = c t.
    """

    def __init__(self, problem, left: Factor, right: Factor):
        self.scale = scale = Scale.of(problem.sigma_1)
        self.s = scale.inward(problem.s.astype(np.float64), 1)
        self.r = problem.rank
        self.X0 = scale.inward(stack(left).astype(np.float64), 0.5)
        self.Y0 = scale.inward(stack(right).astype(np.float64), 0.5)
        self.k = self.X0.shape[1]
        self.split = self.X0.size
        self.G = np.zeros((5, self.k, self.k))
        self.E, self.D, self.vecs, self.valid = diagnostic_work(self.r, self.k)
        self.Xw, self.Yw = np.empty_like(self.X0), np.empty_like(self.Y0)  # (the record's work for a full complement)
        self.tall = tall(self.X0, self.Y0, self.r)
        self.row = np.zeros(K.N_KEYS)
        self.info = np.full(K.N_INFO, -1, np.int64)  # stage slots K.T1, K.T0: record indices
        self.no_stages = np.zeros(K.N_INFO, np.int64)  # for loss-only evaluations: nothing pending
        self.nfev = 0

    def y0(self) -> np.ndarray:
        return np.concatenate([self.X0.ravel(), self.Y0.ravel()])

    def unpack(self, y):
        return y[: self.split].reshape(self.X0.shape), y[self.split :].reshape(self.Y0.shape)

    def rhs(self, t, y):
        X, Y = self.unpack(np.ascontiguousarray(y))
        dy = np.empty_like(y)
        dX, dY = self.unpack(dy)
        K.flow_rhs(X, Y, self.s, dX, dY, self.G)
        self.nfev += 1
        return dy

    def loss(self, y) -> float:
        X, Y = self.unpack(np.ascontiguousarray(y))
        args = (self.row, self.D, self.vecs, self.valid, self.no_stages, self.tall, self.Xw, self.Yw)
        return K.state_record(X, Y, self.s, self.G, self.E, 0, False, *args)

    def record(self, j, y):
        """(row of diagnostics, D = U^T U - V^T V) at record j; stages are found as record indices."""
        X, Y = self.unpack(np.ascontiguousarray(y))
        args = (self.row, self.D, self.vecs, self.valid, self.info, self.tall, self.Xw, self.Yw)
        K.state_record(X, Y, self.s, self.G, self.E, j, True, *args)
        return self.row.copy(), self.G[0] - self.G[1]


def gradient_flow(
    Sigma, k=None, t_max=None, *, init_scale=None, seed=None, U0=None, V0=None, start=None, init=None, t_eval=None,
    target_loss=None, rtol=None, atol=None, ode_method=None, complement=None, options: FlowOptions | None = None,
    callback=None, progress=None, time_limit=None, checkpoint=None, checkpoint_every=None,
) -> FlowResult:  # fmt: skip
    """Integrate the gradient flow of 1/2 ||U V^T - Sigma||_F^2 from a random or given start.

    dU/dt = (Sigma - U V^T) V, dV/dt = (Sigma - U V^T)^T U (the gradient-flow paper, eqs 1-2), on the
    principal/complement split of Ye and Du 2021, eqs (6)-(9), with the step size taken to zero:
    the cost of a right-hand side is O(k^3) whatever m and n are.

    Parameters
    ----------
    Sigma, k, init_scale, seed, U0, V0, start, init, complement
        As in `fastmf.solve`; the same seed gives the same start as `solve`.
    t_max : float
        Integrate over [0, t_max].
    t_eval : array_like, optional
        Increasing times in [0, t_max] at which to record the history; default
        `FlowOptions.n_times` (1001) evenly spaced times. The final time is always recorded.
    target_loss : float
        Stop at the first time the loss reaches this value (located to the solver's
        accuracy on its dense output), or the converged level of `fastmf.solve`'s tol if
        that is lower; 0 disables the stop.
    rtol, atol : float
        Tolerances of the ODE solver; atol defaults to 1e-3 * rtol times the largest
        entry of the initial state, so that a tiny start is integrated to relative accuracy.
        The state is accurate to about rtol times its size, so the loss (a squared
        distance to the minimum) follows the exact flow while it is above about
        (rtol sigma_1)^2; below that it keeps decaying, but at the integrator's pace rather
        than the flow's. Lower rtol to follow it further.
    ode_method : str
        A SciPy ODE solver: "LSODA" (default: Adams, switching to BDF where the flow turns
        stiff near the minimum, where explicit methods stall), "DOP853", "RK45", "RK23",
        "Radau" or "BDF".
    options : FlowOptions, optional
        Settings to start from; the arguments above that are given replace its fields.
    callback, progress, time_limit, checkpoint, checkpoint_every
        As in `fastmf.solve` (`fastmf.driver.Control`), between chunks of steps of the ODE
        solver (about every 0.05 s); the callback's state has the time `t` (and `step`
        None); `checkpoint_every` counts solver steps. A Ctrl-C is answered between two
        solver steps (status "interrupted"); `fastmf.resume` continues a flow saved at any
        of these points bit for bit (see `resume_flow` for LSODA on SciPy < 1.17).

    Returns
    -------
    FlowResult
        History on the time axis "t" with "loss", "imbalance" and "imbalance_drift",
        `status` ("converged", "t_max", "failed", "interrupted", "stopped", "time_limit"),
        `message`, `n_iter` (the steps of the ODE solver), the final state in split form
        and U, V rebuilt on access. The flow runs in float64; U and V come back in the
        problem's dtype.
    """
    given = {"k": k, "t_max": t_max, "init_scale": init_scale, "seed": seed, "target_loss": target_loss,
             "rtol": rtol, "atol": atol, "ode_method": ode_method, "complement": complement, "init": init}  # fmt: skip
    options = merged(FlowOptions, options, given)
    control = Control(callback, progress, time_limit, checkpoint, checkpoint_every)
    problem, options, left, right = _start(*given_start(Sigma, options, U0, V0, start))
    times = np.linspace(0.0, options.t_max, options.n_times) if t_eval is None else _times(t_eval, options.t_max)
    run = FlowRun(problem, left, right, options, Scale.of(problem.sigma_1).inward(times, -1), t_eval is None)
    if control.checkpoint is not None and not resumable(run.solver):
        warnings.warn(
            f"SciPy {scipy.__version__} runs the Fortran LSODA, whose state Python cannot save: this flow's "
            "checkpoints will not resume; use SciPy >= 1.17 or another ode_method (e.g. 'DOP853') to resume it",
            RuntimeWarning,
            stacklevel=2,
        )
    return drive(run, control, options.t_max, "t")


def resume_flow(saved: FlowResult, t_max, control: Control) -> FlowResult:
    """Continue the flow `saved` (`fastmf.resume`): with the saved t_max, its state, history
    and stages are bit for bit those of a flow never stopped.

    The ODE solver is built again with the saved tolerances and its saved attributes are set
    back (`_solver_state`), so it takes exactly the steps it would have taken. That needs the
    SciPy version that saved the flow, and for LSODA SciPy >= 1.17: before, SciPy ran the
    Fortran LSODA, which keeps part of its state (method coefficients, step and order
    history) in COMMON blocks that Python can neither read nor write.

    A new t_max moves the end of the interval (the solver's t_bound) and goes on from the
    saved state. That continuation is exact, but it is not bit for bit a flow started with
    the new t_max: that flow's steps differ from the first (LSODA's first step depends on
    the end of the interval), and a flow saved at its end has shortened its last step to
    land on it. The times recorded from there: with the default grid, those of `n_times`
    evenly spaced times in the new [0, t_max] past the time reached; with a t_eval, those of
    it still to come, up to the new t_max.
    """
    state, options = saved.resume_state, saved.options
    t_max = options.t_max if t_max is None else finite_float(t_max, "t_max", positive=True)
    if t_max < saved.t:
        raise ValueError(f"t_max must be at least the time the flow reached, t = {saved.t:g}; got {t_max:g}")
    if t_max == saved.t:  # at its end already: nothing more to do
        return saved
    if not state["intact"]:
        raise ValueError(
            "this flow was stopped by an exception inside a step of its ODE solver, which left the solver's "
            "state half updated: it cannot be resumed exactly; run it again"
        )
    if str(state["scipy"]) != scipy.__version__:
        raise ValueError(
            f"this flow was saved under SciPy {state['scipy']}, and its ODE solver's state continues exactly only "
            f"there (this is SciPy {scipy.__version__}): resume it under SciPy {state['scipy']}, or run it again"
        )
    if options.ode_method == "LSODA" and f"solver.{_LSODA_STATE}" not in state:
        raise ValueError(
            f"SciPy {scipy.__version__} runs the Fortran LSODA, which keeps part of its state in COMMON blocks that "
            "Python cannot save: an LSODA flow resumes only with SciPy >= 1.17; run it again with another "
            "ode_method (e.g. 'BDF') to resume it here"
        )
    times = state["times"]
    if t_max != options.t_max:
        scale = Scale.of(saved.problem.sigma_1)
        if state["default_times"]:
            times = scale.inward(np.linspace(0.0, t_max, options.n_times), -1)
            times = times[times > state["solver.t"]]
        times = times[times <= scale.inward(t_max, -1)]
    options = dataclasses.replace(options, t_max=t_max)
    run = FlowRun(saved.problem, saved.left, saved.right, options, times, bool(state["default_times"]), state)
    return drive(run, control, t_max, "t")


class FlowRun:
    """The gradient flow as an engine of `fastmf.driver`: a SciPy ODE solver stepping the
    split state (`_State`), the history recorded at the requested times on each step's dense
    output, and the stop where the loss reaches target_loss, located there by brentq.

    Its unit of work is a step of the ODE solver; everything runs in the internal units of
    `fastmf.scaling` (times tau = c t, the state in units of sqrt(c)), and the driver and the
    result get the user's.

    Parameters
    ----------
    problem : Problem
    left, right : Factor
        The start (restoring: the saved state, whose complement bases W the result keeps).
    options : FlowOptions
        Resolved (`FlowOptions.resolve`).
    times : ndarray
        The times to record, increasing, in internal units; the final time is recorded too.
    default_times : bool
        Whether `times` is the default grid (`resume_flow` draws it again for a new t_max).
    saved : dict, optional
        A `bookkeeping` to continue from (`resume_flow`).
    """

    def __init__(self, problem, left: Factor, right: Factor, options, times, default_times: bool, saved=None):
        self.problem, self.options = problem, options
        self.W = (left.W, right.W)
        self.state = state = _State(problem, left, right)
        self.scale = scale = state.scale
        y0 = state.y0()
        if saved is not None:
            self.atol = float(saved["atol"])
        elif options.atol is None:
            self.atol = 1e-3 * options.rtol * max(float(np.max(np.abs(y0))), np.finfo(np.float64).tiny)
        else:  # the user's units: the state is integrated in units of sqrt(c)
            self.atol = scale.inward(options.atol, 0.5)
        target = options.target_loss
        self.target = min(scale.inward(target, 2), stages.converged_level(state.s, options.k)) if target else 0.0
        self.times, self.j, self.default_times = times, 0, default_times
        self.t_rec, self.rows, self.drift = [], [], []  # the records: times, diagnostics, imbalance drift
        self.steps = 0  # steps the ODE solver took
        self.ended = None  # "converged" or "failed" once the run ended on its own
        self.reason = None  # why the solver failed
        self.intact = True  # False while a step is under way: an exception then loses the solver's state
        self.final = None  # once finished: the bookkeeping before the final record (None once ended)
        import scipy.integrate  # here, not at the top: `import fastmf` and GD runs never need it

        with flushing():
            self.solver = getattr(scipy.integrate, options.ode_method)(
                state.rhs, 0.0, y0, scale.inward(options.t_max, -1), rtol=options.rtol, atol=self.atol
            )
            if saved is None:
                state.loss(y0)
                self.D0 = state.G[0] - state.G[1]  # U^T U - V^T V at t = 0, which the flow conserves
                if times.size and times[0] == 0.0:
                    self._record(0.0, y0)
                    self.j = 1
                if self.target > 0 and state.loss(y0) <= self.target:
                    self.ended = "converged"
            else:
                self._restore(saved)
        self.t, self.y = self.solver.t, self.solver.y.copy()  # the state reached

    # ------------------------------------------------------------------ the engine operations

    @property
    def work(self) -> int:
        return self.steps

    @property
    def position(self) -> float:
        return self.scale.outward(self.t, -1)

    @property
    def done(self) -> bool:
        return self.ended is not None or self.solver.status != "running"

    def advance(self, n: int) -> None:
        """At most n steps of the ODE solver; a signal (Ctrl-C) arriving meanwhile ends the
        call after the step under way (`driver.deferred_interrupts`), so the state stays resumable."""
        with flushing(), deferred_interrupts() as caught:
            for _ in range(n):
                if self.done or caught:
                    break
                self._step()

    def latest(self) -> dict:
        """The last recorded row, {"t": t, key: value}, in the user's units."""
        if not self.rows:
            return {}
        row = dict(zip(K.KEYS, self.rows[-1].tolist(), strict=True)) | {"imbalance_drift": self.drift[-1]}
        return {"t": self.scale.outward(self.t_rec[-1], -1)} | self.scale.history_outward(row)

    def stage_positions(self) -> tuple[float | None, float | None]:
        """(T1, T0) found so far, as times."""
        return tuple(None if t is None else self.scale.outward(t, -1) for t in self._stage_times())

    def finish(self, status: str) -> str:
        """Record the state reached if it is not recorded yet (the bookkeeping before that
        record is what `resume_flow` continues from, unless the run has ended); return the
        final status: the run's own end ("converged", "failed", or "t_max" once the solver
        reached it), else the driver's."""
        if self.ended is None:
            # the solver is never stepped again: its arrays are kept, not copied (LSODA's rwork holds an n x n Jacobian)
            self.final = self.bookkeeping(copy=False)
        if not self.t_rec or self.t_rec[-1] != self.t:
            with flushing():
                self._record(self.t, self.y)
        if self.ended is not None:
            return self.ended
        return "t_max" if status == "done" or self.solver.status == "finished" else status

    def result(self, status: str) -> FlowResult:
        problem, options, scale = self.problem, self.options, self.scale
        rows = self._rows()
        history = self._history(rows)
        t = scale.outward(self.t, -1)
        rate = theory.flow_rate(problem.s)
        found = stages.detect(history["t"], rows[:, K.LOSS], *self.stage_positions(), self.target or None, rate,
                              self.state.s, options.target_loss or None)  # fmt: skip
        if status == "converged":  # the stop was located where the loss reaches the target
            found = dataclasses.replace(found, T_delta=t)
        X, Y = self.state.unpack(scale.outward(self.y, 0.5))
        r, dtype = problem.rank, problem.dtype
        return FlowResult(
            status=status, message=self._message(status, t, history["loss"]), n_iter=self.steps, history=history,
            stages=found, k=options.k, init_scale=options.init_scale, seed=options.seed, problem=problem,
            left=Factor(X[:r].astype(dtype), X[r:].astype(dtype), self.W[0]),
            right=Factor(Y[:r].astype(dtype), Y[r:].astype(dtype), self.W[1]), t=t, nfev=self.state.nfev,
            options=dataclasses.replace(options, atol=scale.outward(self.atol, 0.5)),  # the atol it used
            resume_state=self.bookkeeping() if status == "running" else self.final,
        )  # fmt: skip

    # ------------------------------------------------------------------ steps and records

    def _step(self) -> None:
        """One step of the solver, the records at the times it passed, the target_loss stop."""
        solver, state = self.solver, self.state
        self.intact = False
        reason = solver.step()
        if solver.status == "failed":
            self.ended, self.reason, self.intact = "failed", reason, True
            return
        sol = solver.dense_output()
        t_stop = solver.t
        if self.target > 0 and state.loss(solver.y) <= self.target:
            import scipy.optimize

            t_stop = scipy.optimize.brentq(
                lambda s: state.loss(sol(s)) - self.target, solver.t_old, solver.t, xtol=1e-14
            )  # fmt: skip
            self.ended = "converged"
        while self.j < self.times.size and self.times[self.j] <= t_stop:
            self._record(self.times[self.j], sol(self.times[self.j]))
            self.j += 1
        self.t, self.y = t_stop, (sol(t_stop) if t_stop != solver.t else solver.y.copy())
        self.steps += 1
        self.intact = True

    def _record(self, t, y) -> None:
        row, D = self.state.record(len(self.t_rec), y)
        self.t_rec.append(t)
        self.rows.append(row)
        self.drift.append(np.linalg.norm(D - self.D0))

    def _stage_times(self) -> tuple:
        """(T1, T0) in internal units: the kernel marks them as record indices."""
        return tuple(self.t_rec[i] if i >= 0 else None for i in self.state.info[[K.T1, K.T0]].tolist())

    def _rows(self) -> np.ndarray:
        return np.array(self.rows).reshape(-1, K.N_KEYS)

    def _history(self, rows: np.ndarray) -> dict:
        """The recorded columns in the user's units ("t", `K.KEYS`, "imbalance_drift")."""
        columns = {key: rows[:, c] for c, key in enumerate(K.KEYS)} | {"imbalance_drift": np.array(self.drift)}
        return {"t": self.scale.outward(np.array(self.t_rec), -1)} | self.scale.history_outward(columns)

    def _message(self, status: str, t: float, loss: np.ndarray) -> str:
        options = self.options
        last = f"loss {loss[-1]:.6g}" if loss.size else "no loss recorded"
        ended = ""
        target = f"target_loss {options.target_loss:g}"
        level = self.scale.outward(self.target, 2)
        if status == "converged" and level < options.target_loss:  # `gradient_flow`: the stop is the lower of the two
            target = f"the converged level {level:.6g} (below target_loss {options.target_loss:g})"
        if status == "converged" and self.steps == 0:
            ended = f"converged: the loss was already <= {target} at t = 0"
        elif status == "converged":
            ended = f"converged: the loss reached {target} at t = {t:.6g}"
        elif status == "t_max":
            ended = f"integrated to t_max = {options.t_max:g}; {last}"
        elif status == "failed":
            ended = f"the ODE solver ({options.ode_method}) failed at t = {t:.6g}: {self.reason}; {last}"
        at = f"t = {t:.6g} of t_max = {options.t_max:g}" if status == "running" else f"t = {t:.6g}"
        return statuses.message(status, at, last, resumable=self.intact and resumable(self.solver), ended=ended)

    # ------------------------------------------------------------------ save and restore

    def bookkeeping(self, copy: bool = True) -> dict:
        """What `resume_flow` needs besides the options and the basis, as arrays in internal
        units: the records so far, the times still to record, the kernel's stage marks and
        tracked eigenvectors, the counters, and the ODE solver's state (`_solver_state`;
        its arrays copied unless `copy` is False)."""
        state = self.state
        return {
            "t_rec": np.array(self.t_rec), "rows": self._rows(), "drift": np.array(self.drift),
            "times": self.times[self.j :].copy(), "default_times": np.array(self.default_times),
            "info": state.info.copy(), "vecs": state.vecs.copy(), "valid": state.valid.copy(), "D0": self.D0.copy(),
            "atol": np.array(self.atol), "steps": np.array(self.steps), "nfev": np.array(state.nfev),
            "intact": np.array(self.intact), "scipy": np.array(scipy.__version__),
        } | _solver_state(self.solver, copy)  # fmt: skip

    def _restore(self, saved: dict) -> None:
        """Continue from a `bookkeeping` (the solver, built fresh, gets its attributes back)."""
        state = self.state
        self.t_rec, self.rows, self.drift = saved["t_rec"].tolist(), list(saved["rows"]), saved["drift"].tolist()
        state.info[:] = saved["info"]
        state.vecs[:] = saved["vecs"]
        state.valid[:] = saved["valid"]
        self.D0 = saved["D0"].copy()
        self.steps = int(saved["steps"])
        _restore_solver(self.solver, saved)
        state.nfev = int(saved["nfev"])  # building the solver evaluated the right-hand side


# Where a SciPy ODE solver keeps its state: its attributes and, for LSODA, those of the `ode`
# object it wraps and of that object's integrator (rwork, iwork and, from SciPy 1.17, the
# arrays state_doubles and state_ints holding what the Fortran LSODA kept in COMMON blocks).
_PARTS = ("", "_lsoda_solver", "_lsoda_solver._integrator")
_LSODA_STATE = "_lsoda_solver._integrator.state_doubles"
# Not saved: the end of the interval (the resumed run's own) and Radau's dense output of the
# last step (which starts the next step's Newton iteration), rebuilt from the saved Z.
_NOT_SAVED = ("t_bound", "sol")
_NUMBER = (np.number, np.bool_, bool, int, float)


def resumable(solver) -> bool:
    """Whether this SciPy exposes all of the ODE solver's state (all but LSODA before SciPy 1.17)."""
    return not hasattr(solver, "_lsoda_solver") or hasattr(solver._lsoda_solver._integrator, "state_doubles")


def _solver_state(solver, copy: bool = True) -> dict:
    """The numbers among the attributes of `solver` (arrays, scalars, None, and lists or
    tuples of them: LU factors, LSODA's call_args), keyed "solver.<attribute path>", with
    "solver_kinds" listing "path:kind" for those that are not arrays: "none", "plain" (a
    Python number), "scalar" (a NumPy one), "tuple" or "list" (its items are "path.0",
    "path.1", ...), or "=other.path" for an array that is another attribute's (LSODA's
    call_args hold its rwork and iwork), saved once."""
    arrays, kinds, seen = {}, {}, {}
    for prefix in _PARTS:
        part = _at(solver, prefix)
        for name, value in vars(part).items() if part is not None else ():
            if name not in _NOT_SAVED:
                _encode(f"{prefix}.{name}".lstrip("."), value, arrays, kinds, seen, copy)
    listed = np.array([f"{path}:{kind}" for path, kind in kinds.items()], dtype=str)
    return {f"solver.{path}": value for path, value in arrays.items()} | {"solver_kinds": listed}


def _encode(path: str, value, arrays: dict, kinds: dict, seen: dict, copy: bool) -> None:
    if isinstance(value, np.ndarray) and id(value) in seen:
        kinds[path] = "=" + seen[id(value)]
    elif isinstance(value, np.ndarray):
        seen[id(value)] = path
        arrays[path] = value.copy() if copy else value
    elif isinstance(value, _NUMBER):
        arrays[path] = np.array(value)
        kinds[path] = "scalar" if isinstance(value, np.generic) else "plain"
    elif value is None:
        kinds[path] = "none"
    elif isinstance(value, (tuple, list)) and value and all(isinstance(v, (np.ndarray, *_NUMBER)) for v in value):
        kinds[path] = type(value).__name__
        for i, item in enumerate(value):
            _encode(f"{path}.{i}", item, arrays, kinds, seen, copy)


def _decode(path: str, arrays: dict, kinds: dict):
    """The saved value at `path`, its arrays copied (None for another attribute's array,
    set by `_restore_solver` afterwards)."""
    kind = kinds.get(path, "array")
    if kind in ("tuple", "list"):
        n = sum(1 for key in arrays.keys() | kinds.keys() if key.rpartition(".")[0] == path)
        items = [_decode(f"{path}.{i}", arrays, kinds) for i in range(n)]
        return tuple(items) if kind == "tuple" else items
    if kind == "none" or kind.startswith("="):
        return None
    value = arrays[path]
    return value.item() if kind == "plain" else value[()] if kind == "scalar" else value.copy()


def _restore_solver(solver, saved: dict) -> None:
    """Set the attributes saved by `_solver_state` back on `solver`, a solver of the same method
    and tolerances built afresh under the same SciPy, whose end t_bound it keeps."""
    arrays = {key[len("solver.") :]: value for key, value in saved.items() if key.startswith("solver.")}
    kinds = dict(entry.rsplit(":", 1) for entry in saved["solver_kinds"].tolist())
    for path in arrays.keys() | kinds.keys():
        parent, _, name = path.rpartition(".")
        if kinds.get(parent) not in ("tuple", "list"):  # an item is restored with its sequence
            part = _at(solver, parent)
            setattr(part, name, _assign(getattr(part, name, None), _decode(path, arrays, kinds)))
    for path, kind in kinds.items():  # then the arrays that are another attribute's
        if kind.startswith("="):
            parent, _, name = path.rpartition(".")
            _put(_at(solver, parent), name, _at(solver, kind[1:]))
    solver.status = "running" if solver.t < solver.t_bound else "finished"
    if hasattr(solver, "_lsoda_solver"):  # LSODA's end of the interval (its tcrit) is in its work array
        solver._lsoda_solver._integrator.rwork[0] = solver.t_bound
    if hasattr(solver, "sol") and solver.t_old is not None:  # Radau
        solver.sol = solver._compute_dense_output()


def _assign(current, value):
    """`value`, written into the array `current` where it fits, since other attributes may
    view it (DOP853's K is a view of K_extended)."""
    if isinstance(current, np.ndarray) and isinstance(value, np.ndarray):
        if current.shape == value.shape and current.dtype == value.dtype:
            current[...] = value
            return current
    if isinstance(current, list) and isinstance(value, list) and len(current) == len(value):
        return [_assign(c, v) for c, v in zip(current, value, strict=True)]
    return value


def _at(obj, path: str):
    """The object at the dotted attribute `path` of `obj` ("" is `obj`; a number indexes a
    sequence), or None."""
    for name in filter(None, path.split(".")):
        obj = obj[int(name)] if name.isdigit() else getattr(obj, name, None)
    return obj


def _put(obj, name: str, value) -> None:
    if name.isdigit():
        obj[int(name)] = value
    else:
        setattr(obj, name, value)


def _start(Sigma, options, U0, V0):
    """(problem, resolved options, left, right) for a flow or a GD run next to it."""
    problem = Sigma if isinstance(Sigma, Problem) else Problem(Sigma)
    options = options.resolve(problem.shape, problem.sigma_1, problem.s, U0)
    U0, V0 = checked_start(problem.shape, options.k, U0, V0)
    return (problem, options, *start(problem, options, U0, V0))


def _times(t_eval, t_max) -> np.ndarray:
    times = real_array(t_eval, "t_eval", 1, dtype=np.float64)
    if np.any(np.diff(times) <= 0) or times[0] < 0 or times[-1] > t_max:
        raise ValueError(f"t_eval must be increasing and inside [0, t_max = {t_max:g}]")
    return times


def symmetric_solution(s, a0: float, t) -> np.ndarray:
    """Eigenvalues of S(t) = U U^T(t) for the symmetric flow from U0 = V0 = a0 I.

    With Sigma = diag(s) square, S stays diagonal (the gradient-flow paper, eq 5) with
    s_i(t) = s_i e^{2 s_i t} / (e^{2 s_i t} + s_i / a0^2 - 1) (the gradient-flow paper, eq 8; Ye and Du 2021
    after Corollary 1.2). Returns an array of shape t.shape + (len(s),).
    """
    s = real_array(s, "s", 1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    a0 = finite_float(a0, "a0", positive=True)
    # s e^{2st} / (e^{2st} + s/a0^2 - 1) written with e^{-2st} so large s t cannot overflow
    return s / (1.0 + (s / a0**2 - 1.0) * np.exp(-2.0 * s * t))


def sandwich_bounds(s, U0, t) -> tuple[np.ndarray, np.ndarray]:
    """Theorem 4 of the gradient-flow paper: for U0 = V0 (square, with Sigma = diag(s)), for all t >= 0

        diag(s_i(t; alpha)) <= U U^T(t) <= diag(s_i(t; beta))   (Loewner order),

    alpha and beta the smallest and largest singular values of U0 as a d x k matrix
    (d = len(s)): alpha = 0 when k < d, since U0 U0^T is then singular, and the lower bound
    is 0. Returns the diagonals of the lower and upper bounds, each of shape
    t.shape + (len(s),).
    """
    s = real_array(s, "s", 1, dtype=np.float64)
    U0 = real_array(U0, "U0", 2, dtype=np.float64)
    if U0.shape[0] != s.size:
        raise ValueError(
            f"U0 must have len(s) = {s.size} rows (Sigma = diag(s) is {s.size} x {s.size}), got {U0.shape}"
        )
    sv = np.linalg.svd(U0, compute_uv=False)
    upper = symmetric_solution(s, sv[0], t)
    if U0.shape[1] < U0.shape[0] or sv[-1] == 0:  # alpha = 0: s_i(t; 0) = 0
        return np.zeros_like(upper), upper
    return symmetric_solution(s, sv[-1], t), upper


def gd_flow_gap(
    Sigma, k=None, lrs=None, t_max=None, *, n_times: int = 20, init_scale=None, seed=None, U0=None, V0=None,
    rtol: float = 1e-12,
) -> dict:  # fmt: skip
    """GD at several step sizes against the flow from the same start, at matched times t = lr * step.

    Returns {"lr": lrs, "t": times (n_times,), "gap": (len(lrs), n_times)} where gap is
    ||U_gd - U_flow||_F + ||V_gd - V_flow||_F at each time (computed on the split state,
    which is an isometric image of (U, V)). Times are multiples of the largest lr, so a
    step size that divides it hits them exactly; GD's global error is O(lr), so halving
    lr halves the gap (docs/maths.md section 1).
    """
    options = FlowOptions(k=k, t_max=t_max, init_scale=init_scale, seed=seed, rtol=rtol)
    problem, options, left, right = _start(Sigma, options, U0, V0)
    lrs = real_array(lrs, "lrs", 1, dtype=np.float64)
    if np.any(lrs <= 0):
        raise ValueError("lrs must be positive step sizes")
    t_max = options.t_max
    base = lrs.max()
    steps_max = max(1, int(t_max / base))
    times = base * np.unique(np.linspace(0, steps_max, n_times + 1).round().astype(int))[1:]

    state = _State(problem, left, right)  # internal units, as GD's run below (fastmf.scaling)
    y0 = state.y0()
    taus = state.scale.inward(times, -1)
    import scipy.integrate

    with flushing():
        flow = scipy.integrate.solve_ivp(
            state.rhs, (0.0, taus[-1]), y0, method="LSODA", t_eval=taus, rtol=rtol,
            atol=1e-3 * rtol * float(np.max(np.abs(y0))),
        )  # fmt: skip
    if not flow.success:
        raise RuntimeError(f"gd_flow_gap: the flow did not integrate: {flow.message}")
    gaps = np.empty((lrs.size, times.size))
    for i, lr in enumerate(lrs):
        n_steps = np.rint(times / lr).astype(np.int64)
        gd = Options(k=options.k, lr=lr, max_iter=int(n_steps[-1]), record_every=int(n_steps[-1]) + 1, spectral_every=0)
        run = SplitRun(problem, left, right, gd.resolve(problem.shape, problem.sigma_1, problem.s, U0=stack(left)))
        for j, t in enumerate(times):
            run.advance(int(n_steps[j]) - run.step)
            if not run.running:
                raise RuntimeError(f"gd_flow_gap: GD with lr = {lr:g} diverged before t = {t:g}")
            Xf, Yf = state.unpack(flow.y[:, j])
            gaps[i, j] = np.linalg.norm(run.X - Xf) + np.linalg.norm(run.Y - Yf)
    return {"lr": lrs, "t": times, "gap": state.scale.outward(gaps, 0.5)}
