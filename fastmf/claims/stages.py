"""Claims about the stages of GD from a small random start (Ye and Du 2021, arXiv:2106.14289):
T0 and the conditions up to it (Theorem 3.1) and the stage-two rate (section 3.3), condition (2)
on ||Sigma - U V^T||_op, the bound on T_delta over eta and delta (Theorem 1.1), T1 with eps and
T0 - T1 with kappa (section 3.2), the independence from m and n, and widths k != r against the
Eckart-Young optimum.

Every claim runs GD on Sigma = diag(s) padded to m x n (`Problem.from_spectrum`), by default
s = `SPECTRUM` (d = 5, kappa = 4, sigma_d = 1) at m x n = `SHAPE`, eta = `LR` (eta sigma_1 = 0.1)
and the start Theorem 1.1 prescribes with its constant 1, eps = sigma_d / sqrt(d^3 sigma_1 (m + n)).
Many seeds run as one `fastmf.solve_batch`; single trajectories with every diagnostic, `fastmf.solve`.
"""

from __future__ import annotations

import numpy as np

from .. import theory
from ..batch import solve_batch
from ..problem import Problem
from ..solver import solve
from ..stages import fit_rate
from . import Outcome, claim, first_below

SPECTRUM = np.array([4.0, 3.0, 2.0, 1.5, 1.0])
SHAPE = (10**5, 8 * 10**4)
LR = 0.025
EPS = theory.init_scale(SPECTRUM, *SHAPE)  # 1.05e-4
DELTA = 1e-12  # T_delta: the first step with loss <= DELTA (Sigma's units squared)
TOL = 1e-24  # runs that follow the loss to its end stop there, above the rounding floor (about 1e-28)
STAGE_COLORS = {"T1": "#b26a00", "T0": "#1565c0", "T_delta": "#2e7d32"}  # as fastmf.plot
BOUND = {"color": "#c62828", "ls": "--", "lw": 1.3}  # the paper's bound, dashed
LOCAL = {"color": "#6a1b9a", "ls": ":", "lw": 1.6}  # theory.local_rate, dotted
MATH = {"T1": "$T_1$", "T0": "$T_0$", "T_delta": "$T_\\delta$"}


def fit(x, y) -> tuple[float, float, float]:
    """The least-squares line y = slope x + intercept, and its coefficient of determination R^2."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return float(slope), float(intercept), float(1 - residual @ residual / np.sum((y - y.mean()) ** 2))


def by_level(column, keys, levels) -> np.ndarray:
    """The median of the runs of `column` at each level of `keys` (one run per seed and level)."""
    return np.array([np.median(column[keys == level]) for level in levels])


def sweep(problem: Problem, seeds: int, name: str, levels, **settings):
    """`seeds` runs at each level of the setting `name` ("lr" or "init_scale"), as one batch, with distinct
    seeds at every level (the same seed would give the same start, rescaled, at every init_scale)."""
    settings[name] = np.repeat(levels, seeds)
    return solve_batch(problem, seeds=np.arange(seeds * len(levels)), progress=False, **settings)


def warmup_slope(lr: float, sigma_d: float) -> float:
    """T1 per unit of ln(d sigma_d / eps^2), in units of 1 / (eta sigma_d), by Lemma 3.2: while
    small, sigma_d(A A^T) grows by (1 + eta sigma_d)^2 a step, so T1 = ln(.) / (2 ln(1 + eta sigma_d))."""
    return lr * sigma_d / (2 * np.log1p(lr * sigma_d))


def mark(ax, name: str, step: float, **style) -> None:
    ax.axvline(step, color=STAGE_COLORS[name], lw=1, **style)


def plain_ticks(axis, ticks) -> None:
    """Major ticks at those of `ticks` in view, labelled as plain numbers, and no minor labels (log axes)."""
    from matplotlib.ticker import NullFormatter

    low, high = sorted(axis.get_view_interval())
    ticks = [tick for tick in ticks if low <= tick <= high]
    axis.set_ticks(ticks, labels=[f"{tick:g}" for tick in ticks])
    axis.set_minor_formatter(NullFormatter())


def tex(x: float) -> str:
    """A power of ten or a multiple of one in mathtext: 1e5 -> 10^5, 8e4 -> 8 10^4."""
    exponent = int(np.floor(np.log10(x) + 1e-9))
    mantissa = x / 10.0**exponent
    lead = "" if round(mantissa, 6) == 1 else f"{mantissa:g}{{\\cdot}}"
    return f"${lead}10^{{{exponent}}}$"


DIAG = "$\\Sigma$ = diag(" + ", ".join(f"{x:g}" for x in SPECTRUM) + ")"
PROBLEM = f"{DIAG}, $m \\times n$ = {tex(SHAPE[0])} $\\times$ {tex(SHAPE[1])}"
SETTING = f"{PROBLEM}, $\\eta$ = {LR:g}, $\\epsilon$ = {EPS:.2g}"


# ---------------------------------------------------------------------------------------------- stage order

FLOOR = 1e4 * (np.finfo(np.float64).eps * np.linalg.norm(SPECTRUM)) ** 2  # a loss below this is rounding


def after_T0(steps, losses, T0, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """For each run (a row of `losses`, NaN past its end), over its recorded steps after T0 with loss
    above `FLOOR`: the largest loss factor per step, and the largest ratio of the loss to the envelope
    f(T0) rate^(t - T0)."""
    since = steps[None, :] - np.asarray(T0)[:, None]
    keep = (since >= 0) & (losses > FLOOR)
    at_T0 = losses[np.arange(len(T0)), np.searchsorted(steps, T0)][:, None]
    envelope = losses / (at_T0 * rate ** np.maximum(since, 0))
    pair = keep[:, 1:] & keep[:, :-1]
    factor = np.divide(losses[:, 1:], losses[:, :-1], out=np.zeros_like(envelope[:, 1:]), where=pair)
    factor **= 1 / np.diff(steps)
    return factor.max(axis=1), np.where(keep & (since > 0), envelope, 0).max(axis=1)


# section 3.1's bounds on the start that Theorem 3.1 carries through stage one (all but sigma_max(A_0)):
# the smallest c for which they hold is the largest of these ratios of `fastmf.invariants`
_START_RATIOS = ("c0_A_min", "c0_B", "c0_J", "c0_K")


def theorem_31(run, c: float, d: int, eps: float) -> tuple[np.ndarray, dict]:
    """Theorem 3.1's conditions for 0 < t <= T0 as ratios to their bounds (<= 1 where they hold), with c the
    start's constant (`_START_RATIOS`): the steps and a series for each condition."""
    h, (m, n) = run.history, run.problem.shape
    upto = (h["step"] > 0) & (h["step"] <= run.stages.T0)
    series = {"A": eps / (c * np.sqrt(d) * h["sigma_min_A"][upto]),  # eps^2 / (c^2 d) I <= A_t A_t^T
              "B": h["B_fro"][upto] / (2 * c * d * eps),  # ||B_t||_F <= 2 c d eps
              "J": h["J_op"][upto] / (c * eps * np.sqrt(max(m - d, d))),
              "K": h["K_op"][upto] / (c * eps * np.sqrt(max(n - d, d)))}  # fmt: skip
    return h["step"][upto], series


@claim(
    "stage-order",
    "Ye and Du 2021, Theorem 3.1 and section 3.3",
    "T0 = O((1 / (eta sigma_d)) ln(d sigma_d / eps^2)); for t <= T0, eps^2 / (c^2 d) I <= A_t A_t^T, "
    "||B_t||_F <= 2 c d eps, ||J_t||_op <= c eps sqrt(max(m - d, d)), ||K_t||_op <= c eps sqrt(max(n - d, d)) "
    "(c: section 3.1's constant of the start); from T0 on the loss falls at least by (1 - eta sigma_d / 2)^2 a step",
)
def stage_order(quick: bool) -> Outcome:
    s, problem = SPECTRUM, Problem.from_spectrum(SPECTRUM, *SHAPE)
    d, runs_n = s.size, 50 if quick else 1000
    batch = solve_batch(problem, k=d, lr=LR, max_iter=4000, seeds=range(runs_n), init_scale=EPS, delta=DELTA,
                        tol=TOL, history=True, progress=False)  # fmt: skip
    c = np.max([batch.invariants[name] for name in _START_RATIOS], axis=0)
    # Theorem 3.1's T0 with the constant 1, from the start's sigma_d(A_0)^2 >= eps^2 / (c^2 d)
    T0_bound = np.array([theory.T0(s, LR, EPS / c_i) for c_i in c])
    without = theory.T0(s, LR, EPS)  # the same without c
    bound = theory.linear_rate(s, LR)
    factor, envelope = after_T0(batch.steps, batch.losses, batch.T0, bound)
    # every diagnostic up to T0 (tol stops the runs soon after it), for the first seeds of the batch
    traced = [solve(problem, d, LR, 4000, init_scale=EPS, seed=seed, tol=1e-6, progress=False)
              for seed in range(3 if quick else 16)]  # fmt: skip
    conditions = [theorem_31(run, c[seed], d, EPS) for seed, run in enumerate(traced)]
    worst = {key: max(series[key].max() for _, series in conditions) for key in "ABJK"}
    tail = np.array([fit_rate(batch.steps, batch.losses[i], batch.T_delta[i], s) for i in range(runs_n)])
    local = np.median([theory.local_rate(s, LR, run.Up, run.Vp, run.L_U, run.L_V) for run in batch])
    balanced = (1 - LR * s.min()) ** 2  # the complement's slowest mode at a balanced minimum
    ordered = int(np.sum((batch.T1 < batch.T0) & (batch.T0 < batch.T_delta)))
    medians = {name: float(np.median(getattr(batch, name))) for name in ("T1", "T0", "T_delta")}
    values = {"runs": runs_n, "T0_ratio_max": float(np.max(batch.T0 / T0_bound)), "c_max": float(c.max()),
              "T0_without_c_ratio_max": float(np.max(batch.T0 / without)),
              "T0_without_c_over": int(np.sum(batch.T0 > without)),
              "factor_max": float(factor.max()), "factor_median": float(np.median(factor)), "rate_bound": bound,
              "envelope_max": float(envelope.max()), "traced": len(traced),
              "tail_rate_median": float(np.median(tail)), "local_rate_median": float(local),
              "local_rate_balanced": float(balanced), "ordered": ordered}  # fmt: skip
    values |= {f"condition_{key}_max": float(value) for key, value in worst.items()}
    values |= {f"{name}_median": value for name, value in medians.items()}
    holds = bool(values["T0_ratio_max"] <= 1 and max(worst.values()) <= 1 and factor.max() <= bound
                 and envelope.max() <= 1)  # fmt: skip
    measured = (
        f"T0 is at most {values['T0_ratio_max']:.3f} of Theorem 3.1's ln(c^2 d sigma_d / eps^2) / (eta sigma_d) "
        f"(constant 1; c, the start's constant of section 3.1, median {np.median(c):.2f}, at most {c.max():.3g}) "
        f"over {runs_n} runs (without c, {without:.0f} steps: T0 is at most "
        f"{values['T0_without_c_ratio_max']:.3f} of it, above it in {values['T0_without_c_over']} of {runs_n} "
        f"runs); for 0 < t <= T0 ({len(traced)} seeds) the conditions on A A^T, B, J, K reach {worst['A']:.3f}, "
        f"{worst['B']:.3f}, {worst['J']:.5f}, {worst['K']:.5f} of their bounds (J, K only shrink); after T0 the "
        f"loss falls by {factor.max():.4f} a step at most (bound {bound:.4f}) and stays under f(T0) (1 - eta "
        f"sigma_d / 2)^(2 (t - T0)) (ratio <= {envelope.max():.3f}); after T_delta it falls by "
        f"{np.median(tail):.5f} (median), as linearized ({local:.5f}) and as (1 - eta sigma_d)^2 = "
        f"{balanced:.5f}. Not tested, definitions: sigma_d(A_T1) >= sqrt(sigma_d / 2), ||P_T0||_op <= sigma_d / 4, "
        f"T1 <= T0 (medians {medians['T1']:g}, {medians['T0']:g}), and T0 < T_delta (median "
        f"{medians['T_delta']:g}; {ordered} of {runs_n}) since f(T0) >> delta = {DELTA:g}"
    )
    table = {"seed": batch.seed, "T1": batch.T1, "T0": batch.T0, "T_delta": batch.T_delta,
             "c": c, "T0_bound": T0_bound, "factor_max": factor, "rate_bound": np.full(runs_n, bound),
             "envelope_max": envelope, "tail_rate": tail}  # fmt: skip
    for key in "ABJK":  # NaN for the seeds not traced
        found = [series[key].max() for _, series in conditions]
        table[f"condition_{key}"] = np.r_[found, np.full(runs_n - len(traced), np.nan)]

    def draw(fig):
        ax, right = fig.subplots(1, 2, width_ratios=(3, 2))
        steps, losses = batch.steps, batch.losses
        for i in range(1, min(12, runs_n)):
            ax.plot(steps, losses[i], color="0.7", lw=0.7)
        ax.plot(steps, losses[0], color="k", lw=1.2, label="loss $f(U_t, V_t)$, seed 0 (grey: seeds 1-11)")
        for name in ("T1", "T0", "T_delta"):
            mark(ax, name, getattr(batch, name)[0], ls="-", label=f"{MATH[name]} of seed 0")
        mark(ax, "T0", T0_bound[0], ls="--", label="Theorem 3.1's $T_0$ bound for seed 0")
        T0, end = batch.T0[0], batch.n_iter[0]
        after = np.arange(T0, end + 1)
        at_T0 = losses[0][np.searchsorted(steps, T0)]
        ax.plot(after, at_T0 * bound ** (after - T0), **BOUND,
                label="$f(T_0)\\,(1 - \\eta\\sigma_d/2)^{2(t - T_0)}$ (§3.3)")  # fmt: skip
        ax.set(yscale="log", xlabel="step $t$", ylabel="loss", ylim=(TOL / 10, None), title="the loss of 12 seeds")
        ax.legend(fontsize=7, loc="lower left")
        labels = {"A": "$\\epsilon/(c\\sqrt{d}\\,\\sigma_d(A_t))$", "B": "$\\|B_t\\|_F\\,/\\,2cd\\epsilon$",
                  "J": "$\\|J_t\\|_{op}\\,/\\,c\\epsilon\\sqrt{m - d}$",
                  "K": "$\\|K_t\\|_{op}\\,/\\,c\\epsilon\\sqrt{n - d}$"}  # fmt: skip
        styles = {"A": ("C0", "-"), "B": ("C1", "-"), "J": ("C2", "-"), "K": ("C4", "--")}  # K close to J: dashed
        for key, (color, ls) in styles.items():
            for j, (t, series) in enumerate(conditions):
                right.plot(t / t[-1], series[key], color=color, ls=ls, lw=0.7, alpha=0.7,
                           label=labels[key] if j == 0 else None)  # fmt: skip
        right.axhline(1, **BOUND, label="Theorem 3.1: ratio $\\leq$ 1")
        right.set(yscale="log", xlabel="$t\\,/\\,T_0$", ylabel="ratio to Theorem 3.1's bound",
                  title=f"Theorem 3.1 up to $T_0$, {len(traced)} seeds")  # fmt: skip
        right.title.set_fontsize(10)
        right.legend(fontsize=7, loc="lower left")
        fig.suptitle(f"stage-order: Ye and Du 2021, Theorem 3.1 and §3.3\n{SETTING}, $\\delta$ = {tex(DELTA)}",
                     fontsize=9)  # fmt: skip

    return Outcome(table, measured, holds, values, draw)


# ---------------------------------------------------------------------------------------------- condition (2)


@claim(
    "delta-bound",
    "Ye and Du 2021, section 3.3, condition (2)",
    "for t >= T0, Delta_t = ||Sigma - U_t V_t^T||_op on the principal block <= (2/5) sigma_d "
    "(1 - eta sigma_d / 2)^(t - T0)",
)
def delta_bound(quick: bool) -> Outcome:
    s, problem = SPECTRUM, Problem.from_spectrum(SPECTRUM, *SHAPE)
    floor = 1e3 * np.finfo(np.float64).eps * s.max()  # E_op below this is rounding
    runs = [solve(problem, s.size, LR, 4000, init_scale=EPS, seed=seed, tol=TOL, progress=False)
            for seed in range(3 if quick else 16)]  # fmt: skip
    rows = {"seed": [], "step": [], "since_T0": [], "E_op": [], "bound": []}
    for seed, run in enumerate(runs):
        step, E_op, T0 = run.history["step"], run.history["E_op"], run.stages.T0
        keep = (E_op > floor) & np.isfinite(E_op)
        rows["seed"].append(np.full(keep.sum(), seed))
        rows["step"].append(step[keep])
        rows["since_T0"].append(step[keep] - T0)
        rows["E_op"].append(E_op[keep])
        rows["bound"].append(np.where(step[keep] >= T0, theory.delta_bound(s, LR, step[keep], T0), np.nan))
    table = {key: np.concatenate(parts) for key, parts in rows.items()}
    table["ratio"] = table["E_op"] / table["bound"]
    after = table["since_T0"] >= 0
    worst = float(np.max(table["ratio"][after]))
    at_T0 = table["E_op"][table["since_T0"] == 0] / s.min()
    factor = float(np.exp(fit(table["since_T0"][after], np.log(table["E_op"][after]))[0]))
    slowest = 1 - 2 * LR * s.min()  # the principal block's slowest mode at the minimum (theory.local_rate)
    values = {"worst_ratio": worst, "E_op_at_T0_max": float(at_T0.max()), "runs": len(runs), "E_op_factor": factor,
              "bound_factor": 1 - LR * s.min() / 2, "principal_factor": slowest}  # fmt: skip
    measured = (
        f"E_op / ((2/5) sigma_d (1 - eta sigma_d / 2)^(t - T0)) is {worst:.3f} at most over t >= T0 in "
        f"{len(runs)} runs (E_op(T0) <= {at_T0.max():.3f} sigma_d, from ||P||_op <= sigma_d / 4 at T0); then E_op "
        f"falls by {factor:.4f} a step, as the principal block's slowest mode 1 - 2 eta sigma_d = {slowest:.4f}, "
        f"against the bound's {1 - LR * s.min() / 2:.4f}"
    )

    def draw(fig):
        ax, ratio = fig.subplots(1, 2)
        for seed in range(len(runs)):
            on = table["seed"] == seed
            ax.plot(table["since_T0"][on], table["E_op"][on] / s.min(), color="k", lw=0.7, alpha=0.6,
                    label="$\\Delta_t / \\sigma_d$, one line a seed" if seed == 0 else None)  # fmt: skip
            ratio.plot(table["since_T0"][on & after], table["ratio"][on & after], color="k", lw=0.7, alpha=0.6)
        t = np.arange(0, table["since_T0"].max() + 1)
        ax.plot(t, theory.delta_bound(s, LR, t, 0) / s.min(), **BOUND,
                label="$\\frac{2}{5}(1 - \\eta\\sigma_d/2)^{t - T_0}$, condition (2)")  # fmt: skip
        last = table["since_T0"] == table["since_T0"].max()
        end = (table["since_T0"][last][0], table["E_op"][last][0] / s.min())
        ax.plot(t, end[1] * slowest ** (t - end[0]), **LOCAL, label="$(1 - 2\\eta\\sigma_d)^{t}$, linearized")
        mark(ax, "T0", 0, ls="-", label="$T_0$")
        ax.set(yscale="log", xlabel="step $t - T_0$", ylabel="$\\|\\Sigma - U_tV_t^T\\|_{op}\\,/\\,\\sigma_d$",
               title="$\\Delta_t$ on the principal block", ylim=(floor / s.min(), None))  # fmt: skip
        ax.legend(fontsize=7, loc="lower left")
        ratio.axhline(1, **BOUND, label="condition (2): ratio $\\leq$ 1")
        ratio.set(yscale="log", xlabel="step $t - T_0$", ylabel="$\\Delta_t$ / bound",
                  title=f"worst ratio {worst:.3f}")  # fmt: skip
        ratio.legend(fontsize=7)
        fig.suptitle(f"delta-bound: Ye and Du 2021, §3.3, condition (2), {len(runs)} seeds\n{SETTING}", fontsize=9)

    return Outcome(table, measured, worst <= 1, values, draw)


# ---------------------------------------------------------------------------------------------- T_delta


@claim(
    "T-delta-slopes",
    "Ye and Du 2021, Theorem 1.1",
    "T_delta <= T_total = O((1 / (eta sigma_d)) (ln(d sigma_d / eps) + ln(sigma_d / delta))) as printed; in the "
    "scale-invariant form, T_delta <= c (ln(d sigma_d / eps^2) + ln(sigma_d^2 / delta)) / (eta sigma_d) with one "
    "constant c for every eta and delta (c = 1 here)",
)
def t_delta_slopes(quick: bool) -> Outcome:
    s, problem = SPECTRUM, Problem.from_spectrum(SPECTRUM, *SHAPE)
    d, sd = s.size, s.min()
    seeds = 10 if quick else 100
    inverse = np.geomspace(20, 100 if quick else 200, 4 if quick else 7)  # 1 / (eta sigma_d)
    lrs = 1 / (inverse * sd)
    log_eps, log_delta = np.log(d * sd / EPS**2), np.log(sd**2 / DELTA)

    def total(inverse_, delta):  # Theorem 1.1's bound with c = 1, in steps
        return (log_eps + np.log(sd**2 / delta)) * inverse_

    by_lr = sweep(problem, seeds, "lr", lrs, k=d, max_iter=int(total(inverse.max(), DELTA)) + 1, init_scale=EPS,
                  delta=DELTA, tol=DELTA)  # fmt: skip
    T_eta = by_level(by_lr.T_delta, by_lr.lr, lrs)
    slope_eta, intercept_eta, r2_eta = fit(inverse, T_eta)
    c_eta = slope_eta / (log_eps + log_delta)

    deltas = np.geomspace(1e-3, 1e-21, 7 if quick else 13)
    by_delta = solve_batch(problem, k=d, lr=LR, max_iter=4000, seeds=range(2 * seeds), init_scale=EPS, tol=TOL,
                           history=True, progress=False)  # fmt: skip
    T_all = first_below(by_delta.steps, by_delta.losses, deltas)  # runs x deltas: the same runs at every delta
    T_del = np.median(T_all, axis=0)
    log_inv = np.log(1 / deltas)
    slope_delta, _, r2_delta = fit(log_inv, T_del)
    unit = LR * sd  # steps x unit = steps in units of 1 / (eta sigma_d)
    c_delta = slope_delta * unit
    c_pieces = np.diff(T_del) / np.diff(log_inv) * unit  # the slope between neighbouring deltas
    c_bound = unit / -np.log(theory.linear_rate(s, LR))  # the stage-two bound's steps per e-fold of delta
    local = np.median([theory.local_rate(s, LR, run.Up, run.Vp, run.L_U, run.L_V) for run in by_delta])
    c_local = unit / -np.log(local)

    # Theorem 1.1 with c = 1 against every run (NaN: delta not reached, beyond the bound)
    table = {"sweep": np.r_[np.full(by_lr.lr.size, "eta"), np.full(T_all.size, "delta")],
             "seed": np.r_[by_lr.seed, np.repeat(by_delta.seed, deltas.size)],
             "inv_eta_sigma_d": np.r_[1 / (by_lr.lr * sd), np.full(T_all.size, 1 / unit)],
             "delta": np.r_[np.full(by_lr.lr.size, DELTA), np.tile(deltas, len(by_delta))],
             "T_delta": np.r_[by_lr.T_delta, T_all.ravel()]}  # fmt: skip
    table["bound"] = total(table["inv_eta_sigma_d"], table["delta"])
    ratio = table["T_delta"] / table["bound"]
    reached = bool(np.all(np.isfinite(ratio)))
    c_needed = float(np.max(ratio)) if reached else np.inf
    eta_sweep = table["sweep"] == "eta"
    values = {"c_needed": c_needed, "c_needed_eta": np.max(ratio[eta_sweep]),
              "c_needed_delta": np.max(ratio[~eta_sweep]), "ratio_min": np.min(ratio),
              "slope_eta": slope_eta, "intercept_eta": intercept_eta, "r2_eta": r2_eta,
              "c_eta": c_eta, "slope_delta": slope_delta, "r2_delta": r2_delta, "c_delta": c_delta,
              "c_delta_first": c_pieces[0], "c_delta_last": c_pieces[-1], "c_delta_max": c_pieces.max(),
              "c_bound": c_bound, "c_local": c_local}  # fmt: skip
    values = {key: float(value) for key, value in values.items()}
    measured = (
        f"T_delta / ((ln(d sigma_d / eps^2) + ln(sigma_d^2 / delta)) / (eta sigma_d)) is at most {c_needed:.3f} "
        f"(at least {values['ratio_min']:.3f}) over every run of both sweeps, within the bound with c = 1. Fitted: "
        f"T_delta = {slope_eta:.2f} / (eta sigma_d) {intercept_eta:+.1f} steps for 1 / (eta sigma_d) in "
        f"[{inverse[0]:g}, {inverse[-1]:g}] (R^2 = {r2_eta:.6f}; {seeds} distinct seeds a step size; c = "
        f"{c_eta:.3f} for the logarithms' {log_eps + log_delta:.1f}), and {c_delta:.3f} / (eta sigma_d) per unit "
        f"of ln(1/delta) for delta in [{deltas[-1]:.0e}, {deltas[0]:.0e}] (the same {2 * seeds} runs at every "
        f"delta; R^2 = {r2_delta:.3f}), in two pieces: {c_pieces[0]:.2f} while the principal error dominates, "
        f"{c_pieces[-1]:.2f} once the complement does (linearized {c_local:.3f}; the stage-two bound allows "
        f"{c_bound:.2f}). The pieces differ {c_pieces[-1] / c_pieces[0]:.1f}x and the two sweeps' fitted c by "
        f"{abs(c_delta / c_eta - 1):.0%}: the single c is the bound's, not one fitted line's"
    )

    def draw(fig):
        left, right = fig.subplots(1, 2)
        left.plot(1 / (by_lr.lr * sd), by_lr.T_delta, ".", color=STAGE_COLORS["T_delta"], alpha=0.25, ms=3,
                  label=f"$T_\\delta$, {seeds} distinct seeds a point")  # fmt: skip
        left.plot(inverse, T_eta, "o", color="k", ms=4, label="median")
        x = np.geomspace(inverse[0] / 1.2, inverse[-1] * 1.2)
        left.plot(x, slope_eta * x + intercept_eta, "-", color="k", lw=0.8,
                  label=f"fit: {slope_eta:.1f}$/(\\eta\\sigma_d)$ {intercept_eta:+.1f}")  # fmt: skip
        left.plot(x, total(x, DELTA), **BOUND, label="Theorem 1.1, $c$ = 1")
        left.set(xscale="log", yscale="log", xlabel="$1/(\\eta\\sigma_d)$", ylabel="$T_\\delta$ (steps)",
                 title=f"$\\delta$ = {tex(DELTA)}: against $1/(\\eta\\sigma_d)$")  # fmt: skip
        plain_ticks(left.xaxis, [20, 50, 100, 200])
        plain_ticks(left.yaxis, [200, 500, 1000, 2000, 5000, 10000])
        left.legend(fontsize=7)
        q1, q3 = np.nanpercentile(T_all, [25, 75], axis=0)
        right.fill_between(deltas, q1, q3, color=STAGE_COLORS["T_delta"], alpha=0.25, label="quartiles over runs")
        right.plot(deltas, T_del, "o", color="k", ms=4, label=f"median, the same {2 * seeds} runs at every $\\delta$")
        right.plot(deltas, slope_delta * log_inv + (T_del - slope_delta * log_inv).mean(), "-", color="k", lw=0.8,
                   label=f"fit: {c_delta:.2f}$\\,\\ln(1/\\delta)/(\\eta\\sigma_d)$")  # fmt: skip
        right.plot(deltas, T_del[-1] + (log_inv - log_inv[-1]) * c_local / unit, **LOCAL,
                   label=f"linearized tail: {c_local:.2f}$\\,\\ln(1/\\delta)/(\\eta\\sigma_d)$")  # fmt: skip
        right.plot(deltas, total(1 / unit, deltas), **BOUND, label="Theorem 1.1, $c$ = 1")
        right.set(xscale="log", xlabel="$\\delta$", ylabel="$T_\\delta$ (steps)",
                  title=f"$\\eta\\sigma_d$ = {unit:g}: against $\\ln(1/\\delta)$")  # fmt: skip
        right.invert_xaxis()
        right.legend(fontsize=7)
        fig.suptitle(f"T-delta-slopes: Ye and Du 2021, Theorem 1.1, $T_\\delta \\leq c\\,(\\ln(d\\sigma_d/\\epsilon^2)"
                     f" + \\ln(\\sigma_d^2/\\delta))/(\\eta\\sigma_d)$\n{PROBLEM}, $\\epsilon$ = {EPS:.2g}",
                     fontsize=9)  # fmt: skip

    return Outcome(table, measured, bool(c_needed <= 1), values, draw)


# ---------------------------------------------------------------------------------------------- T1 and eps


@claim(
    "T1-epsilon",
    "Ye and Du 2021, Theorem 3.1 and section 3.2.3 (Lemma 3.2)",
    "T1 <= T0 = O((1 / (eta sigma_d)) ln(d sigma_d / eps^2)); by Lemma 3.2 (sigma_d(A A^T) grows by "
    "(1 + eta sigma_d)^2 a step) T1 grows by 1 / (2 ln(1 + eta sigma_d)) steps per unit of ln(d sigma_d / eps^2)",
)
def t1_epsilon(quick: bool) -> Outcome:
    s, problem = SPECTRUM, Problem.from_spectrum(SPECTRUM, *SHAPE)
    d, sd = s.size, s.min()
    seeds = 10 if quick else 100
    scales = np.logspace(-10, -4, 4 if quick else 7)  # up to about the eps of Theorem 1.1 (c = 1), 1.05e-4
    runs = sweep(problem, seeds, "init_scale", scales, k=d, lr=LR, max_iter=4000, tol=1e-6)  # stops after T0
    x = np.log(d * sd / scales**2)
    T1, T0 = by_level(runs.T1, runs.init_scale, scales), by_level(runs.T0, runs.init_scale, scales)
    slope, intercept, r2 = fit(x, T1)
    unit = LR * sd
    predicted = warmup_slope(LR, sd)
    gap = by_level(runs.T0 - runs.T1, runs.init_scale, scales)
    values = {"slope": slope * unit, "predicted": predicted, "r2": r2, "intercept": intercept,
              "T0_minus_T1_min": float(gap.min()), "T0_minus_T1_max": float(gap.max())}  # fmt: skip
    holds = bool(r2 >= 0.99 and abs(slope * unit / predicted - 1) <= 0.1)
    measured = (
        f"T1 = {slope * unit:.3f} ln(d sigma_d / eps^2) / (eta sigma_d) {intercept:+.1f} steps over eps in "
        f"[{scales[0]:.0e}, {scales[-1]:.0e}] ({seeds} distinct seeds each; R^2 = {r2:.5f}), against Lemma 3.2's "
        f"{predicted:.3f}; the median of "
        f"T0 - T1 is {gap.min():g}" + (f" to {gap.max():g}" if gap.max() > gap.min() else "") + " steps at every eps"
    )
    table = {"init_scale": scales, "log_d_sigma_d_over_eps2": x, "T1_median": T1, "T0_median": T0}

    def draw(fig):
        ax = fig.subplots()
        keys = np.log(d * sd / runs.init_scale**2)
        ax.plot(keys, runs.T1, ".", color=STAGE_COLORS["T1"], alpha=0.2, ms=3,
                label=f"$T_1$, {seeds} distinct seeds a point")  # fmt: skip
        ax.plot(x, T1, "o", color=STAGE_COLORS["T1"], ms=5, label="$T_1$, median")
        ax.plot(x, T0, "s", color=STAGE_COLORS["T0"], ms=4, label="$T_0$, median")
        log = "\\ln(d\\sigma_d/\\epsilon^2)"
        fitted = f"fit: {slope * unit:.3f}$\\,{log}/(\\eta\\sigma_d)$ {intercept:+.1f}"
        ax.plot(x, slope * x + intercept, "-", color="k", lw=0.8, label=fitted)
        lemma = f"Lemma 3.2: $T_1$ slope $1/(2\\ln(1 + \\eta\\sigma_d))$ = {predicted:.3f}$/(\\eta\\sigma_d)$"
        ax.plot(x, predicted / unit * (x - x.mean()) + T1.mean(), **LOCAL, label=lemma)
        ax.plot(x, [theory.T0(s, LR, eps) for eps in scales], **BOUND,
                label="Theorem 3.1: $\\ln(d\\sigma_d/\\epsilon^2)/(\\eta\\sigma_d)$, $c$ = 1")  # fmt: skip
        top = ax.secondary_xaxis("top")
        top.set_ticks(x, labels=[tex(eps) for eps in scales], fontsize=7)
        top.set_xlabel("$\\epsilon$")
        ax.set(xlabel="$\\ln(d\\sigma_d/\\epsilon^2)$", ylabel="step", ylim=(0, None))
        ax.legend(fontsize=7, loc="upper left")
        fig.suptitle(f"T1-epsilon: Ye and Du 2021, Theorem 3.1 and Lemma 3.2\n{PROBLEM}, $\\eta$ = {LR:g}", fontsize=9)

    return Outcome(table, measured, holds, values, draw)


# ---------------------------------------------------------------------------------------------- T0 - T1 and kappa

KAPPA_EPS = 1e-5  # the start of the kappa sweep, the same for every kappa


def alignment_bound(kappa: float, lr: float, sigma_d: float) -> float:
    """Section 3.2.4's bound on T0 - T1 (eq 18 without its O(eps^2) term): ||P||_op <= sigma_1 at T1 and
    shrinks by at least (1 - eta sigma_d / 2)^2 a step, so it is <= sigma_d / 4 after
    ln(4 kappa) / (-2 ln(1 - eta sigma_d / 2)) steps."""
    return np.log(4 * kappa) / (-2 * np.log(1 - lr * sigma_d / 2))


@claim(
    "T0-kappa",
    "Ye and Du 2021, section 3.2.4, eq (18)",
    "after T1, ||P||_op falls to sigma_d / 4 within T2 = O((1 / (eta sigma_d)) ln kappa) steps: "
    "T0 - T1 <= ln(4 kappa) / (-2 ln(1 - eta sigma_d / 2)), about ln(4 kappa) / (eta sigma_d)",
)
def t0_kappa(quick: bool) -> Outcome:
    kappas = np.array([1, 4, 16] if quick else [1, 2, 4, 8, 16, 32, 64], dtype=np.float64)
    seeds, d, m, n = 10 if quick else 100, SPECTRUM.size, *SHAPE
    rows = {"kappa": [], "lr": [], "T1": [], "T0": []}
    for i, kappa in enumerate(kappas):
        s = np.geomspace(kappa, 1.0, d)  # sigma_d = 1
        lr = 0.1 / kappa  # eta sigma_1 = 0.1, as elsewhere
        batch = solve_batch(Problem.from_spectrum(s, m, n), k=d, lr=lr, max_iter=int(40 * kappa / 0.1) + 1000,
                            seeds=range(i * seeds, (i + 1) * seeds), init_scale=KAPPA_EPS, tol=1e-6,
                            progress=False)  # fmt: skip
        for key, value in (("kappa", kappa), ("lr", lr), ("T1", batch.T1), ("T0", batch.T0)):
            rows[key].append(np.broadcast_to(value, (seeds,)))
    table = {key: np.concatenate(parts) for key, parts in rows.items()}
    units = table["lr"]  # sigma_d = 1: eta sigma_d
    table["T0_minus_T1"] = table["T0"] - table["T1"]
    table["bound"] = alignment_bound(table["kappa"], table["lr"], 1.0)
    gap = by_level(table["T0_minus_T1"] * units, table["kappa"], kappas)  # units of 1 / (eta sigma_d)
    warm = by_level(table["T1"] * units, table["kappa"], kappas)
    slope, _, _ = fit(np.log(kappas), gap)
    worst = float(np.max(table["T0_minus_T1"] / table["bound"]))
    values = {"slope": slope, "bound_slope": 1.0, "worst_ratio": worst, "gap_min": float(gap.min()),
              "gap_max": float(gap.max())}  # fmt: skip
    measured = (
        f"T0 - T1 = {gap.min():.2f} to {gap.max():.2f} / (eta sigma_d) for kappa = {kappas[0]:g} to {kappas[-1]:g} "
        f"({seeds} distinct seeds each; slope {slope:.3f} per unit of ln kappa, against the bound's 1): at most "
        f"{worst:.2f} of the bound ln(4 kappa) / (-2 ln(1 - eta sigma_d / 2)); the analysis starts from ||P||_op "
        "<= sigma_1 at T1, but the large singular values align long before T1, so no ln kappa is seen"
    )

    def draw(fig):
        ax, right = fig.subplots(1, 2)
        x = table["kappa"] * np.exp(np.random.default_rng(0).uniform(-0.08, 0.08, table["kappa"].size))  # jitter
        ax.plot(x, table["T0_minus_T1"] * units, ".", color=STAGE_COLORS["T0"], alpha=0.2, ms=3,
                label=f"$T_0 - T_1$, {seeds} distinct seeds a point")  # fmt: skip
        ax.plot(kappas, gap, "o", color=STAGE_COLORS["T0"], ms=5, label="median")
        k = np.geomspace(kappas[0], kappas[-1])
        ax.plot(k, [alignment_bound(kappa, 0.1 / kappa, 1.0) * 0.1 / kappa for kappa in k], **BOUND,
                label="eq (18): $\\ln(4\\kappa)\\,/\\,(-2\\ln(1 - \\eta\\sigma_d/2))$")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="$\\kappa = \\sigma_1/\\sigma_d$",
               ylabel="$(T_0 - T_1)\\,\\eta\\sigma_d$", title="alignment: $T_0 - T_1$")  # fmt: skip
        plain_ticks(ax.xaxis, kappas)
        plain_ticks(ax.yaxis, [0.2, 0.5, 1, 2, 5, 10])
        ax.legend(fontsize=7, loc="upper left")
        right.plot(x, table["T1"] * units, ".", color=STAGE_COLORS["T1"], alpha=0.2, ms=3, label="$T_1$, each seed")
        right.plot(kappas, warm, "o", color=STAGE_COLORS["T1"], ms=5, label="median")
        right.axhline(np.log(d / KAPPA_EPS**2), **BOUND,
                      label="Theorem 3.1's $T_0$: $\\ln(d\\sigma_d/\\epsilon^2)$, $c$ = 1")  # fmt: skip
        right.set(xscale="log", xlabel="$\\kappa = \\sigma_1/\\sigma_d$", ylabel="$T_1\\,\\eta\\sigma_d$",
                  title="warm-up: $T_1$", ylim=(0, None))  # fmt: skip
        plain_ticks(right.xaxis, kappas)
        right.legend(fontsize=7, loc="lower left")
        fig.suptitle(f"T0-kappa: Ye and Du 2021, §3.2.4; $\\Sigma$ = diag of {d} values from $\\kappa$ to 1 "
                     f"(geometric), $m \\times n$ = {tex(m)} $\\times$ {tex(n)},\n$\\eta = 0.1/\\sigma_1$, "
                     f"$\\epsilon$ = {tex(KAPPA_EPS)}; steps in units of $1/(\\eta\\sigma_d)$", fontsize=9)  # fmt: skip

    return Outcome(table, measured, worst <= 1, values, draw)


# ---------------------------------------------------------------------------------------------- m and n

FIXED_EPS = 1e-6  # the eps of Theorem 1.1 (c = 1) at m = n = 10**9, so within its hypothesis at every m here


@claim(
    "dimension-free",
    "Ye and Du 2021, Theorems 1.1 and 3.1",
    "the bounds on T0 and T_total involve m and n only through eps: at fixed eps they do not depend on m, n; "
    "at the prescribed eps = sigma_d / sqrt(d^3 sigma_1 (m + n)) they grow like (1 / (eta sigma_d)) ln(m + n)",
)
def dimension_free(quick: bool) -> Outcome:
    s, d, sd = SPECTRUM, SPECTRUM.size, SPECTRUM.min()
    sizes = np.array([10**2, 10**5, 10**9] if quick else [10**k for k in range(2, 10)])
    seeds = 10 if quick else 100
    rows = {"m": [], "n": [], "init_scale": [], "start": [], "seed": [], "T1": [], "T0": [], "T_delta": []}
    for i, m in enumerate(sizes):
        problem = Problem.from_spectrum(s, int(m), int(m))
        for start, eps in (("fixed", FIXED_EPS), ("theory", theory.init_scale(s, int(m), int(m)))):
            # at fixed eps the same seeds at every m: the same principal start, only the complement's grows with m;
            # the prescribed eps rescales that start with m, so there each m has its own seeds
            first = i * seeds if start == "theory" else 0
            batch = solve_batch(problem, k=d, lr=LR, max_iter=4000, seeds=range(first, first + seeds), init_scale=eps,
                                delta=DELTA, tol=DELTA, progress=False)  # fmt: skip
            for key, value in (("m", m), ("n", m), ("init_scale", eps), ("start", start), ("seed", batch.seed),
                               ("T1", batch.T1), ("T0", batch.T0), ("T_delta", batch.T_delta)):  # fmt: skip
                rows[key].append(np.broadcast_to(value, (seeds,)))
    table = {key: np.concatenate(parts) for key, parts in rows.items()}
    names = ("T1", "T0", "T_delta")
    fixed, prescribed = table["start"] == "fixed", table["start"] == "theory"
    median = {(start, name): by_level(table[name][on], table["m"][on], sizes)
              for start, on in (("fixed", fixed), ("theory", prescribed)) for name in names}  # fmt: skip
    spread = {name: float(np.ptp(median["fixed", name]) / np.median(median["fixed", name])) for name in names}
    unit, x = LR * sd, np.log(2.0 * sizes)  # ln(m + n)
    slopes = {name: fit(x, median["theory", name])[0] * unit for name in names}
    r2 = fit(x, median["theory", "T1"])[2]
    predicted = warmup_slope(LR, sd)  # ln(d sigma_d / eps^2) = ln(m + n) + const at the prescribed eps
    values = {f"spread_{name}": spread[name] for name in names} | {f"slope_{name}": slopes[name] for name in names}
    values |= {"slope_T1_predicted": predicted, "r2_T1": r2}
    holds = spread["T1"] <= 0.02 and spread["T0"] <= 0.02 and r2 >= 0.99 and abs(slopes["T1"] / predicted - 1) <= 0.1
    grow = median["fixed", "T_delta"]
    measured = (
        f"at eps = {FIXED_EPS:g}, for m = n from 10^{np.log10(sizes[0]):.0f} to 10^{np.log10(sizes[-1]):.0f} "
        f"and the same {seeds} seeds at every m (one principal start a seed; only the complement's grows with m), "
        f"the medians of T1 and T0 move "
        f"by {spread['T1']:.1%} and {spread['T0']:.1%}, but T_delta grows from {grow[0]:g} to {grow[-1]:g} steps "
        f"({spread['T_delta']:.0%}: the complement, of size eps sqrt(m + n), falls only by (1 - eta sigma_d)^2 a "
        f"step and must fall below delta = {DELTA:g}); at the prescribed eps T1, T0, T_delta grow by "
        f"{slopes['T1']:.3f}, {slopes['T0']:.3f}, {slopes['T_delta']:.3f} / (eta sigma_d) per unit of ln(m + n) "
        f"({seeds} distinct seeds at each m; R^2 = {r2:.4f} for T1; Lemma 3.2's warm-up predicts {predicted:.3f})"
    )

    def draw(fig):
        axes = fig.subplots(1, 2, sharey=True)
        for ax, start in zip(axes, ("fixed", "theory"), strict=True):
            for name, marker in zip(names, "os^", strict=True):
                ax.plot(sizes, median[start, name], marker + "-", color=STAGE_COLORS[name], ms=4, lw=1,
                        label=f"{MATH[name]}, median of {seeds} seeds")  # fmt: skip
            ax.set(xscale="log", xlabel="$m = n$")
            ax.grid(True, alpha=0.3)
        axes[0].axhline(theory.T0(s, LR, FIXED_EPS), **BOUND, label="Theorem 3.1's $T_0$, $c$ = 1")
        axes[1].plot(sizes, [theory.T0(s, LR, theory.init_scale(s, int(m), int(m))) for m in sizes], **BOUND,
                     label="Theorem 3.1's $T_0$, $c$ = 1")  # fmt: skip
        axes[0].set(ylabel="step", ylim=(0, None),
                    title=f"fixed $\\epsilon$ = {tex(FIXED_EPS)}; the same seeds at every $m$")  # fmt: skip
        axes[1].set(title="Theorem 1.1's $\\epsilon = \\sigma_d/\\sqrt{d^3\\sigma_1(m + n)}$; new seeds")
        for ax in axes:
            ax.title.set_fontsize(8.5)
        axes[0].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"dimension-free: Ye and Du 2021, Theorems 1.1 and 3.1\n{DIAG}, "
                     f"$\\eta$ = {LR:g}, $\\delta$ = {tex(DELTA)}", fontsize=9)  # fmt: skip

    return Outcome(table, measured, bool(holds), values, draw)


# ---------------------------------------------------------------------------------------------- k != r

EY_TOLERANCE = 1e-10  # of ||Sigma||_F, on ||U V^T - Sigma_k||_F (rounding is about 1e-15)
ROUNDING = 100 * np.finfo(np.float64).eps  # of 1/2 ||Sigma||_F^2, on f - f* (the loss at U = V = 0)


def distance(run, s) -> float:
    """||U V^T - Sigma_k||_F / ||Sigma||_F, Sigma_k the best rank-k approximation of Sigma = diag(s) padded
    (Eckart-Young), from the split state: U V^T = [Up; L_U] [Vp; L_V]^T in orthonormal bases."""
    k = run.Up.shape[1]
    blocks = (run.Up @ run.Vp.T - np.diag(np.where(np.arange(s.size) < k, s, 0)), run.Up @ run.L_V.T,
              run.L_U @ run.Vp.T, run.L_U @ run.L_V.T)  # fmt: skip
    return float(np.sqrt(sum(np.sum(block**2) for block in blocks)) / np.linalg.norm(s))


def listed(numbers) -> str:
    """Numbers as "1.2e-05, 3.4e-05"."""
    return ", ".join(f"{x:.1e}" for x in numbers)


def window_rate(steps, excess, start: int, stop: int) -> float:
    """1 - the per-step factor of `excess` fitted (least squares on its log) over the steps in [start, stop]."""
    on = (steps >= start) & (steps <= stop)
    return float(1 - np.exp(np.polyfit(steps[on], np.log(excess[on]), 1)[0]))


@claim(
    "rank-mismatch",
    "Ye and Du 2021 (k = r) at other widths; the Eckart-Young theorem",
    "the loss of width k is never below f* = 1/2 sum_{i > k} sigma_i^2 (0 for k >= r); GD from a small random "
    "start reaches the best rank-k approximation Sigma_k for k = r - 1 as for k = r (||U V^T - Sigma_k||_F <= "
    "1e-10 ||Sigma||_F); for k = r + 1 and 2r the loss falls at every step towards 0, ever more slowly "
    "(Xiong, Ding and Du 2023: the rate then depends on the start's scale)",
)
def rank_mismatch(quick: bool) -> Outcome:
    s, problem = SPECTRUM, Problem.from_spectrum(SPECTRUM, *SHAPE)
    r, seeds, steps = s.size, 10 if quick else 100, 3000 if quick else 10000
    scale = 0.5 * float(np.sum(s**2))
    widths = (r - 1, r, r + 1, 2 * r)
    batches = {k: solve_batch(problem, k=k, lr=LR, max_iter=steps, seeds=range(seeds), init_scale=EPS, tol=0,
                              history=True, progress=False) for k in widths}  # fmt: skip
    best = {k: 0.5 * float(np.sum(s[k:] ** 2)) for k in widths}
    excess = {k: (batches[k].final_loss - best[k]) / scale for k in widths}
    apart = {k: np.array([distance(run, s) for run in batches[k]]) for k in widths}
    wide = [k for k in widths if k > r]
    rising = {k: float(np.max(np.diff(batches[k].losses, axis=1) / batches[k].losses[:, :-1])) for k in wide}
    thirds = (steps // 3, 2 * steps // 3, steps)
    rates = {(k, part): np.array([window_rate(batches[k].steps, losses, thirds[part], thirds[part + 1])
                                  for losses in batches[k].losses]) for k in wide for part in (0, 1)}  # fmt: skip
    slowing = {k: float(np.max(rates[k, 1] / rates[k, 0])) for k in wide}  # < 1: the later third is slower
    below = min(float(excess[k].min()) for k in widths)
    holds = bool(below >= -ROUNDING and all(apart[k].max() <= EY_TOLERANCE for k in widths if k <= r)
                 and all(rising[k] <= ROUNDING and slowing[k] < 1 for k in wide))  # fmt: skip
    values = {f"distance_max_k{k}": float(apart[k].max()) for k in widths}
    values |= {f"excess_max_k{k}": float(excess[k].max()) for k in widths} | {"excess_min": below}
    values |= {f"rising_max_k{k}": rising[k] for k in wide} | {f"slowing_max_k{k}": slowing[k] for k in wide}
    values |= {f"rate_{name}_k{k}": float(np.median(rates[k, part])) for k in wide
               for part, name in enumerate(("middle", "last"))}  # fmt: skip
    values |= {"tolerance": EY_TOLERANCE}
    measured = (
        f"after {steps} steps and over {seeds} seeds, f - f* >= {below:.1e} (1/2 ||Sigma||_F^2) at every width; "
        f"||U V^T - Sigma_k||_F / ||Sigma||_F <= {apart[r - 1].max():.1e} (k = {r - 1}) and {apart[r].max():.1e} "
        f"(k = {r}), rounding; at k = {', '.join(map(str, wide))} the loss falls at every step (largest relative "
        f"change {listed(rising[k] for k in wide)}), ever more slowly: by 1 - "
        f"{listed(np.median(rates[k, 0]) for k in wide)} a step over the middle third of the run and 1 - "
        f"{listed(np.median(rates[k, 1]) for k in wide)} over the last (medians), its excess still "
        f"{listed(excess[k].max() for k in wide)} at the end: sublinear from this small start, as the extra "
        "directions' eigenvalues shrink towards 0"
    )
    table = {"k": np.repeat(widths, seeds), "seed": np.tile(np.arange(seeds), len(widths)),
             "final_loss": np.concatenate([batches[k].final_loss for k in widths]),
             "best_loss": np.repeat([best[k] for k in widths], seeds),
             "relative_excess": np.concatenate([excess[k] for k in widths]),
             "distance": np.concatenate([apart[k] for k in widths])}  # fmt: skip

    def draw(fig):
        ax, right = fig.subplots(1, 2, width_ratios=(3, 2))
        for i, k in enumerate(widths):
            batch = batches[k]
            floor = 1e4 * (np.finfo(np.float64).eps * np.linalg.norm(s)) ** 2 + 10 * np.finfo(np.float64).eps * best[k]
            for run in range(min(5, seeds)):
                gap = batch.losses[run] - best[k]
                ax.plot(batch.steps, np.where(gap > floor, gap, np.nan), color=f"C{i}", lw=0.8 if run else 1.3,
                        label=f"$k$ = {k}, $f^*$ = {best[k]:g}" if run == 0 else None)  # fmt: skip
            right.plot(np.full(seeds, i) + np.linspace(-0.2, 0.2, seeds), apart[k], ".", color=f"C{i}", ms=3)
        ax.set(yscale="log", xlabel="step $t$", ylabel="$f(U_t, V_t) - f^*$ (above rounding)",
               title=f"5 seeds a width, $r$ = {r}")  # fmt: skip
        ax.legend(fontsize=7)
        right.plot([-0.4, widths.index(r) + 0.4], [EY_TOLERANCE] * 2, **BOUND, label=f"tolerance {EY_TOLERANCE:g}")
        right.text(widths.index(r) + 1.5, 3 * max(apart[k].max() for k in wide), "$k > r$: still falling,\nsublinearly",
                   ha="center", va="bottom", fontsize=7)  # fmt: skip
        right.set(yscale="log", xticks=range(len(widths)), xticklabels=[f"{k}" for k in widths], xlabel="width $k$",
                  ylabel="$\\|UV^T - \\Sigma_k\\|_F\\,/\\,\\|\\Sigma\\|_F$", ylim=(None, 1e-1),
                  title=f"after {steps} steps, {seeds} seeds")  # fmt: skip
        right.legend(fontsize=7, loc="upper left")
        fig.suptitle(f"rank-mismatch: the Eckart-Young optimum $\\Sigma_k$, $f^* = \\frac{{1}}{{2}}\\sum_{{i>k}}"
                     f"\\sigma_i^2$, at widths $k \\neq r$\n{SETTING}", fontsize=9)  # fmt: skip

    return Outcome(table, measured, holds, values, draw)
