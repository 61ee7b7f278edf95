"""Gradient flow, its closed forms, and GD next to it (the gradient-flow paper; Ye and Du 2021, Corollary 1.2).

The flow dU/dt = R V, dV/dt = R^T U (R = Sigma - U V^T) is GD's eta -> 0 limit. It is
integrated on the same compressed state as `solve` (docs/maths.md section 3: the complement
only ever multiplies on the right, so k x k matrices carry it exactly), with the
right-hand side compiled and SciPy's Runge-Kutta (or implicit) solvers stepping it.
For rank one (r = k = 1) that state is exactly the papers' four-variable reduction: the
scalars u, v of the principal block and the complement norms ||J||, ||K|| (each L is 1 x 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.integrate
import scipy.optimize

from . import _kernels as K
from . import stages
from ._kernels.fpmode import flushing
from ._validate import finite_float, real_array
from .init import Factor, checked_start, stack, start
from .monitor import Monitor
from .options import FlowOptions, Options
from .problem import Problem
from .result import FlowResult
from .scaling import Scale
from .split import SplitRun, diagnostic_work

_STOPPED = {
    "stopped": "stopped by the callback at t = {t:.6g}; the state reached is kept",
    "time_limit": "stopped at the time limit at t = {t:.6g}; the state reached is kept",
}


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
        args = (self.row, self.D, self.vecs, self.valid, self.no_stages)
        return K.state_record(X, Y, self.s, self.G, self.E, 0, False, *args)

    def record(self, j, y):
        """(row of diagnostics, D = U^T U - V^T V) at record j; stages are found as record indices."""
        X, Y = self.unpack(np.ascontiguousarray(y))
        K.state_record(X, Y, self.s, self.G, self.E, j, True, self.row, self.D, self.vecs, self.valid, self.info)
        return self.row.copy(), self.G[0] - self.G[1]


def gradient_flow(
    Sigma, k=None, t_max=None, *, init_scale=None, seed=None, U0=None, V0=None, t_eval=None, target_loss=None,
    rtol=None, atol=None, ode_method=None, complement=None, options: FlowOptions | None = None, callback=None,
    progress=None, time_limit=None,
) -> FlowResult:  # fmt: skip
    """Integrate the gradient flow of 1/2 ||U V^T - Sigma||_F^2 from a random or given start.

    dU/dt = (Sigma - U V^T) V, dV/dt = (Sigma - U V^T)^T U (the gradient-flow paper, eqs 1-2), on the
    principal/complement split of Ye and Du 2021, eqs (6)-(9), with the step size taken to zero:
    the cost of a right-hand side is O(k^3) whatever m and n are.

    Parameters
    ----------
    Sigma, k, init_scale, seed, U0, V0, complement
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
    callback, progress, time_limit
        As in `fastmf.solve`, after every step of the ODE solver; the callback's state has
        the time `t` (and `step` None). A True return stops the run (status "stopped").

    Returns
    -------
    FlowResult
        History on the time axis "t" with "loss", "imbalance" and "imbalance_drift",
        `status` ("converged", "t_max", "failed", "interrupted", "stopped", "time_limit"),
        `message`, the final
        state in split form and U, V rebuilt on access. The flow runs in float64; U and
        V come back in the problem's dtype.
    """
    given = {"k": k, "t_max": t_max, "init_scale": init_scale, "seed": seed, "target_loss": target_loss,
             "rtol": rtol, "atol": atol, "ode_method": ode_method, "complement": complement}  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    options = dataclasses.replace(options, **given) if options is not None else FlowOptions(**given)
    problem, options, left, right = _start(Sigma, options, U0, V0)
    t_max, target_loss, rtol = options.t_max, options.target_loss, options.rtol
    times = np.linspace(0.0, t_max, options.n_times) if t_eval is None else _times(t_eval, t_max)
    monitor = Monitor(progress, callback, time_limit, t_max, "t")
    state = _State(problem, left, right)
    scale = state.scale
    y0 = state.y0()
    if options.atol is None:
        atol = 1e-3 * rtol * max(float(np.max(np.abs(y0))), np.finfo(np.float64).tiny)
    else:  # the user's units: the state is integrated in units of sqrt(c)
        atol = scale.inward(options.atol, 0.5)
    target = min(scale.inward(target_loss, 2), stages.converged_level(state.s, options.k)) if target_loss else 0.0

    solver = getattr(scipy.integrate, options.ode_method)(
        state.rhs, 0.0, y0, scale.inward(t_max, -1), rtol=rtol, atol=atol
    )
    try:
        t, y, status, message, history, (T1, T0) = _integrate(
            solver, state, scale.inward(times, -1), target, target_loss, monitor
        )
    finally:
        monitor.close()
    X, Y = state.unpack(scale.outward(y, 0.5))
    r, dtype = problem.rank, problem.dtype
    left = Factor(X[:r].astype(dtype), X[r:].astype(dtype), left.W)
    right = Factor(Y[:r].astype(dtype), Y[r:].astype(dtype), right.W)
    loss = history["loss"]
    history = scale.history_outward(history) | {"t": scale.outward(history["t"], -1)}
    T1, T0, t = (scale.outward(x, -1) for x in (T1, T0, t))
    rate = float(np.exp(-problem.sigma_d / 2))
    found = stages.detect(history["t"], loss, T1, T0, target or None, rate, state.s, target_loss or None)
    if status == "converged":  # the stop was located where the loss reaches target_loss
        found = dataclasses.replace(found, T_delta=t)
    return FlowResult(
        status=status, message=message, n_iter=solver_steps(solver), history=history, stages=found, k=options.k,
        init_scale=options.init_scale, seed=options.seed, problem=problem, left=left, right=right, t=t,
        nfev=state.nfev, options=options,
    )  # fmt: skip


def _start(Sigma, options, U0, V0):
    """(problem, resolved options, left, right) for a flow or a GD run next to it."""
    problem = Sigma if isinstance(Sigma, Problem) else Problem(Sigma)
    options = options.resolve(problem.shape, problem.sigma_1, problem.s, given_start=U0 is not None)
    U0, V0 = checked_start(problem.shape, options.k, U0, V0)
    return (problem, options, *start(problem, options, U0, V0))


def solver_steps(solver) -> int:
    return 0


def _times(t_eval, t_max) -> np.ndarray:
    times = real_array(t_eval, "t_eval", 1, dtype=np.float64)
    if np.any(np.diff(times) <= 0) or times[0] < 0 or times[-1] > t_max:
        raise ValueError(f"t_eval must be increasing and inside [0, t_max = {t_max:g}]")
    return times


def _integrate(solver, state, times, target, target_loss, monitor):
    """Step `solver`, recording diagnostics at `times`; stop at the loss `target`, t_max,
    Ctrl-C or when the monitor says so. Works in the state's internal units (times, the
    history, the stage times); the monitor and the messages get the user's (target_loss)."""
    scale = state.scale

    def user_t(tau):
        return scale.outward(tau, -1)

    t_rec, rows, D_rec = [], [], []
    state.loss(solver.y)
    D0 = state.G[0] - state.G[1]  # U^T U - V^T V at t = 0, which the flow conserves

    def record(t, y):
        row, D = state.record(len(t_rec), y)
        t_rec.append(t)
        rows.append(row)
        D_rec.append(D)

    def stage_times():  # the kernel marks T1, T0 as record indices
        return tuple(t_rec[int(state.info[i])] if state.info[i] >= 0 else None for i in (K.T1, K.T0))

    j = 0
    if times[0] == 0.0:
        record(0.0, solver.y)
        j = 1
    t, y = solver.t, solver.y.copy()
    status, message = "t_max", f"integrated to t_max = {user_t(solver.t_bound):g}"
    try:
        if target > 0 and state.loss(y) <= target:
            status, message = "converged", f"loss already <= target_loss {target_loss:g} at t = 0"
        while status == "t_max" and solver.status == "running":
            with flushing():  # the solver and the records; the monitor (user code) runs outside
                reason = solver.step()
                if solver.status == "failed":
                    status, message = "failed", f"the ODE solver failed at t = {user_t(solver.t):g}: {reason}"
                    break
                sol = solver.dense_output()
                t_stop = solver.t
                if target > 0 and state.loss(solver.y) <= target:
                    t_stop = scipy.optimize.brentq(
                        lambda s, sol=sol: state.loss(sol(s)) - target, solver.t_old, solver.t, xtol=1e-14
                    )
                    status, message = (
                        "converged",
                        f"loss reached target_loss {target_loss:g} at t = {user_t(t_stop):.6g}",
                    )
                while j < len(times) and times[j] <= t_stop:
                    record(times[j], sol(times[j]))
                    j += 1
                t, y = t_stop, (sol(t_stop) if t_stop != solver.t else solver.y.copy())
            if status == "t_max" and solver.status == "running":
                latest = ({"t": t_rec[-1]} | dict(zip(K.KEYS, rows[-1].tolist(), strict=True))) if rows else {}
                latest = scale.history_outward(latest) | ({"t": user_t(t_rec[-1])} if rows else {})
                stop = monitor.update(user_t(t), latest, *(user_t(x) for x in stage_times()))
                if stop is not None:
                    status, message = stop, _STOPPED[stop].format(t=user_t(t))
    except KeyboardInterrupt:
        status = "interrupted"
        message = f"interrupted (KeyboardInterrupt) at t = {user_t(t):.6g}; the state reached is kept"
    if not t_rec or t_rec[-1] != t:
        record(t, y)
    rows, D = np.array(rows), np.array(D_rec)
    history = {"t": np.array(t_rec)} | {key: rows[:, c] for c, key in enumerate(K.KEYS)}
    history["imbalance_drift"] = np.linalg.norm(D - D0, axis=(1, 2))
    return t, y, status, message, history, stage_times()


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

    alpha and beta the smallest and largest singular values of U0. Returns the diagonals
    of the lower and upper bounds, each of shape t.shape + (len(s),).
    """
    sv = np.linalg.svd(real_array(U0, "U0", 2, dtype=np.float64), compute_uv=False)
    return symmetric_solution(s, sv[-1], t), symmetric_solution(s, sv[0], t)


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
        run = SplitRun(problem, left, right, gd.resolve(problem.shape, problem.sigma_1, problem.s, given_start=True))
        for j, t in enumerate(times):
            run.advance(int(n_steps[j]) - run.step)
            if not run.running:
                raise RuntimeError(f"gd_flow_gap: GD with lr = {lr:g} diverged before t = {t:g}")
            Xf, Yf = state.unpack(flow.y[:, j])
            gaps[i, j] = np.linalg.norm(run.X - Xf) + np.linalg.norm(run.Y - Yf)
    return {"lr": lrs, "t": times, "gap": state.scale.outward(gaps, 0.5)}


def resume_flow(saved, t_max, control):
    raise NotImplementedError
