"""Claims of the papers after Ye and Du 2021, checked on fastmf's runs.

- ``width-rate``: Xiong, Ding and Du 2023 (arXiv:2310.01769): with width k > r the linear rate
  of GD from a small random start depends on the start's scale; with k = r it does not.
- ``alternating-count``: Ward and Kolda 2023 (arXiv:2305.06927): alternating GD reaches
  ||Sigma - U V^T||_F^2 <= eps ||Sigma||_F^2 in O((sigma_1 / sigma_r)^2 ln(1/eps)) steps.
- ``variants``: Ye and Du 2021 (arXiv:2106.14289), section 1: plain GD from a small random
  start needs no balancing regularizer, no noise and no decaying step.
"""

from __future__ import annotations

import numpy as np

from .. import schedules
from ..batch import solve_batch
from ..problem import Problem
from . import Outcome, claim


def first_below(steps, losses, levels) -> np.ndarray:
    """The first recorded step at which each run's loss is <= each level; NaN where none is.

    Parameters
    ----------
    steps : 1-D array
        The recorded steps (`BatchResult.steps`).
    losses : array (runs x len(steps))
        The recorded losses, NaN past a run's end (`BatchResult.losses`).
    levels : 1-D array

    Returns
    -------
    array (runs x len(levels))
    """
    below = np.asarray(losses)[:, :, None] <= np.asarray(levels)
    return np.where(below.any(axis=1), np.asarray(steps)[below.argmax(axis=1)], np.nan)


def late_factor(steps, loss, floor: float = 1e-24, window: int = 2000) -> float:
    """The loss's factor per step late in a run: exp of the least-squares slope of ln(loss).

    Parameters
    ----------
    steps, loss : 1-D arrays
        The recorded steps and losses of one run (NaN past its end).
    floor : float
        The fit ends where the loss first reaches `floor` times its start (the rounding
        floor lies below), or at the run's end if it never does.
    window : int
        The fit spans the last decade the loss fell before that end, at most this many steps.
    """
    loss = np.asarray(loss)
    steps = np.asarray(steps, float)
    finite = np.flatnonzero(np.isfinite(loss) & (loss > 0))
    hit = np.flatnonzero(loss[finite] <= floor * loss[0])
    end = finite[hit[0]] if hit.size else finite[-1]
    start = int(np.searchsorted(steps, steps[end] - window))
    above = np.flatnonzero(~(loss[start:end] <= 10 * loss[end]))  # NaN, or more than a decade above
    start += above[-1] + 1 if above.size else 0
    slope = np.polyfit(steps[start : end + 1], np.log(loss[start : end + 1]), 1)[0]
    return float(np.exp(slope))


def _loglog_slope(x, y) -> float:
    """The least-squares slope of ln y against ln x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _append(table: dict, *columns) -> None:
    """Append equal-length columns, one per key of `table`, in its order."""
    for key, column in zip(table, columns, strict=True):
        table[key] += list(column)


def _imbalance(run) -> float:
    """||U^T U - V^T V||_F from the small state of a `SolveResult`."""
    gu = run.Up.T @ run.Up + run.L_U.T @ run.L_U
    gv = run.Vp.T @ run.Vp + run.L_V.T @ run.L_V
    return float(np.linalg.norm(gu - gv))


def _power(exponent: float) -> str:
    """10^x in mathtext."""
    return rf"10^{{{exponent:.3g}}}"


def _trimmed(ax, t, loss, *args, floor: float = 1e-24, **kwargs) -> None:
    """Plot the loss against the step t >= 1 until it first reaches `floor` times its start (the
    rounding floor lies below), so that a run continued past convergence shows no flat tail."""
    hit = np.flatnonzero(~(loss > floor * loss[0]))
    stop = hit[0] + 1 if hit.size else loss.size
    ax.plot(t[1:stop], loss[1:stop], *args, **kwargs)


@claim(
    "width-rate",
    "Xiong, Ding and Du 2023 (arXiv:2310.01769)",
    "with width k > r, GD from a small random start converges linearly at a rate that depends on the "
    "start's scale; with k = r the rate does not depend on it; from a symmetric start V0 = U0 the "
    "over-parameterized run converges only sublinearly",
)
def width_rate(quick: bool) -> Outcome:
    s, m, lr, steps = np.array([3.0, 2.0, 1.0]), 30, 0.1, 20_000
    r = s.size
    scales = 10.0 ** np.arange(-2, -5.01, -1.0 if quick else -0.5)
    seeds = 2 if quick else 10
    problem = Problem.from_spectrum(s, m, m)
    table = {"k": [], "init": [], "init_scale": [], "seed": [], "steps": [], "late_factor": []}

    def run(k, scale, seed, steps, **options):
        batch = solve_batch(problem, k, lr, steps, seeds=seed, init_scale=scale, history=True, **options)
        factors = [late_factor(batch.steps, loss) for loss in batch.losses]
        runs = len(batch)
        init = options.get("init", "gaussian")
        _append(table, [k] * runs, [init] * runs, batch.init_scale, batch.seed, [steps] * runs, factors)
        return batch.steps, batch.losses, 1 - np.array(factors)

    gaps, curves = {}, {}
    for k in (r, r + 2):
        t, losses, gap = run(k, np.repeat(scales, seeds), np.tile(np.arange(seeds), scales.size), steps)
        gaps[k] = np.median(gap.reshape(scales.size, seeds), axis=1)
        curves[k] = (t, losses[::seeds])  # seed 0 at every scale
    # the symmetric start V0 = U0 against the Gaussian one of the largest scale, run longer
    long = steps * (1 if quick else 10)
    pair = {init: run(r + 2, scales[0], [0], long, init=init, record_every=10) for init in ("symmetric", "gaussian")}
    t, losses, _ = pair["symmetric"]
    tail = (t >= long // 10) & (losses[0] > 0)
    sym_slope = _loglog_slope(t[tail], losses[0, tail])

    exponent = _loglog_slope(scales, gaps[r + 2])
    short = gaps[r + 2] * steps < 0.5  # runs short against the slow part's time scale 1 / (1 - q)
    exponent_short = _loglog_slope(scales[short], gaps[r + 2][short]) if short.sum() > 1 else np.nan
    spread = gaps[r].max() / gaps[r].min() - 1
    linear = 1 - (1 - lr * s[-1]) ** 2
    holds = exponent >= 1.0 and spread <= 0.01 and -3.0 <= sym_slope <= -1.0
    measured = (
        f"k = r + 2: 1 - q ~ init_scale^{exponent:.2f} ({gaps[r + 2][0]:.2g} at init_scale {scales[0]:.0e} down to "
        f"{gaps[r + 2][-1]:.2g} at {scales[-1]:.0e}; q the loss factor per step late in {steps} steps, median of "
        f"{seeds} seeds; ^{exponent_short:.2f} over the scales <= {scales[short][0]:.0e}, whose slow part has not "
        f"relaxed by then); k = r: 1 - q = {gaps[r].mean():.4f} at every scale (spread {100 * spread:.2g}%; "
        f"1 - (1 - lr sigma_r)^2 = {linear:.4f}); symmetric start (init_scale {scales[0]:.0e}): loss ~ "
        f"t^{sym_slope:.2f} over steps {long // 10}..{long}, where the Gaussian start falls linearly "
        f"(1 - q = {pair['gaussian'][2][0]:.2g})"
    )
    values = {
        "exponent": exponent,
        "exponent_short_runs": exponent_short,
        "largest_gap": float(gaps[r + 2][0]),
        "smallest_gap": float(gaps[r + 2][-1]),
        "rate_k_eq_r": float(gaps[r].mean()),
        "spread_k_eq_r": spread,
        "linear_rate_theory": linear,
        "symmetric_loss_slope": sym_slope,
    }

    def draw(fig):
        import matplotlib as mpl

        left, right = fig.subplots(1, 2)
        t, losses = curves[r]
        _trimmed(left, t, losses[0], "--", color="C3", lw=1.3, label=rf"$k = r = {r}$, $\epsilon = 10^{{-2}}$")
        shown = np.unique([0, scales.size // 2, scales.size - 1])
        colors = mpl.colormaps["viridis"](np.linspace(0, 0.85, shown.size))
        for color, i in zip(colors, shown, strict=True):
            t, losses = pair["gaussian"][:2] if i == 0 else (curves[r + 2][0], curves[r + 2][1][i : i + 1])
            label = rf"$k = {r + 2}$, $\epsilon = {_power(np.log10(scales[i]))}$"
            _trimmed(left, t, losses[0], "-", color=color, lw=1.3, label=label)
        t, losses, _ = pair["symmetric"]
        label = rf"$k = {r + 2}$, $V_0 = U_0$, $\epsilon = 10^{{-2}}$: $\propto t^{{{sym_slope:.2f}}}$"
        _trimmed(left, t, losses[0], ":", color="k", lw=1.6, label=label)
        left.set(xscale="log", yscale="log", xlabel="step $t$", ylabel=r"loss $f(U_t, V_t)$")
        left.set_title(rf"losses, seed 0 ($r = {r}$, ${m} \times {m}$)")
        left.legend(fontsize=6.5, loc="lower left")

        eps = np.geomspace(scales[-1], scales[0])
        line = np.exp(np.polyfit(np.log(scales), np.log(gaps[r + 2]), 1)[1]) * eps**exponent
        right.plot(scales, gaps[r + 2], "o", color="C0", label=f"$k = r + 2 = {r + 2}$ (median of {seeds} seeds)")
        right.plot(eps, line, "--", color="C0", label=rf"fit $\propto \epsilon^{{{exponent:.2f}}}$")
        if short.sum() > 1:
            low = eps[eps <= scales[short][0] * 1.001]
            line = np.exp(np.polyfit(np.log(scales[short]), np.log(gaps[r + 2][short]), 1)[1]) * low**exponent_short
            bound = _power(np.log10(scales[short][0]))
            label = rf"fit over $\epsilon \leq {bound}$: $\propto \epsilon^{{{exponent_short:.2f}}}$"
            right.plot(low, line, ":", color="k", lw=1.2, label=label)
        right.plot(scales, gaps[r], "s", color="C3", label=f"$k = r = {r}$")
        right.axhline(linear, ls="--", color="C3", label=r"$1 - (1 - \eta\,\sigma_r)^2$")
        right.set(xscale="log", yscale="log", xlabel=r"init scale $\epsilon$ (entries of $U_0, V_0$)")
        right.set_ylabel(rf"$1 - q$, $q$ = loss factor per step late in {steps} steps")
        right.set_title(rf"late rate ($\eta = {lr}$, $\sigma = (3, 2, 1)$)")
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 0.9))
        fig.suptitle("width-rate: the rate for $k > r$ depends on the start's scale (Xiong, Ding and Du 2023)")

    return Outcome(table=table, measured=measured, holds=bool(holds), values=values, draw=draw)


@claim(
    "alternating-count",
    "Ward and Kolda 2023 (arXiv:2305.06927), main theorem (abstract)",
    "alternating GD from their random start reaches ||Sigma - U V^T||_F^2 <= eps ||Sigma||_F^2 within "
    "C (sigma_1 / sigma_r)^2 ln(1/eps) iterations",
)
def alternating_count(quick: bool) -> Outcome:
    d, m, c = 5, 1000, 0.3
    kappas = np.array([1, 4, 16] if quick else [1, 2, 4, 8, 16, 32, 64], float)
    eps = 10.0 ** -np.arange(4 if quick else 2, 13, 4 if quick else 2)
    fitted = eps <= 1e-4  # at larger eps the count is mostly the large singular values' warm-up
    seeds = 3 if quick else 20
    counts = {}  # update -> kappas x seeds x eps
    table = {"update": [], "kappa": [], "seed": [], "eps": [], "steps": []}
    for update in ("alternating", "simultaneous"):
        runs = []
        for kappa in kappas:
            s = np.geomspace(kappa, 1.0, d)
            levels = eps * 0.5 * np.sum(s**2)  # ||Sigma - U V^T||_F^2 <= eps ||Sigma||_F^2
            problem = Problem.from_spectrum(s, m, m)
            options = {"seeds": range(seeds), "update": update, "tol": levels.min(), "history": True}
            batch = solve_batch(problem, d, c / kappa, int(100 * kappa) + 200, **options)
            found = first_below(batch.steps, batch.losses, levels)
            runs.append(found)
            grid = np.broadcast_to(eps, found.shape)
            _append(table, [update] * found.size, [kappa] * found.size, np.repeat(batch.seed, eps.size),
                    grid.ravel(), found.ravel())  # fmt: skip
        counts[update] = np.array(runs)
    median = {update: np.median(runs, axis=1) for update, runs in counts.items()}  # kappas x eps
    alt = median["alternating"]
    log_eps = np.log(1 / eps)
    per_log = np.array([np.polyfit(log_eps[fitted], row[fitted], 1)[0] for row in alt])
    r2 = min(np.corrcoef(log_eps[fitted], row[fitted])[0, 1] ** 2 for row in alt)
    exponent = _loglog_slope(kappas, alt[:, -1])
    exponent_per_log = _loglog_slope(kappas, per_log)
    ratio = alt / (kappas[:, None] ** 2 * log_eps)
    worst = kappas[np.unravel_index(np.argmax(ratio), ratio.shape)[0]]
    reached = bool(np.all(np.isfinite(counts["alternating"])))
    holds = reached and exponent <= 2.1 and exponent_per_log <= 2.1 and r2 >= 0.98
    vs_simultaneous = float(np.median(alt / median["simultaneous"]))
    measured = (
        f"alternating GD, lr = {c} / sigma_1, fastmf's small Gaussian start, k = r = {d}: steps to eps = "
        f"{eps[-1]:.0e} ~ kappa^{exponent:.2f} and steps per unit of ln(1/eps) ~ kappa^{exponent_per_log:.2f} "
        f"(kappa {kappas[0]:g}..{kappas[-1]:g}, median of {seeds} seeds; linear in ln(1/eps), R^2 >= {r2:.3f}); "
        f"steps / (kappa^2 ln(1/eps)) <= {ratio.max():.2g} (at kappa = {worst:g}): within the bound's order, one "
        f"power of kappa below it from this start; {vs_simultaneous:.3f} x simultaneous GD's steps"
    )
    values = {
        "exponent": exponent,
        "exponent_per_log": exponent_per_log,
        "r2": r2,
        "C": float(ratio.max()),
        "vs_simultaneous": vs_simultaneous,
    }

    def draw(fig):
        import matplotlib as mpl

        left, right = fig.subplots(1, 2)
        shown = np.unique([0, eps.size // 2, eps.size - 1])
        colors = mpl.colormaps["plasma"](np.linspace(0, 0.8, shown.size))
        grid = np.geomspace(kappas[0], kappas[-1])
        for color, j in zip(colors, shown, strict=True):
            runs = counts["alternating"][:, :, j]
            bars = (alt[:, j] - runs.min(1), runs.max(1) - alt[:, j])
            label = rf"alternating, $\epsilon = {_power(np.log10(eps[j]))}$"
            left.errorbar(kappas, alt[:, j], yerr=bars, fmt="o", color=color, ms=4, capsize=2, label=label)
            left.plot(kappas, median["simultaneous"][:, j], "x", color=color, ms=6)
            left.plot(grid, ratio[:, j].max() * grid**2 * log_eps[j], "--", color=color, lw=1)
        line = np.exp(np.polyfit(np.log(kappas), np.log(alt[:, -1]), 1)[1]) * grid**exponent
        left.plot(
            grid, line, ":", color="k", lw=1, label=rf"fit $\propto \kappa^{{{exponent:.2f}}}$, smallest $\epsilon$"
        )
        left.plot([], [], "x", color="gray", label="simultaneous (same seeds)")
        left.plot([], [], "--", color="gray", label=r"$C\,\kappa^2 \ln(1/\epsilon)$, through the worst point")
        left.set(xscale="log", yscale="log", xlabel=r"$\kappa = \sigma_1 / \sigma_r$")
        left.set_ylabel(r"steps to $\|\Sigma - U V^\top\|_F^2 \leq \epsilon \|\Sigma\|_F^2$")
        left.set_title(rf"steps $\propto \kappa^{{{exponent:.2f}}}$ at $\epsilon = {_power(np.log10(eps[-1]))}$")
        left.legend(fontsize=6.5, loc="upper left")

        colors = mpl.colormaps["viridis"](np.linspace(0, 0.85, kappas.size))
        for color, kappa, row in zip(colors, kappas, alt, strict=True):
            right.plot(log_eps, row / kappa, "o-", color=color, ms=3.5, lw=1, label=rf"$\kappa = {kappa:g}$")
        if not fitted.all():
            label = r"not fitted: $\epsilon > 10^{-4}$"
            right.axvspan(log_eps[0] - 0.5, np.log(1e4), color="0.92", zorder=0, label=label)
        right.set(xlabel=r"$\ln(1/\epsilon)$", ylabel=r"steps $/\ \kappa$ (alternating, median)")
        right.set_title(rf"linear in $\ln(1/\epsilon)$; $\eta = {c}/\sigma_1$, $d = r = {d}$")
        right.legend(fontsize=7, ncols=2)
        fig.suptitle(r"alternating-count: $O(\kappa^2 \ln(1/\epsilon))$ steps (Ward and Kolda 2023)")

    return Outcome(table=table, measured=measured, holds=bool(holds), values=values, draw=draw)


@claim(
    "variants",
    "Ye and Du 2021 (arXiv:2106.14289), section 1",
    "the isotropic noise and the balancing regularizer of earlier analyses may be proof artifacts: plain GD "
    "with a constant step from a small random start finds a global minimum efficiently without them",
)
def variants(quick: bool) -> Outcome:
    d, m, c, level, factor = 5, 1000, 0.3, 1e-10, 1.1
    kappas = (1, 10) if quick else (1, 10, 100)
    seeds = 3 if quick else 50
    names = ("plain GD", "balanced", "perturbed", "decaying step")
    steps = {name: [] for name in names}  # name -> kappas x seeds
    imbalance = {name: [] for name in names}
    table = {"kappa": [], "variant": [], "seed": [], "steps": [], "imbalance": []}
    for kappa in kappas:
        s = np.geomspace(kappa, 1.0, d)
        problem = Problem.from_spectrum(s, m, m)
        lr = c / kappa
        delta = level * 0.5 * np.sum(s**2)
        decaying = schedules.InverseSqrt(lr, 10 / (lr * s[-1]))
        settings = (
            {"lr": lr},
            {"lr": lr, "balance": 1.0},
            {"lr": lr, "noise": 1e-8 * np.sqrt(kappa)},
            {"lr": decaying},
        )
        for name, options in zip(names, settings, strict=True):
            batch = solve_batch(problem, d, max_iter=int(100 * kappa / c) + 300, seeds=range(seeds), tol=delta,
                                delta=delta, **options)  # fmt: skip
            gaps = [_imbalance(run) / kappa for run in batch]
            steps[name].append(batch.T_delta)
            imbalance[name].append(gaps)
            _append(table, [kappa] * seeds, [name] * seeds, batch.seed, batch.T_delta, gaps)
    median = {name: np.median(runs, axis=1) for name, runs in steps.items()}  # NaN if a run missed the level
    best = np.min([median[name] for name in names[1:]], axis=0)
    ratio = median["plain GD"] / best
    holds = bool(np.all(ratio <= factor))
    slower = median["decaying step"] / median["plain GD"]
    plain_gap = float(np.max(np.median(imbalance["plain GD"], axis=1)))
    measured = (
        f"median steps to loss <= {level:g} ||Sigma||_F^2 / 2 ({seeds} seeds, kappa = "
        f"{', '.join(map(str, kappas))}): plain GD {', '.join(f'{x:.0f}' for x in median['plain GD'])}; best "
        f"variant {', '.join(f'{x:.0f}' for x in best)}: plain / best = {', '.join(f'{x:.3f}' for x in ratio)} "
        f"(<= {factor:g} needed); decaying step {slower.min():.1f}-{slower.max():.1f} x plain; imbalance "
        f"||U^T U - V^T V||_F / sigma_1 there: plain GD <= {plain_gap:.1e}, balanced "
        f"{np.max(np.median(imbalance['balanced'], axis=1)):.1e}"
    )
    values = {"ratio_max": float(ratio.max()), "plain_imbalance": plain_gap, "decaying_ratio_min": float(slower.min())}
    values |= {f"steps_plain_kappa{k}": float(x) for k, x in zip(kappas, median["plain GD"], strict=True)}

    def draw(fig):
        left, right = fig.subplots(1, 2)
        shift = np.exp(np.linspace(-0.06, 0.06, len(names)))
        labels = {
            "plain GD": "plain GD",
            "balanced": r"balanced, $+\frac{1}{8}\|U^\top U - V^\top V\|_F^2$",
            "perturbed": r"perturbed, $\nu = 10^{-8} \sigma_1^{1/2}$",
            "decaying step": r"decaying, $\eta_t = \eta / \sqrt{1 + t \eta \sigma_d / 10}$",
        }
        plain = np.array(steps["plain GD"])
        for i, (name, marker) in enumerate(zip(names, "osD^", strict=True)):
            x = np.array(kappas) * shift[i]
            ratio = np.array(steps[name]) / plain  # seed by seed
            mid = np.median(ratio, axis=1)
            bars = (mid - np.nanmin(ratio, 1), np.nanmax(ratio, 1) - mid)
            style = {"ms": 4, "lw": 1, "color": f"C{i}", "label": labels[name]}
            left.errorbar(x, mid, yerr=bars, fmt=marker + "-", capsize=2, **style)
            right.plot(x, np.median(imbalance[name], axis=1), marker + "-", **style)
        left.axhline(1 / factor, ls="--", color="k", lw=1, label=f"a variant {factor:g}x faster than plain GD")
        left.set(xscale="log", xlabel=r"$\kappa = \sigma_1 / \sigma_d$")
        left.set_ylabel(r"steps to $f \leq 10^{-10} \|\Sigma\|_F^2 / 2$, / plain GD's (same seed)")
        left.set_title(rf"{seeds} seeds: median, range; $\eta = {c}/\sigma_1$, $d = k = {d}$")
        left.legend(fontsize=6.5, loc="lower left", bbox_to_anchor=(0, 0.22))
        right.set(xscale="log", yscale="log", xlabel=r"$\kappa = \sigma_1 / \sigma_d$", title="imbalance at that step")
        right.set_ylabel(r"$\|U^\top U - V^\top V\|_F / \sigma_1$ (median)")
        fig.suptitle("variants: plain GD needs none of them (Ye and Du 2021, section 1)")

    return Outcome(table=table, measured=measured, holds=holds, values=values, draw=draw)
