"""Claims of the papers after Ye and Du 2021, checked on fastmf's runs.

- ``width-rate``: Xiong, Ding and Du 2023 (arXiv:2310.01769): with width k > r, GD from a
  random start of scale alpha converges as exp(-Omega(alpha^2 T)); with k = r the rate does not
  depend on alpha; from a symmetric start the loss falls no faster than Omega(1 / T^2).
- ``alternating-count``: Ward and Kolda 2023 (arXiv:2305.06927): alternating GD of width d > r
  from their unbalanced random start reaches ||Sigma - U V^T||_F^2 <= eps ||Sigma||_F^2 in
  O((sigma_1 / sigma_r)^2 ln(1/eps)) steps.
- ``variants``: Ye and Du 2021 (arXiv:2106.14289), section 1: plain GD from a small random
  start needs no balancing regularizer, no noise and no decaying step.
"""

from __future__ import annotations

import numpy as np

from .. import schedules
from ..batch import solve_batch
from ..init import SplitStart
from ..problem import Problem
from ..solver import solve
from . import Outcome, claim, first_below, loglog_slope


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
    "Xiong, Ding and Du 2023 (arXiv:2310.01769), abstract",
    "with width k > r, GD from a random start of scale alpha converges as exp(-Omega(alpha^2 T)), so the loss "
    "factor q per step has 1 - q of order alpha^2 or more; with k = r the rate does not depend on alpha; from a "
    "symmetric start V0 = U0 the over-parameterized loss is Omega(1 / T^2)",
)
def width_rate(quick: bool) -> Outcome:
    s, m, lr, steps, tol = np.array([3.0, 2.0, 1.0]), 30, 0.1, 20_000, 0.1
    r = s.size
    scales = 10.0 ** np.arange(-2, -5.01, -1.0 if quick else -0.5)
    seeds = 2 if quick else 10
    problem = Problem.from_spectrum(s, m, m)
    table = {"k": [], "init": [], "init_scale": [], "seed": [], "steps": [], "late_factor": []}

    def run(k, scale, seed):
        batch = solve_batch(problem, k, lr, steps, seeds=seed, init_scale=scale, history=True)
        factors = [late_factor(batch.steps, loss) for loss in batch.losses]
        runs = len(batch)
        _append(table, [k] * runs, ["gaussian"] * runs, batch.init_scale, batch.seed, [steps] * runs, factors)
        return batch.steps, batch.losses, 1 - np.array(factors)

    gaps, curves = {}, {}
    for k in (r, r + 2):
        t, losses, gap = run(k, np.repeat(scales, seeds), np.tile(np.arange(seeds), scales.size))
        gaps[k] = np.median(gap.reshape(scales.size, seeds), axis=1)
        curves[k] = (t, losses[::seeds])  # seed 0 at every scale
    # the symmetric start V0 = U0 against the Gaussian one of the largest scale, 10 x longer, at both sizes
    long = 10 * steps
    pair = {}
    for init in ("symmetric", "gaussian"):
        found = solve(problem, r + 2, lr, long, seed=0, init_scale=scales[0], init=init, record_every=10,
                      spectral_every=0, progress=False)  # fmt: skip
        t, loss = found.history["step"], found.history["loss"]
        factor = late_factor(t, loss)
        _append(table, [r + 2], [init], [scales[0]], [0], [long], [factor])
        pair[init] = (t, loss, 1 - factor)
    t, loss, _ = pair["symmetric"]
    tail = (t >= long // 10) & (loss > 0)
    sym_slope = loglog_slope(t[tail], loss[tail])

    exponent = loglog_slope(scales, gaps[r + 2])
    short = gaps[r + 2] * steps < 0.5  # runs short against the slow part's time scale 1 / (1 - q)
    exponent_short = loglog_slope(scales[short], gaps[r + 2][short]) if short.sum() > 1 else np.nan
    spread = gaps[r].max() / gaps[r].min() - 1
    linear = 1 - (1 - lr * s[-1]) ** 2
    order = np.min(gaps[r + 2] / scales**2)  # the largest c with 1 - q >= c alpha^2 at every scale
    holds = (
        1.0 <= exponent <= 2 + tol and not exponent_short > 2 + tol and spread <= 0.01 and -2 - tol <= sym_slope <= -1.0
    )
    measured = (
        f"k = r + 2: 1 - q ~ alpha^{exponent:.2f} ({gaps[r + 2][0]:.2g} at alpha {scales[0]:.0e} down to "
        f"{gaps[r + 2][-1]:.2g} at {scales[-1]:.0e}; q the loss factor per step late in {steps} steps, median of "
        f"{seeds} seeds; ^{exponent_short:.2f} over the alphas <= {scales[short][0]:.0e}, whose slow part has not "
        f"relaxed by then): the paper's exp(-Omega(alpha^2 T)) allows exponents up to 2 (<= {2 + tol:g} needed, "
        f">= 1 for a rate set by alpha), and 1 - q >= {order:.2g} alpha^2 at every alpha; k = r: 1 - q = "
        f"{gaps[r].mean():.4f} at every alpha (spread {100 * spread:.2g}%; 1 - (1 - lr sigma_r)^2 = {linear:.4f}); "
        f"symmetric start (alpha {scales[0]:.0e}): loss ~ t^{sym_slope:.2f} over steps {long // 10}..{long}, no "
        f"faster than the paper's 1/T^2 (>= {-2 - tol:g} needed), where the Gaussian start falls linearly "
        f"(1 - q = {pair['gaussian'][2]:.2g})"
    )
    values = {
        "exponent": exponent,
        "exponent_short_runs": exponent_short,
        "alpha2_constant": float(order),
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
        _trimmed(left, t, losses[0], "--", color="C3", lw=1.3, label=rf"$k = r = {r}$, $\alpha = 10^{{-2}}$")
        shown = np.unique([0, scales.size // 2, scales.size - 1])
        colors = mpl.colormaps["viridis"](np.linspace(0, 0.85, shown.size))
        for color, i in zip(colors, shown, strict=True):
            t, loss = pair["gaussian"][:2] if i == 0 else (curves[r + 2][0], curves[r + 2][1][i])
            label = rf"$k = {r + 2}$, $\alpha = {_power(np.log10(scales[i]))}$"
            _trimmed(left, t, loss, "-", color=color, lw=1.3, label=label)
        t, loss, _ = pair["symmetric"]
        label = rf"$k = {r + 2}$, $V_0 = U_0$, $\alpha = 10^{{-2}}$: $\propto t^{{{sym_slope:.2f}}}$"
        _trimmed(left, t, loss, ":", color="k", lw=1.6, label=label)
        t = t[tail]
        floor = np.min(loss[tail] * t**2)  # the largest c with loss >= c / t^2 over the fitted tail
        left.plot(t, floor / t**2, "--", color="0.5", lw=1.2, label=r"paper: $\Omega(1/T^2)$, here $c / t^2$")
        left.set(xscale="log", yscale="log", xlabel="step $t$", ylabel=r"loss $f(U_t, V_t)$")
        left.set_title(rf"losses, seed 0 ($r = {r}$, ${m} \times {m}$)")
        left.legend(fontsize=6.5, loc="lower left")

        alpha = np.geomspace(scales[-1], scales[0])
        line = np.exp(np.polyfit(np.log(scales), np.log(gaps[r + 2]), 1)[1]) * alpha**exponent
        right.plot(scales, gaps[r + 2], "o", color="C0", label=f"$k = r + 2 = {r + 2}$ (median of {seeds} seeds)")
        right.plot(alpha, line, "-", color="C0", lw=1, label=rf"fit $\propto \alpha^{{{exponent:.2f}}}$")
        if short.sum() > 1:
            low = alpha[alpha <= scales[short][0] * 1.001]
            line = np.exp(np.polyfit(np.log(scales[short]), np.log(gaps[r + 2][short]), 1)[1]) * low**exponent_short
            bound = _power(np.log10(scales[short][0]))
            label = rf"fit over $\alpha \leq {bound}$: $\propto \alpha^{{{exponent_short:.2f}}}$"
            right.plot(low, line, ":", color="C0", lw=1.2, label=label)
        label = rf"paper: $1 - q \geq c\,\alpha^2$ (here $c = {order:.2g}$, the largest that fits)"
        right.plot(alpha, order * alpha**2, "--", color="k", lw=1.2, label=label)
        right.plot(scales, gaps[r], "s", color="C3", label=f"$k = r = {r}$")
        right.axhline(linear, ls="--", color="C3", lw=1, label=r"$1 - (1 - \eta\,\sigma_r)^2$")
        right.set(xscale="log", yscale="log", xlabel=r"init scale $\alpha$ (std of the entries of $U_0, V_0$)")
        right.set_ylabel(rf"$1 - q$, $q$ = loss factor per step late in {steps} steps")
        right.set_title(rf"late rate ($\eta = {lr}$, $\sigma = (3, 2, 1)$)")
        right.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(0, 0.9))
        fig.suptitle(r"width-rate: $e^{-\Omega(\alpha^2 T)}$ for $k > r$, $\Omega(1/T^2)$ from $V_0 = U_0$ "
                     "(Xiong, Ding and Du 2023)")  # fmt: skip

    return Outcome(table=table, measured=measured, holds=bool(holds), values=values, draw=draw)


def ward_kolda_start(s, n: int, d: int, lr: float, c_y: float, seed: int, c_x: float = 4.0) -> SplitStart:
    """Our model of Ward and Kolda's unbalanced random start, for Sigma = diag(s) padded to m x n.

    U0 = Sigma Phi / (sqrt(lr) c_x sigma_1) and V0 = sqrt(lr) c_y sigma_1 Psi, with Phi (n x d) iid
    N(0, 1/d) and Psi (n x d) iid N(0, 1/n): one factor a scaled random projection of Sigma, the other
    a small random matrix, as their abstract and introduction describe it (the constants are ours).
    Sigma Phi has the principal rows diag(s) Phi[:r] and no complement; Psi's complement rows enter as
    the R factor of their QR, the run's own complement frame taking Q's place: the same law.

    Parameters
    ----------
    s : 1-D array
        The singular values of Sigma, largest first.
    n : int
        Columns of Sigma.
    d : int
        Width of the factors.
    lr : float
        The step size of the run.
    c_y, c_x : float
        The scales of V0 and (inversely) of U0.
    seed : int
        Seed of Phi and Psi.

    Returns
    -------
    SplitStart
    """
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal((s.size, d)) / np.sqrt(d)  # the rows of Phi that meet nonzero columns of Sigma
    psi = np.sqrt(lr) * c_y * s[0] * rng.standard_normal((n, d)) / np.sqrt(n)
    up = s[:, None] * phi / (np.sqrt(lr) * c_x * s[0])
    return SplitStart(up, psi[: s.size], np.zeros((0, d)), np.linalg.qr(psi[s.size :], mode="r"))


@claim(
    "alternating-count",
    "Ward and Kolda 2023 (arXiv:2305.06927), main theorem (abstract)",
    "alternating GD of width d > r from their unbalanced random start reaches ||Sigma - U V^T||_F^2 <= "
    "eps ||Sigma||_F^2 within C (sigma_1 / sigma_r)^2 ln(1/eps) iterations",
)
def alternating_count(quick: bool) -> Outcome:
    r, m, c, c_x, tol = 5, 1000, 0.3, 4.0, 0.1
    d = 2 * r  # the theorem needs d > r: its constant carries d / (d - r)
    kappas = np.array([4, 8, 16] if quick else [1, 2, 4, 8, 16, 32, 64], float)
    top = slice(-3, None)  # the exponents are fitted over the three largest kappas
    eps = 10.0 ** -(np.array([4, 7, 10]) if quick else np.arange(2, 11, 2))
    fitted = eps <= 1e-4  # at larger eps the count is mostly the warm-up
    seeds = 3 if quick else 20
    starts = {"ward-kolda c'=0.1": 0.1, "ward-kolda c'=1": 1.0, "fastmf": np.nan}
    theirs = [name for name, c_y in starts.items() if np.isfinite(c_y)]
    counts = {name: [] for name in starts}  # name -> kappas x seeds x eps
    table = {"start": [], "c_y": [], "kappa": [], "width": [], "seed": [], "eps": [], "steps": []}
    for kappa in kappas:
        s = np.geomspace(kappa, 1.0, r)
        problem = Problem.from_spectrum(s, m, m)
        lr, levels = c / kappa, eps * 0.5 * np.sum(s**2)  # ||Sigma - U V^T||_F^2 <= eps ||Sigma||_F^2
        options = {"update": "alternating", "tol": levels.min(), "max_iter": int(30 * kappa**2) + 1000}
        for name, c_y in starts.items():
            if name in theirs:
                runs = [solve(problem, d, lr, seed=seed, start=ward_kolda_start(s, m, d, lr, c_y, seed, c_x),
                              spectral_every=0, progress=False, **options) for seed in range(seeds)]  # fmt: skip
                found = np.array([first_below(run.history["step"], [run.history["loss"]], levels)[0] for run in runs])
            else:
                batch = solve_batch(problem, d, lr, seeds=range(seeds), history=True, **options)
                found = first_below(batch.steps, batch.losses, levels)
            counts[name].append(found)
            _append(table, [name] * found.size, [c_y] * found.size, [kappa] * found.size, [d] * found.size,
                    np.repeat(np.arange(seeds), eps.size), np.tile(eps, seeds), found.ravel())  # fmt: skip
    median = {name: np.median(runs, axis=1) for name, runs in counts.items()}  # kappas x eps
    log_eps = np.log(1 / eps)
    per_log = {name: np.polyfit(log_eps[fitted], rows[:, fitted].T, 1)[0] for name, rows in median.items()}
    exponent = {name: loglog_slope(kappas[top], rows[top, -1]) for name, rows in median.items()}
    exponent_all = {name: loglog_slope(kappas, rows[:, -1]) for name, rows in median.items()}
    exponent_per_log = {name: loglog_slope(kappas[top], per_log[name][top]) for name in starts}
    r2 = min(np.corrcoef(log_eps[fitted], row[fitted])[0, 1] ** 2 for name in theirs for row in median[name])
    ratio = {name: rows / (kappas[:, None] ** 2 * log_eps) for name, rows in median.items()}
    reached = all(np.all(np.isfinite(counts[name])) for name in theirs)
    bounded = all(max(exponent[name], exponent_per_log[name]) <= 2 + tol for name in theirs)
    holds = reached and bounded and r2 >= 0.98
    span = f"kappa {kappas[top][0]:g}..{kappas[-1]:g}"
    measured = (
        f"alternating GD, d = 2r = {d}, lr = {c} / sigma_1, from our model of their start (U0 = Sigma Phi / "
        f"(sqrt(lr) {c_x:g} sigma_1), V0 = sqrt(lr) c' sigma_1 Psi, Phi iid N(0, 1/d), Psi iid N(0, 1/n)), median "
        f"of {seeds} seeds: steps to eps = {eps[-1]:.0e} ~ kappa^{exponent[theirs[0]]:.2f} (c' = 0.1) and "
        f"kappa^{exponent[theirs[1]]:.2f} (c' = 1) over {span} (^{exponent_all[theirs[0]]:.2f} and "
        f"^{exponent_all[theirs[1]]:.2f} over all kappas); steps per unit of ln(1/eps) ~ "
        f"kappa^{exponent_per_log[theirs[0]]:.2f} and kappa^{exponent_per_log[theirs[1]]:.2f} (<= {2 + tol:g} "
        f"needed: no faster than the bound's kappa^2); linear in ln(1/eps) for eps <= 1e-4 (R^2 >= {r2:.3f}); "
        f"steps / (kappa^2 ln(1/eps)) <= {ratio[theirs[0]].max():.2g} (c' = 0.1) and {ratio[theirs[1]].max():.2g} "
        f"(c' = 1), largest at kappa = {kappas[0]:g}, and {ratio[theirs[1]][-1, -1]:.2g} at kappa = {kappas[-1]:g}, "
        f"eps = {eps[-1]:.0e} (c' = 1): the growth nears the bound's kappa^2 for c' = 1 and stays near kappa for "
        f"c' = 0.1, a constant the abstract does not give; fastmf's small Gaussian start of the same width: "
        f"kappa^{exponent['fastmf']:.2f}"
    )
    values = {"r2": r2, "reached": float(reached)}
    for name, key in zip(starts, ("small_y", "large_y", "fastmf"), strict=True):
        values |= {f"exponent_{key}": exponent[name], f"exponent_all_{key}": exponent_all[name],
                   f"exponent_per_log_{key}": exponent_per_log[name], f"C_{key}": float(ratio[name].max())}  # fmt: skip

    def draw(fig):
        import matplotlib as mpl

        left, right = fig.subplots(1, 2)
        grid = np.geomspace(kappas[0], kappas[-1])
        labels = {theirs[0]: "their start, $c' = 0.1$", theirs[1]: "their start, $c' = 1$",
                  "fastmf": "fastmf's small start"}  # fmt: skip
        shift = np.exp(np.linspace(-0.08, 0.08, len(starts)))  # apart, so that no bar hides another
        for i, (name, marker) in enumerate(zip(starts, "os^", strict=True)):
            runs, mid = np.array(counts[name])[:, :, -1], median[name][:, -1]
            bars = (mid - runs.min(1), runs.max(1) - mid)
            label = rf"{labels[name]}: $\propto \kappa^{{{exponent[name]:.2f}}}$"
            left.errorbar(kappas * shift[i], mid, yerr=bars, fmt=marker, color=f"C{i}", ms=4, capsize=2, label=label)
            fit = np.polyfit(np.log(kappas[top]), np.log(mid[top]), 1)
            left.plot(grid[grid >= kappas[top][0]], np.exp(np.polyval(fit, np.log(grid[grid >= kappas[top][0]]))),
                      ":", color=f"C{i}", lw=1)  # fmt: skip
        worst = max(ratio[name][:, -1].max() for name in theirs)
        label = rf"$C\,\kappa^2 \ln(1/\epsilon)$, $C = {worst:.2g}$ (their starts' worst point)"
        left.plot(grid, worst * grid**2 * log_eps[-1], "--", color="k", lw=1.2, label=label)
        left.set(xscale="log", yscale="log", xlabel=r"$\kappa = \sigma_1 / \sigma_r$")
        left.set_ylabel(rf"steps to $\|\Sigma - U V^\top\|_F^2 \leq {_power(np.log10(eps[-1]))} \|\Sigma\|_F^2$")
        title = rf"median, range of {seeds} seeds; $\eta = {c}/\sigma_1$; fits over $\kappa \geq {kappas[top][0]:g}$"
        left.set_title(title, fontsize=9)
        left.legend(fontsize=6.5, loc="upper left")

        name = theirs[1]
        colors = mpl.colormaps["viridis"](np.linspace(0, 0.85, kappas.size))
        for color, kappa, row in zip(colors, kappas, median[name], strict=True):
            right.plot(log_eps, row / kappa**2, "o-", color=color, ms=3.5, lw=1, label=rf"$\kappa = {kappa:g}$")
        x = np.array([0, log_eps[-1]])
        label = rf"$C \ln(1/\epsilon)$, $C = {ratio[name].max():.2g}$ (worst point)"
        right.plot(x, ratio[name].max() * x, "--", color="k", lw=1.2, label=label)
        if not fitted.all():
            right.axvspan(0, np.log(1e4), color="0.92", zorder=0, label=r"not fitted: $\epsilon > 10^{-4}$")
        right.set(xlabel=r"$\ln(1/\epsilon)$", ylabel=r"steps $/\ \kappa^2$ (median)", xlim=(0, log_eps[-1] * 1.03))
        right.set_title(r"their start, $c' = 1$: steps $/\ \kappa^2 \leq C \ln(1/\epsilon)$", fontsize=9)
        right.legend(fontsize=6.5, ncols=2, loc="upper left")
        fig.suptitle(r"alternating-count: $O(\kappa^2 \ln(1/\epsilon))$ steps, $d = 2r$ (Ward and Kolda 2023)")

    return Outcome(table=table, measured=measured, holds=bool(holds), values=values, draw=draw)


@claim(
    "variants",
    "Ye and Du 2021 (arXiv:2106.14289), section 1",
    "the isotropic noise and the balancing regularizer of earlier analyses may be proof artifacts: plain GD "
    "with a constant step from a small random start finds a global minimum efficiently without them",
)
def variants(quick: bool) -> Outcome:
    d, m, c, level, factor, floor = 5, 1000, 0.3, 1e-10, 1.1, 0.75
    kappas = np.array([1, 10] if quick else [1, 10, 100])
    seeds = 3 if quick else 50
    names = ("plain GD", "balanced", "perturbed", "decaying step")
    steps = {name: [] for name in names}  # name -> kappas x seeds (inf: the level was not reached)
    imbalance = {name: [] for name in names}
    floors = []  # perturbed GD's loss late in a run, / the level
    table = {"kappa": [], "variant": [], "noise": [], "seed": [], "steps": [], "imbalance": []}
    for kappa in kappas:
        s = np.geomspace(kappa, 1.0, d)
        problem = Problem.from_spectrum(s, m, m)
        lr = c / kappa
        delta = level * 0.5 * np.sum(s**2)
        # the noise whose floor, k (m + n - 2r) nu^2 / (4 lr) (the complement it feeds decays by about
        # lr sigma_i a step against sigma_i of loss per unit), is `floor` x the level
        nu = np.sqrt(floor * 4 * lr * delta / (d * (2 * m - 2 * d)))
        settings = (
            {"lr": lr},
            {"lr": lr, "balance": 1.0},
            {"lr": lr, "noise": nu},
            {"lr": schedules.InverseSqrt(lr, 10 / (lr * s[-1]))},
        )
        for name, options in zip(names, settings, strict=True):
            batch = solve_batch(problem, d, max_iter=int(100 * kappa / c) + 300, seeds=range(seeds), tol=delta,
                                delta=delta, **options)  # fmt: skip
            gaps = [_imbalance(run) / kappa for run in batch]
            steps[name].append(np.where(np.isnan(batch.T_delta), np.inf, batch.T_delta))
            imbalance[name].append(gaps)
            noise = options.get("noise", 0.0)
            _append(table, [kappa] * seeds, [name] * seeds, [noise] * seeds, batch.seed, batch.T_delta, gaps)
        # the noise's cost: the loss it holds perturbed GD at, run to twice plain GD's steps (3 seeds)
        batch = solve_batch(problem, d, lr, int(2 * np.median(steps["plain GD"][-1])), seeds=range(3), noise=nu)
        floors.append(np.median(batch.loss) / delta)
    median = {name: np.median(runs, axis=1) for name, runs in steps.items()}
    against = {name: median[name] / median["plain GD"] for name in names[1:]}  # > 1: the variant is slower
    best = np.min([median[name] for name in names[1:]], axis=0)
    ratio = median["plain GD"] / best
    holds = bool(np.all(ratio <= factor))
    slower = [name for name in names[1:] if np.any(against[name] > 1.005)]
    plain_gap = float(np.max(np.median(imbalance["plain GD"], axis=1)))
    spans = "; ".join(f"{name} {x.min():.3f}-{x.max():.3f}" for name, x in against.items())
    measured = (
        f"median steps to loss <= {level:g} ||Sigma||_F^2 / 2 ({seeds} seeds, kappa = "
        f"{', '.join(f'{k:g}' for k in kappas)}): plain GD {', '.join(f'{x:.0f}' for x in median['plain GD'])}; "
        f"plain / best variant = {', '.join(f'{x:.3f}' for x in ratio)} (<= {factor:g} needed: no variant "
        f"beats plain GD by more than {factor:g} x); each variant / plain GD: {spans}; slower than plain GD: "
        f"{', '.join(slower) or 'none'}; perturbed GD's noise nu (nu^2 = {floor:g} x 4 lr delta / (k (m + n - 2r)), "
        f"which puts our estimate of its loss floor, k (m + n - 2r) nu^2 / (4 lr), at {floor:g} x the level delta) "
        f"holds its loss at {min(floors):.2f}-{max(floors):.2f} x delta late in a run; imbalance "
        f"||U^T U - V^T V||_F / sigma_1 at the level: "
        f"plain GD <= {plain_gap:.1e}, balanced {np.max(np.median(imbalance['balanced'], axis=1)):.1e}"
    )
    values = {"ratio_max": float(ratio.max()), "plain_imbalance": plain_gap, "noise_floor_max": float(max(floors))}
    values |= {f"{name.split()[0]}_vs_plain_max": float(x.max()) for name, x in against.items()}
    values |= {f"steps_plain_kappa{k:g}": float(x) for k, x in zip(kappas, median["plain GD"], strict=True)}

    def draw(fig):
        left, right = fig.subplots(1, 2)
        shift = np.exp(np.linspace(-0.08, 0.08, len(names)))
        labels = {
            "plain GD": "plain GD",
            "balanced": r"balanced, $+\frac{1}{8}\|U^\top U - V^\top V\|_F^2$",
            "perturbed": rf"perturbed, its loss floor ${min(floors):.2f}$-${max(floors):.2f}\,\delta$",
            "decaying step": r"decaying, $\eta_t = \eta / \sqrt{1 + t \eta \sigma_d / 10}$",
        }
        plain = np.array(steps["plain GD"])
        for i, (name, marker, line) in enumerate(zip(names, "osD^", ("-", "--", "-.", ":"), strict=True)):
            x = kappas * shift[i]
            style = {"ms": 5 - i // 2, "lw": 1.2, "color": f"C{i}", "ls": line, "marker": marker}
            ratio = np.array(steps[name]) / plain  # seed by seed
            mid = np.median(ratio, axis=1)
            same = " (= plain GD)" if name != "plain GD" and np.all(np.abs(mid - 1) < 5e-3) else ""
            bars = (mid - ratio.min(1), ratio.max(1) - mid)
            left.errorbar(x, mid, yerr=bars, capsize=2, mfc="none" if i % 2 else None, label=labels[name] + same,
                          **style)  # fmt: skip
            gaps = np.median(imbalance[name], axis=1)
            right.plot(x, gaps, mfc="none" if i % 2 else None, label=labels[name], **style)
        left.axhline(1 / factor, color="k", lw=1, ls=(0, (5, 3)), label=f"a variant {factor:g} x faster than plain GD")
        left.set(xscale="log", xlabel=r"$\kappa = \sigma_1 / \sigma_d$", ylim=(0.85, 1.8))
        left.set_ylabel(r"steps to $f \leq \delta = 10^{-10} \|\Sigma\|_F^2 / 2$, / plain GD's (same seed)")
        left.set_title(rf"{seeds} seeds: median, range; $\eta = {c}/\sigma_1$, $d = k = {d}$", fontsize=10)
        left.legend(fontsize=6.5, loc="upper right")
        right.set(xscale="log", yscale="log", xlabel=r"$\kappa = \sigma_1 / \sigma_d$")
        right.set_ylabel(r"$\|U^\top U - V^\top V\|_F / \sigma_1$ (median)")
        right.set_title("imbalance at that step", fontsize=10)
        fig.suptitle("variants: plain GD needs none of them (Ye and Du 2021, section 1)")

    return Outcome(table=table, measured=measured, holds=holds, values=values, draw=draw)
