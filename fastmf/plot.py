"""Figures of runs (matplotlib, an optional extra), labelled as a paper would print them.

`plot_run` draws, on one page, what the analysis of Ye and Du 2021 (Theorem 3.1, section 3.3;
docs/maths.md section 4) watches, with the stages shaded and marked: warm-up until T1, when
sigma_d(A) reaches sqrt(sigma_d / 2); alignment until T0, when ||P||_op <= sigma_d / 4; then
linear convergence, against the paper's stage-two bounds. `plot_runs` overlays several runs
coloured by the parameter that varies between them, or draws a sweep's table: the stage steps
and the final loss against the varying parameter, median and spread over the seeds.

A run continued long past convergence is drawn, by default, only up to shortly after its
loss reached its floor (`trimmed_end`), with a note saying so; ``steps=(a, b)`` (``time=``
for a flow) chooses the window instead.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from . import schedules, theory
from .stages import converged_level
from .stages import name as stage_name

# Mathtext labels of the history keys, each defining its quantity (E = diag(s) - Up Vp^T on the
# principal block, A = (Up + Vp) / 2, B = (Up - Vp) / 2, P = (E + E^T) / 2, Q = (E - E^T) / 2).
LABELS = {
    "loss": r"loss $f = \frac{1}{2}\|UV^T - \Sigma\|_F^2$",
    "regularizer": r"regularizer $\frac{\lambda}{8}\|U^TU - V^TV\|_F^2$",
    "imbalance": r"imbalance $\|U^TU - V^TV\|_F$",
    "imbalance_drift": r"drift $\|D(t) - D(0)\|_F$, $D = U^TU - V^TV$",
    "loss_E": r"$\frac{1}{2}\|E\|_F^2$, principal block",
    "loss_Up_LV": r"$\frac{1}{2}\|U_pL_V^T\|_F^2$",
    "loss_LU_Vp": r"$\frac{1}{2}\|L_UV_p^T\|_F^2$",
    "loss_LU_LV": r"$\frac{1}{2}\|L_UL_V^T\|_F^2$",
    "B_fro": r"asymmetry $\|B\|_F$, $B = (U_p - V_p)/2$",
    "Q_fro": r"skew error $\|Q\|_F$, $Q = (E - E^T)/2$",
    "sigma_min_A": r"signal $\sigma_d(A)$, $A = (U_p + V_p)/2$",
    "lambda_min_P": r"$\lambda_{min}(P)$, $P = (E + E^T)/2$",
    "P_op": r"symmetric error $\|P\|_{op}$, $P = (E + E^T)/2$",
    "E_op": r"$\|E\|_{op}$, $E = \mathrm{diag}(s) - U_pV_p^T$",
    "J_op": r"complement $\|J\|_{op}$ = $\sigma_1(L_U)$",
    "K_op": r"complement $\|K\|_{op}$ = $\sigma_1(L_V)$",
}
# How a parameter is named on an axis, a legend or a colour bar.
_PARAMETER_LABELS = {
    "lr": r"step size $\eta$",
    "init_scale": r"initial scale $\varepsilon$",
    "k": r"width $k$",
    "seed": "seed",
    "m": r"rows $m$",
    "n": r"columns $n$",
    "d": r"rank $d$",
    "kappa": r"$\kappa = \sigma_1/\sigma_d$",
    "sigma_1": r"$\sigma_1$",
    "sigma_d": r"$\sigma_d$",
}
# A parameter's symbol, for a series' legend entry ("$\kappa$ = 4").
_SYMBOLS = {"lr": r"$\eta$", "init_scale": r"$\varepsilon$", "k": "$k$", "m": "$m$", "n": "$n$", "d": "$d$",
           "kappa": r"$\kappa$", "sigma_d": r"$\sigma_d$"}  # fmt: skip
_STAGE_COLORS = {"warm-up": "#fdf0d5", "alignment": "#e3f2fd", "linear": "#e8f5e9"}
_STAGE_SPANS = {"warm-up": r"warm-up, $t < T_1$", "alignment": r"alignment, $T_1 \leq t < T_0$",
                "linear": r"linear, $t \geq T_0$"}  # fmt: skip
# The stage marks: Stages field, symbol, what defines it, line style, colour, marker on an overlay.
_MARKS = (
    ("T1", r"$T_1$", r"first with $\sigma_d(A) \geq \sqrt{\sigma_d/2}$", "--", "#e65100", "^"),
    ("T0", r"$T_0$", r"first after $T_1$ with $\|P\|_{op} \leq \sigma_d/4$", "-.", "#1565c0", "o"),
    ("T_delta", r"$T_\delta$", r"first with $f \leq \delta$", ":", "#2e7d32", "s"),
)
_THRESHOLDS = {"sigma_min_A": "#8e24aa", "P_op": "#00838f"}  # horizontal lines, solid
_BOUND = {"color": "#c62828", "ls": (0, (5, 2)), "lw": 1.4}  # the paper's bounds: red, dashed
# Trimming at the rounding floor (`trimmed_end`).
FLOOR_FACTOR = 10.0
FLOOR_MARGIN = 0.2


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib (or the fastmf-gd[plot] extra)") from None
    return plt


def _axis(result) -> tuple[np.ndarray, str]:
    if "step" in result.history:
        return result.history["step"], "step $t$"
    return result.history["t"], "time $t$"


def _positive(y):
    """y with non-positive and missing values hidden (log axes); None (not recorded) stays None."""
    return None if y is None else np.where(np.isfinite(y) & (y > 0), y, np.nan)


def trimmed_end(result) -> float | None:
    """Where a default figure of `result` ends when the run went on long past convergence.

    The loss's floor starts at the first record from which the loss stays below
    FLOOR_FACTOR (10) times its final level, the largest loss of the last tenth of the
    records (at the float rounding floor, or at an ODE solver's tolerance, the loss
    fluctuates). The figure ends FLOOR_MARGIN (20%) further on than the start of the floor
    or the last stage mark (T1, T0, T_delta), whichever is later, measured from the first
    record. Only a run whose final loss is converged (at most `fastmf.stages.converged_level`)
    is trimmed: a loss flat because it has not left the warm-up is not at a floor.

    Returns
    -------
    float or None
        The last step (time for a flow) to draw; None when nothing would be cut.
    """
    x, loss = _axis(result)[0], result.history["loss"]
    if result.problem is None or loss.size < 2 or not loss[-1] <= converged_level(result.problem.s, result.k):
        return None
    level = np.max(loss[-max(loss.size // 10, 1) :])
    above = np.flatnonzero(~(loss <= FLOOR_FACTOR * level))
    floor = x[above[-1] + 1] if above.size else x[0]
    last = max([floor] + [T for T in _stage_steps(result.stages).values() if T is not None])
    end = last + FLOOR_MARGIN * (last - x[0])
    end = float(np.ceil(end) if "step" in result.history else end)  # a whole step
    return end if end < x[-1] else None


def _stage_steps(stages) -> dict:
    return {"T1": stages.T1, "T0": stages.T0, "T_delta": stages.T_delta}


def _window_arg(value, name: str):
    """A window (a, b) checked: two finite numbers with a < b."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (a, b) of numbers, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be (a, b) with finite a < b, got {value!r}")
    return lo, hi


def _window(kind: str, steps, time, ends: list) -> tuple[float | None, float | None, bool]:
    """The x-range (lo, hi) a figure draws, and whether it was trimmed at the loss's floor.

    `kind` is the x-axis ("step" or "time"); `ends` the trimmed ends of the runs (None: the
    run's own end). A window given overrides the trimming."""
    right, wrong = ("steps", "time") if kind == "step" else ("time", "steps")
    given, other = (steps, time) if kind == "step" else (time, steps)
    if other is not None:
        raise ValueError(f"{wrong}= does not apply: this figure's x-axis is {kind}; pass {right}=(a, b)")
    if given is not None:
        return (*_window_arg(given, right), False)
    if any(end is None for end in ends):
        return None, None, False
    return None, max(ends), True


def _view(x, lo, hi) -> slice:
    """The records to draw in [lo, hi] (None: open), one either side so lines reach the edges."""
    i = 0 if lo is None else max(int(np.searchsorted(x, lo, "left")) - 1, 0)
    j = x.size if hi is None else min(int(np.searchsorted(x, hi, "right")) + 1, x.size)
    return slice(i, j)


def _check_window(lo, hi, axes) -> None:
    """Refuse a window given (lo not None) that holds no record of any run (`axes`: their x)."""
    if lo is not None and not any(np.any((x >= lo) & (x <= hi)) for x in axes):
        first, last = min(x[0] for x in axes), max(x[-1] for x in axes)
        raise ValueError(f"the window ({lo:g}, {hi:g}) holds no record: they run from {first:g} to {last:g}; "
                         "choose a window inside that range")  # fmt: skip


@dataclasses.dataclass
class _Page:
    """One run as `plot_run` draws it: the records in the window and what the panels need."""

    result: object
    x: np.ndarray
    h: dict
    lo: float
    hi: float
    flow: bool

    @property
    def sigma_d(self):
        return None if self.result.problem is None else self.result.problem.sigma_d

    def has(self, *keys) -> bool:
        return any(key in self.h and np.any(np.isfinite(self.h[key])) for key in keys)

    def from_T0(self):
        """The x of the window from T0 on, where the stage-two bounds apply (None: none drawn)."""
        st = self.result.stages
        if st.T0 is None or st.rate_theory is None or self.sigma_d is None:
            return None
        x = np.linspace(max(st.T0, self.lo), self.hi, 200)
        return x if x[-1] > x[0] else None


def plot_run(result, *, steps=None, time=None, fig=None, title: str | None = None):
    """The stage page of one run (a SolveResult or FlowResult): the panels its records fill.

    Panels: the loss on a log scale, with the paper's stage-two bound f(T0) (1 - eta
    sigma_d / 2)^(2 (t - T0)) (`fastmf.theory.rate_bound`; exp(-sigma_d (t - T0)) for the
    flow) for plain GD (a variant has no such bound: none is drawn), the measured rate in
    the legend and, with ``balance``, the regularizer beside the loss; sigma_d(A) against
    sqrt(sigma_d / 2); ||P||_op against sigma_d / 4 with ||E||_op against condition (2),
    (2/5) sigma_d (1 - eta sigma_d / 2)^(t - T0) (`fastmf.theory.delta_bound`); ||B||_F,
    ||J||_op = sigma_1(L_U) and ||K||_op = sigma_1(L_V); the imbalance ||U^T U - V^T V||_F
    (and its drift for the flow); the loss's four blocks. Every panel has the stages shaded
    and T1, T0, T_delta marked. Spectral quantities are drawn where they were recorded
    (`spectral_every`); a panel the run recorded nothing for is left out (a direct-path run
    records the loss and the imbalance, a run of a batch the loss).

    Parameters
    ----------
    result : SolveResult or FlowResult
    steps : (float, float), optional
        The steps to draw, for a GD run. Default: the whole run, or, for a run continued
        long past convergence, up to shortly after its loss reached its floor
        (`trimmed_end`; the figure says so).
    time : (float, float), optional
        The same for a flow: the times to draw.
    fig : matplotlib.figure.Figure, optional
        Drawn on (cleared first, constrained layout); default a new figure.
    title : str, optional
        Default: the problem, the width, the step size, any variant and the status. The
        note of a trimmed figure is added to it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    x_all, xlabel = _axis(result)
    flow = "t" in result.history
    lo, hi, trimmed = _window("time" if flow else "step", steps, time, [trimmed_end(result)])
    _check_window(lo, hi, [x_all])
    view = _view(x_all, lo, hi)
    lo, hi = x_all[0] if lo is None else lo, x_all[-1] if hi is None else hi
    page = _Page(result, x_all[view], {key: value[view] for key, value in result.history.items()}, lo, hi, flow)
    panels = [panel for panel, keys in _PANELS if page.has(*keys)]
    ncols = 1 if len(panels) == 1 else 2
    nrows = -(-len(panels) // ncols)
    if fig is None:
        fig = plt.figure(figsize=(8 if ncols == 1 else 12, 1.6 + 3.2 * nrows))
    fig.clear()
    fig.set_layout_engine("constrained")
    grid = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    axes = grid.ravel(order="F")[: len(panels)]  # down the first column, then the second
    for ax in grid.ravel(order="F")[len(panels) :]:
        ax.remove()
    staged = result.problem is not None  # the direct path knows no sigma_d, so no stages
    for ax, panel in zip(axes, panels, strict=True):
        panel(ax, page)
        if staged:
            _stages(ax, result.stages, lo, hi)
        ax.legend(fontsize=8, loc="best")
        ax.grid(True, which="major", alpha=0.3)
    for column in (axes[:nrows], axes[nrows:]):
        if len(column):
            column[-1].set_xlabel(xlabel)
            column[-1].tick_params(labelbottom=True)
    axes[0].set_xlim(lo, hi)
    if staged:
        handles = _stage_handles(result.stages, lo, hi)
        fig.legend(handles=handles, loc="outside lower center", ncols=1 + ncols, fontsize=9)
    title = _run_title(result) if title is None else title
    if trimmed:
        title += "\n" + _trim_note(hi, x_all[-1], "time" if flow else "steps")
    fig.suptitle(title, fontsize=11)
    return fig


def _trim_note(end: float, last: float, argument: str) -> str:
    """The note of a figure trimmed at the loss's floor (`trimmed_end`)."""
    unit = "step" if argument == "steps" else "time"
    return (f"drawn up to {unit} {end:.5g} of {last:.5g}: the loss stays at its floor after that, within "
            f"{FLOOR_FACTOR:g}x of its final level ({argument}=(a, b) draws another window)")  # fmt: skip


def _loss_panel(ax, page: _Page) -> None:
    st, h = page.result.stages, page.h
    label = LABELS["loss"]
    if st.rate is not None:
        per = "per unit time" if page.flow else "a step"
        label += f"\nmeasured after $T_0$: $\\times${st.rate:.4g} {per}"
    ax.plot(page.x, _positive(h["loss"]), color="k", lw=1.5, label=label)
    if "regularizer" in h:
        label = LABELS["regularizer"].replace(r"\lambda", f"{page.result.options.balance:g}")
        ax.plot(page.x, _positive(h["regularizer"]), color="#6a1b9a", lw=1, label=label)
    _scale(ax)
    ax.set_title("loss", fontsize=10)
    x = page.from_T0()
    if x is not None:
        loss = page.result.history["loss"]
        at_T0 = loss[int(np.searchsorted(_axis(page.result)[0], st.T0))]
        if page.flow:
            text = r"bound $f(T_0)\,e^{-\sigma_d (t - T_0)}$"
        else:
            text = r"bound $f(T_0)\,(1 - \eta\sigma_d/2)^{2(t - T_0)}$"
        per = "per unit time" if page.flow else "a step"
        _bound(ax, x, at_T0 * st.rate_theory ** (x - st.T0), f"{text}: $\\times${st.rate_theory:.4g} {per}")
        ax.set_title("loss, against the stage-two bound (Ye and Du 2021, section 3.3)", fontsize=10)


def _signal_panel(ax, page: _Page) -> None:
    ax.plot(*_finite(page.x, page.h.get("sigma_min_A")), color="k", lw=1.5, label=_signal_label(page.result))
    if page.sigma_d is not None:
        ax.axhline(np.sqrt(page.sigma_d / 2), color=_THRESHOLDS["sigma_min_A"], lw=1.2,
                   label=r"threshold $\sqrt{\sigma_d/2}$ (defines $T_1$)")  # fmt: skip
    ax.set_title("signal", fontsize=10)


def _signal_label(result) -> str:
    """sigma_min(A) is the smallest of min(r, k) singular values: sigma_d(A), or sigma_k(A) when k < r."""
    if result.problem is not None and result.k < result.problem.rank:
        return LABELS["sigma_min_A"].replace(r"\sigma_d(A)", r"\sigma_k(A)")
    return LABELS["sigma_min_A"]


def _error_panel(ax, page: _Page) -> None:
    ax.plot(*_finite(page.x, _positive(page.h.get("P_op"))), color="k", lw=1.5, label=LABELS["P_op"])
    ax.plot(*_finite(page.x, _positive(page.h.get("E_op"))), color="#546e7a", lw=1.2, label=LABELS["E_op"])
    if page.sigma_d is not None:
        ax.axhline(page.sigma_d / 4, color=_THRESHOLDS["P_op"], lw=1.2, label=r"threshold $\sigma_d/4$ (defines $T_0$)")
    _scale(ax)
    x = page.from_T0()
    if x is not None and page.has("E_op"):
        result, T0 = page.result, page.result.stages.T0
        if page.flow:  # condition (2) as eta -> 0
            bound = 0.4 * page.sigma_d * np.exp(-page.sigma_d * (x - T0) / 2)
            text = r"condition (2), flow: $\frac{2}{5}\sigma_d\,e^{-\sigma_d (t - T_0)/2}$"
        else:
            bound = theory.delta_bound(result.problem.s, result.lr, x, T0)
            text = r"condition (2): $\frac{2}{5}\sigma_d\,(1 - \eta\sigma_d/2)^{t - T_0}$"
        _bound(ax, x, bound, text)
    ax.set_title("principal errors", fontsize=10)


def _asymmetry_panel(ax, page: _Page) -> None:
    for key, style in (("B_fro", {"lw": 1.5}), ("J_op", {"lw": 1.2}), ("K_op", {"lw": 1.2, "ls": "--"})):
        ax.plot(*_finite(page.x, _positive(page.h.get(key))), label=LABELS[key], **style)
    _scale(ax)
    ax.set_title("asymmetry and complement", fontsize=10)


def _imbalance_panel(ax, page: _Page) -> None:
    imbalance = _positive(page.h.get("imbalance"))
    ax.plot(*_finite(page.x, imbalance), color="k", lw=1.5, label=LABELS["imbalance"])
    if "imbalance_drift" in page.h:
        ax.plot(page.x, _positive(page.h["imbalance_drift"]), lw=1, label=LABELS["imbalance_drift"])
    _scale(ax)
    ax.set_title("imbalance (conserved by the flow)", fontsize=10)


def _blocks_panel(ax, page: _Page) -> None:
    for key in ("loss_E", "loss_Up_LV", "loss_LU_Vp", "loss_LU_LV"):
        ax.plot(*_finite(page.x, _positive(page.h.get(key))), lw=1.2, label=LABELS[key])
    _scale(ax)
    ax.set_title("the loss's four blocks", fontsize=10)


# The panels of `plot_run`, each with the history keys it needs (any one of them).
_PANELS = (
    (_loss_panel, ("loss",)),
    (_signal_panel, ("sigma_min_A",)),
    (_error_panel, ("P_op", "E_op")),
    (_asymmetry_panel, ("B_fro", "J_op", "K_op")),
    (_imbalance_panel, ("imbalance",)),
    (_blocks_panel, ("loss_E", "loss_Up_LV", "loss_LU_Vp", "loss_LU_LV")),
)


def _scale(ax) -> None:
    """A log y-axis for what its lines span more than a decade of, else a linear one (which
    reads better within a decade)."""
    drawn = np.concatenate([np.asarray(line.get_ydata(), np.float64) for line in ax.get_lines()])
    drawn = drawn[np.isfinite(drawn) & (drawn > 0)]
    if drawn.size and drawn.max() > 10 * drawn.min():
        ax.set_yscale("log")


def _bound(ax, x, y, label: str) -> None:
    """A paper's bound, drawn without changing the y-range the data set (it may fall far below)."""
    ax.autoscale_view()
    ylim = ax.get_ylim()
    ax.plot(x, y, label=label, **_BOUND)
    ax.set_ylim(ylim)


def _stages(ax, stages, lo: float, hi: float) -> None:
    """The stages shaded and T1, T0, T_delta marked, within [lo, hi]."""
    T1, T0 = stages.T1, stages.T0
    edges = [lo] + [T for T in (T1, T0) if T is not None and lo < T < hi] + [hi]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        ax.axvspan(a, b, color=_STAGE_COLORS[stage_name(a, T1, T0)], zorder=0, lw=0)
    for name, _, _, ls, color, _ in _MARKS:
        T = _stage_steps(stages)[name]
        if T is not None and lo <= T <= hi:
            ax.axvline(T, ls=ls, color=color, lw=1.2)


def _stage_handles(stages, lo: float, hi: float) -> list:
    """Legend entries for the shaded stages and the marks drawn, each with its definition and value."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    T1, T0 = stages.T1, stages.T0
    shown = {stage_name(lo, T1, T0)} | {stage_name(T, T1, T0) for T in (T1, T0) if T is not None and lo < T < hi}
    handles = [Patch(color=_STAGE_COLORS[name], label=text) for name, text in _STAGE_SPANS.items() if name in shown]
    for name, symbol, meaning, ls, color, _ in _MARKS:
        T = _stage_steps(stages)[name]
        if T is not None and lo <= T <= hi:
            if name == "T_delta":
                meaning = meaning.replace(r"\delta$", f"\\delta$ = {stages.delta:.3g}")
            handles.append(Line2D([], [], ls=ls, color=color, lw=1.2, label=f"{symbol} = {T:.4g}: {meaning}"))
    return handles


def _run_title(result) -> str:
    m, n = (result.U.shape[0], result.V.shape[0]) if result.problem is None else result.problem.shape
    rank = "direct path" if result.problem is None else f"rank {result.problem.rank}"
    lr = [f"lr {_lr_text(result.lr)}"] if hasattr(result, "lr") else ["gradient flow"]
    title = ", ".join([f"{m} x {n}", rank, f"k = {result.k}"] + lr + _variant(result)) + f": {result.status}"
    if result.stages.T0 is not None and result.stages.rate_theory is None:
        title += "\nno stage-two bound drawn: the theorem is about plain constant-step GD"
    return title


def plot_runs(results, labels=None, *, key: str = "loss", by: str | None = None, time_axis: bool = False,
              steps=None, time=None, ax=None):  # fmt: skip
    """Overlay one history key (default the loss) of several runs, coloured by the parameter
    that varies between them, with T1, T0 and T_delta marked on each curve; or draw a sweep.

    Runs are coloured by the settings that differ between them (lr, init_scale, k, the
    problem's m, n, d, ..., or the seed when nothing else does), with a legend of the
    values, or a colour bar past 10 numeric values. A sweep's table has one row per run and
    no curves: its T1, T0, T_delta and final loss are drawn against the parameter that
    varies most (median over the seeds, with the range of the seeds as a band and each
    run as a dot), one series per value of any other varying parameter.

    Parameters
    ----------
    results : sequence of SolveResult or FlowResult, BatchResult, SweepResult or sweep table
        Runs (several seeds or step sizes), a batch (``solve_batch(..., history=True)``;
        batches may also be items of the sequence), or a sweep: its `SweepResult`, its
        table (a dict of columns or a pandas DataFrame) or the table's file
        (``.csv``, ``.parquet``).
    labels : sequence of str, optional
        One legend label per run, colouring the runs one by one instead.
    key : str
        A history key: "loss", "sigma_min_A", "P_op", ... (runs only).
    by : str, optional
        The parameter to colour runs by, or a sweep's x-axis: "lr", "init_scale", "k",
        "seed", ... Default: detected.
    time_axis : bool
        Plot GD runs against the time sum_t eta_t (the flow's time), which lines up step
        sizes: lr * step for a constant lr; for a schedule, the sum over the recorded
        steps of the history's "lr" (the step size at each) times the steps to the next
        record, which is exact when every step is recorded (``record_every=1``).
    steps, time : (float, float), optional
        The window drawn, as in `plot_run` (``time=`` on a time axis). Default: up to
        shortly after the last run's loss reached its floor, when every run reached one.
    ax : matplotlib.axes.Axes, optional
        For runs; for a sweep, a pair of Axes (the stage steps, the final loss).

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = _sweep_table(results)
    if table is not None:
        return _plot_sweep(table, by, ax)
    plt = _pyplot()
    runs = _runs(results)
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"labels must give one label per result: {len(labels)} labels for {len(runs)} results")
    for run in runs:
        if key not in run.history:
            raise ValueError(f"key must be a history key, one of {', '.join(run.history)}; got {key!r}")
    timed = time_axis or all("t" in run.history for run in runs)
    axes = [(_axis(run)[0], _time(run) if time_axis and hasattr(run, "lr") else _axis(run)[0]) for run in runs]
    ends = [None if end is None else float(np.interp(end, x, t)) for end, (x, t) in
            zip((trimmed_end(run) for run in runs), axes, strict=True)]  # fmt: skip
    lo, hi, trimmed = _window("time" if timed else "step", steps, time, ends)
    _check_window(lo, hi, [t for _, t in axes])
    if ax is None:
        ax = plt.figure(figsize=(8.5, 5.2), layout="constrained").subplots()
    colours, legend = _colours(runs, labels, by)
    for run, (x, t), colour in zip(runs, axes, colours, strict=True):
        y = run.history[key]
        view = _view(t, lo, hi)
        ax.plot(*_finite(t[view], y[view]), lw=1.3, color=colour)
        for name, T in _stage_steps(run.stages).items():
            if T is not None and (lo is None or lo <= np.interp(T, x, t)) and (hi is None or np.interp(T, x, t) <= hi):
                _mark(ax, x, t, y, T, name, colour)
    if key not in ("sigma_min_A", "lambda_min_P"):
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    xlabel = "time $t$" if timed else "step $t$"
    ax.set_xlabel(r"time $\sum_{s<t} \eta_s$ ($\eta t$ for a constant $\eta$)" if time_axis else xlabel)
    ax.set_ylabel(LABELS.get(key, key))
    ax.grid(True, alpha=0.3)
    key_artist = legend(ax)
    marks = _mark_handles(runs)
    if marks:
        if key_artist is ax.get_legend():
            ax.add_artist(key_artist)  # kept when the marks' legend is made
        ax.legend(handles=marks, fontsize=8, loc="lower left", title="stage marks", title_fontsize=8)
    title = _runs_title(runs)
    if trimmed:
        title += "\n" + _trim_note(hi, max(t[-1] for _, t in axes), "time" if timed else "steps")
    ax.set_title(title, fontsize=10)
    return ax.figure


def _finite(x, y):
    if y is None:
        return np.array([]), np.array([])
    keep = np.isfinite(y)
    return x[keep], y[keep]


def _runs(results) -> list:
    """The runs to overlay: a batch's, or a sequence's with the batches in it taken run by run."""
    from .result import BatchResult

    runs = []
    for item in [results] if isinstance(results, BatchResult) else list(results):
        if isinstance(item, BatchResult) and item.losses is None:
            raise ValueError("plot_runs draws the losses a batch recorded, and this one kept none: "
                             "run solve_batch(..., history=True)")  # fmt: skip
        runs += list(item) if isinstance(item, BatchResult) else [item]
    if not runs:
        raise ValueError("results must hold at least one run; got none")
    return runs


# What `plot_runs` may colour runs by, in the order a detected colouring names them (the
# settings that change a trajectory: not max_iter, tol, delta, record_every and the like).
_RUN_PARAMETERS = ("k", "lr", "init_scale", "balance", "update", "precondition", "noise", "init", "complement",
                   "m", "n", "d", "sigma_1", "sigma_d", "seed")  # fmt: skip


def _setting(run, name: str):
    """A run's value of a `_RUN_PARAMETERS` name (None where it has none: a flow's lr)."""
    problem = run.problem
    if name in ("m", "n", "d", "sigma_1", "sigma_d"):
        return None if problem is None else {"m": problem.shape[0], "n": problem.shape[1], "d": problem.rank,
                                             "sigma_1": problem.sigma_1, "sigma_d": problem.sigma_d}[name]  # fmt: skip
    value = getattr(run.options, name, None)
    if callable(value):
        return _lr_text(value)
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def _order(key: tuple) -> tuple:
    """Sort key of a tuple of settings: numbers in order, then text."""
    return tuple((0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)) for v in key)


def _text(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _colours(runs, labels, by):
    """A colour per run and a function drawing its key on an Axes (a legend or a colour bar)."""
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    if labels is not None:
        colours = [f"C{i % 10}" for i in range(len(runs))]
        handles = [Line2D([], [], color=c, lw=2, label=label) for c, label in zip(colours, labels, strict=True)]
        return colours, lambda ax: ax.legend(handles=handles, fontsize=8, loc="upper right")
    values = {name: [_setting(run, name) for run in runs] for name in _RUN_PARAMETERS}
    if by is not None and by not in values:
        raise ValueError(f"by must be one of {', '.join(_RUN_PARAMETERS)}; got {by!r}")
    varying = [name for name in _RUN_PARAMETERS if len(set(map(repr, values[name]))) > 1]
    names = [by] if by is not None else [name for name in varying if name != "seed"] or varying
    if not names:  # nothing varies: each run its own colour and label
        return _colours(runs, [_label(run) for run in runs], None)
    keys = [tuple(values[name][i] for name in names) for i in range(len(runs))]
    distinct = sorted(set(keys), key=_order)
    title = ", ".join(_PARAMETER_LABELS.get(name, name) for name in names)
    numeric = len(names) == 1 and all(isinstance(key[0], (int, float)) for key in distinct)
    if numeric and len(distinct) > 10:
        numbers = np.array([key[0] for key in distinct], dtype=np.float64)
        log = numbers.min() > 0 and numbers.max() >= 10 * numbers.min()
        norm = (mpl.colors.LogNorm if log else mpl.colors.Normalize)(numbers.min(), numbers.max())
        cmap = mpl.colormaps["viridis"]
        bar = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        return [cmap(norm(key[0])) for key in keys], lambda ax: ax.figure.colorbar(bar, ax=ax, label=title)
    if numeric:
        palette = mpl.colormaps["viridis"](np.linspace(0, 0.85, len(distinct)))
    else:
        palette = [f"C{i % 10}" for i in range(len(distinct))]
    colour = dict(zip(distinct, palette, strict=True))
    handles = [Line2D([], [], color=colour[key], lw=2, label=", ".join(map(_text, key))) for key in distinct]
    return [colour[key] for key in keys], lambda ax: ax.legend(
        handles=handles, title=title, fontsize=8, title_fontsize=8, loc="upper right", ncols=1 + len(handles) // 12
    )


def _mark(ax, x, t, y, T: float, name: str, colour) -> None:
    """Stage mark `name` at step T on a run's curve (y interpolated where it was not recorded)."""
    finite = np.isfinite(y)
    if not finite.any():
        return
    marker = {mark[0]: mark[5] for mark in _MARKS}[name]
    at = (np.interp(T, x, t), np.interp(T, x[finite], y[finite]))
    ax.plot(*at, marker=marker, ls="none", color=colour, mec="k", mew=0.7, ms=6.5, zorder=3)


def _mark_handles(runs) -> list:
    from matplotlib.lines import Line2D

    handles = []
    for name, symbol, meaning, _, _, marker in _MARKS:
        if any(_stage_steps(run.stages)[name] is not None for run in runs):
            handles.append(Line2D([], [], marker=marker, ls="none", color="0.8", mec="k", mew=0.7, ms=6.5,
                                  label=f"{symbol}: {meaning}"))  # fmt: skip
    return handles


def _runs_title(runs) -> str:
    kind = "GD runs" if all(hasattr(run, "lr") for run in runs) else "runs"
    kind = "gradient flows" if not any(hasattr(run, "lr") for run in runs) else kind
    shared = []
    for name in ("m", "n", "d", "k", "lr", "init_scale"):
        found = {repr(_setting(run, name)) for run in runs}
        if len(found) == 1 and _setting(runs[0], name) is not None:
            shared.append(f"{name} = {_text(_setting(runs[0], name))}")
    return f"{len(runs)} {kind}: " + ", ".join(shared + _variant(runs[0]))


def _sweep_table(results) -> dict | None:
    """A sweep's table as columns, from its `SweepResult`, columns or file; None for runs."""
    from .sweeps import COLUMNS, SweepResult
    from .table import open_table

    if isinstance(results, (str, os.PathLike)):
        if not os.path.exists(results):
            raise FileNotFoundError(f"no such sweep table: {os.fspath(results)}")
        return open_table(results, COLUMNS, resume=True).read()
    if isinstance(results, SweepResult):
        return results.table()
    if hasattr(results, "keys") and {"seed", "T1", "T0", "T_delta", "final_loss"} <= set(results.keys()):
        return {name: np.asarray(results[name]) for name in results.keys()}
    return None


def _distinct(values) -> list:
    return sorted(set(map(str, values)))


def _plot_sweep(table: dict, by, axes):
    """`plot_runs` of a sweep's table: stage steps and final loss against one parameter."""
    from .sweeps import PARAMETERS

    plt = _pyplot()
    if len(table["seed"]) == 0:
        raise ValueError("the sweep table holds no runs yet: run the sweep first")
    names = [name for name in (*PARAMETERS, "schedule") if name in table]
    varying = [name for name in names if len(_distinct(table[name])) > 1]
    if by is None and not varying:
        raise ValueError("the sweep's runs share every parameter, so there is nothing to plot them against: "
                         "pass by='seed' to plot against the seed")  # fmt: skip
    by = max(varying, key=lambda name: len(_distinct(table[name]))) if by is None else by
    if by not in table:
        raise ValueError(f"by must be a column of the sweep table, one of {', '.join(table)}; got {by!r}")
    x = np.asarray(table[by])
    numeric = x.dtype.kind in "iuf"
    if not numeric:  # text (a schedule, an update): evenly spaced categories
        categories = _distinct(x)
        x = np.array([categories.index(str(v)) for v in x], dtype=np.float64)
    # a series per value of the other varying parameters, but for those that `by` and the
    # earlier ones determine (max_iter = c / lr makes no series of its own)
    series_names = []
    for name in varying:
        known = list(zip(x, *(table[other] for other in series_names), strict=True))
        if name not in (by, "seed") and len(_distinct(zip(known, table[name], strict=True))) > len(_distinct(known)):
            series_names.append(name)
    series = [tuple(_text(table[name][i].item()) for name in series_names) for i in range(x.size)]
    if axes is None:
        fig = plt.figure(figsize=(12, 5), layout="constrained")
        axes = fig.subplots(1, 2)
        fig.suptitle(_sweep_title(table, names, varying), fontsize=11)
    if np.size(axes) != 2:
        raise ValueError("ax must be a pair of Axes for a sweep (its stage steps, its final loss), e.g. "
                         "fig.subplots(1, 2)")  # fmt: skip
    steps_ax, loss_ax = axes
    for i, key in enumerate(sorted(set(series))):
        rows = np.array([s == key for s in series])
        suffix = "".join(f", {_SYMBOLS.get(name, name)} = {v}" for name, v in zip(series_names, key, strict=True))
        for name, symbol, meaning, ls, colour, marker in _MARKS:
            label = f"{symbol}: {meaning}" + (rf" ($\delta$ = {_text(table['delta'][0])})" if name == "T_delta" and
                                               "delta" in table and "delta" not in varying else "")  # fmt: skip
            _spread(steps_ax, x[rows], np.asarray(table[name], np.float64)[rows], colour if not series_names
                    else f"C{i}", ls, marker, label + suffix)  # fmt: skip
        _spread(loss_ax, x[rows], np.asarray(table["final_loss"], np.float64)[rows], f"C{i}", "-", "o",
                "final loss $f$" + suffix)  # fmt: skip
    tol = np.asarray(table.get("tol", [np.nan]), np.float64)
    if np.all(tol == tol[0]) and tol[0] > 0:
        loss_ax.axhline(tol[0], color="0.4", ls=":", lw=1.2, label=rf"tol = {tol[0]:.3g}: a run stops at $f \leq$ tol")
    for ax, what in ((steps_ax, "stage steps"), (loss_ax, "final loss")):
        ax.set_xlabel(_PARAMETER_LABELS.get(by, by))
        if x.min() > 0 and x.max() >= 4 * x.min():
            ax.set_xscale("log")
        ax.set_xticks(np.unique(x), categories if not numeric else [_text(v) for v in np.unique(x)])
        ax.set_xticks([], minor=True)
        ax.set_title(f"{what}: line median over seeds, band min to max, dots runs", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    stage_values = np.concatenate([np.asarray(table[name], np.float64) for name in ("T1", "T0", "T_delta")])
    stage_values = stage_values[np.isfinite(stage_values)]
    if stage_values.size and stage_values.min() > 0 and stage_values.max() >= 10 * stage_values.min():
        steps_ax.set_yscale("log")
        _plain_numbers(steps_ax.yaxis)
    if np.any(np.asarray(table["final_loss"], np.float64) > 0):
        loss_ax.set_yscale("log")
    steps_ax.set_ylabel("step")
    loss_ax.set_ylabel(LABELS["loss"] + " at the end")
    for ax in axes:
        ax.legend(fontsize=8)
    return steps_ax.figure


def _plain_numbers(axis) -> None:
    """A log axis labelled 200, 300, 1000 rather than 2 x 10^2, 3 x 10^2, 10^3."""
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))


def _spread(ax, x, y, colour, ls, marker, label: str) -> None:
    """y against x: each value a dot, the median at each x a line, the range at each x a band."""
    at = np.unique(x)
    groups = [y[(x == v) & np.isfinite(y)] for v in at]
    if not any(g.size for g in groups):
        return
    missing = np.count_nonzero(~np.isfinite(y))
    stats = np.array([[np.median(g), g.min(), g.max()] if g.size else [np.nan] * 3 for g in groups])
    ax.plot(x, y, marker, ls="none", color=colour, alpha=0.3, ms=3)
    ax.fill_between(at, stats[:, 1], stats[:, 2], color=colour, alpha=0.15, lw=0)
    if missing:
        label += f" (not reached in {missing} of {y.size} runs)"
    ax.plot(at, stats[:, 0], ls=ls, marker=marker, color=colour, lw=1.5, ms=5, label=label)


def _sweep_title(table: dict, names: list, varying: list) -> str:
    fixed = []
    for name in names:
        value = table[name][0]
        if name not in varying and name in ("m", "n", "d", "kappa", "k", "init_scale", "lr", "schedule", "max_iter"):
            if not (isinstance(value, float) and np.isnan(value)) and value != "":
                fixed.append(f"{name} = {_text(value.item() if hasattr(value, 'item') else value)}")
    seeds = len(_distinct(table["seed"]))
    return f"sweep of {len(table['seed'])} runs ({seeds} seeds a point): " + ", ".join(fixed)


def _label(result) -> str:
    parts = []
    if result.seed is not None and not isinstance(result.seed, np.random.SeedSequence):
        parts.append(f"seed {result.seed}")
    if hasattr(result, "lr"):
        parts.append(f"lr {_lr_text(result.lr)}")
    return ", ".join(parts + _variant(result) + [result.status])


def _time(result) -> np.ndarray:
    """The GD time sum_{s < t} eta_s at each recorded step t (see `plot_runs`)."""
    steps = result.history["step"]
    if "lr" not in result.history:
        return result.lr * steps
    return np.concatenate([[0.0], np.cumsum(result.history["lr"][:-1] * np.diff(steps))])


def _lr_text(lr) -> str:
    """A step size as %.3g; a built-in schedule as its repr, another callable by its name."""
    if not callable(lr):
        return f"{lr:.3g}"
    if isinstance(lr, schedules.Schedule) and not isinstance(lr, schedules.Custom):
        return repr(lr)
    return f"own schedule {getattr(lr, '__name__', '')}".rstrip()


def _variant(result) -> list[str]:
    """The run's variant options that are not plain GD's defaults, as "name=value"."""
    defaults = {f.name: f.default for f in dataclasses.fields(result.options)}
    return [f"{name}={getattr(result.options, name)}" for name in ("balance", "update", "precondition", "noise", "init")
            if name in defaults and getattr(result.options, name) != defaults[name]]  # fmt: skip
