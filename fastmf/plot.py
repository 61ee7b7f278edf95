"""Figures of runs (matplotlib, an optional extra): the stage page of one run and overlays of several.

`plot_run` draws, on one page, what the analysis of Ye and Du 2021 (Theorem 3.1, section 3.3;
docs/maths.md section 4) watches, with the stages shaded: warm-up until T1, when sigma_min(A)
reaches sqrt(sigma_d / 2); alignment until T0, when ||P||_op <= sigma_d / 4; then linear
convergence, against the theorem's rate.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import schedules
from .stages import name as stage_name

_STAGE_COLORS = {"warm-up": "#fdf0d5", "alignment": "#e3f2fd", "linear": "#e8f5e9"}
_MARKS = (("T1", "--", "#b26a00"), ("T0", "-.", "#1565c0"), ("T_delta", ":", "#2e7d32"))


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib (or the fastmf-gd[plot] extra)") from None
    return plt


def _axis(result) -> tuple[np.ndarray, str]:
    if "step" in result.history:
        return result.history["step"], "step t"
    return result.history["t"], "time t"


def _positive(y):
    """y with non-positive and missing values hidden (log axes); None (not recorded) stays None."""
    return None if y is None else np.where(np.isfinite(y) & (y > 0), y, np.nan)


def plot_run(result, *, fig=None, title: str | None = None):
    """The stage page of one run (a SolveResult or FlowResult): six panels on one figure.

    Panels: the loss on a log scale with T1, T0, T_delta marked and the stage-two rate
    of Ye and Du 2021, section 3.3 (the loss falling by (1 - lr sigma_d / 2)^2 a step from
    T0, exp(-sigma_d) per unit time for the flow; `Stages.rate_theory`) overlaid for
    plain GD (a variant has no such bound: none is drawn), and with ``balance`` the
    regularizer beside the loss;
    sigma_min(A) against sqrt(sigma_d / 2); ||P||_op against sigma_d / 4; ||B||_F,
    ||J||_op = sigma_1(L_U) and ||K||_op = sigma_1(L_V); the imbalance
    ||U^T U - V^T V||_F (and its drift for the flow); the loss's four blocks.
    Spectral quantities are drawn where they were recorded (`spectral_every`); what a run
    did not record (the direct path records the loss and the imbalance only, and knows no
    sigma_d) is left out.

    Parameters
    ----------
    result : SolveResult or FlowResult
    fig : matplotlib.figure.Figure, optional
        Drawn on (cleared first); default a new 11 x 10 inch figure.
    title : str, optional
        Default: the problem, the width and the status.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    if fig is None:
        fig = plt.figure(figsize=(11, 10))
    fig.clear()
    axes = fig.subplots(3, 2, sharex=True).ravel()
    x, xlabel = _axis(result)
    h, st = result.history, result.stages
    sigma_d = None if result.problem is None else result.problem.sigma_d
    marks = {"T1": st.T1, "T0": st.T0, "T_delta": st.T_delta}

    ax = axes[0]
    ax.semilogy(x, _positive(h["loss"]), color="k", lw=1.5, label="loss f(U, V)")
    if "regularizer" in h:
        ax.semilogy(x, _positive(h["regularizer"]), color="#6a1b9a", lw=1, label="regularizer (balance/8) imbalance^2")
    if st.T0 is not None and st.rate_theory is not None:
        j = int(np.searchsorted(x, st.T0))
        after = x[j:]
        bound = h["loss"][j] * st.rate_theory ** (after - x[j])
        ax.semilogy(after, bound, color="#c62828", lw=1, ls="--", label="theorem's rate from T0")
    ax.set_title("loss")

    ax = axes[1]
    ax.plot(*_finite(x, h.get("sigma_min_A")), color="k", lw=1.5, label="sigma_min(A)")
    if sigma_d is not None:
        ax.axhline(np.sqrt(sigma_d / 2), color="#b26a00", lw=1, label="sqrt(sigma_d / 2)")
    ax.set_title("signal: sigma_min(A)")

    ax = axes[2]
    ax.semilogy(*_finite(x, _positive(h.get("P_op"))), color="k", lw=1.5, label="||P||_op")
    if sigma_d is not None:
        ax.axhline(sigma_d / 4, color="#1565c0", lw=1, label="sigma_d / 4")
    ax.set_title("symmetric error ||P||_op")

    ax = axes[3]
    ax.semilogy(*_finite(x, _positive(h.get("B_fro"))), lw=1.5, label="||B||_F")
    ax.semilogy(*_finite(x, _positive(h.get("J_op"))), lw=1.2, label="||J||_op")
    ax.semilogy(*_finite(x, _positive(h.get("K_op"))), lw=1.2, ls="--", label="||K||_op")
    ax.set_title("asymmetry and complement")

    ax = axes[4]
    ax.semilogy(*_finite(x, _positive(h.get("imbalance"))), color="k", lw=1.5, label="||U^T U - V^T V||_F")
    if "imbalance_drift" in h:
        ax.semilogy(x, _positive(h["imbalance_drift"]), lw=1, label="drift from t = 0")
    ax.set_title("imbalance")

    ax = axes[5]
    for key, label in (("loss_E", "principal E"), ("loss_Up_LV", "Up L_V^T"), ("loss_LU_Vp", "L_U Vp^T"),
                       ("loss_LU_LV", "L_U L_V^T")):  # fmt: skip
        ax.semilogy(*_finite(x, _positive(h.get(key))), lw=1.2, label=label)
    ax.set_title("the loss's four blocks")

    for ax in axes:
        _shade(ax, x, st.T1, st.T0, labels=ax is axes[0])
        for name, ls, color in _MARKS:
            if marks[name] is not None:
                ax.axvline(marks[name], ls=ls, color=color, lw=1, label=name if ax is axes[0] else None)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[4:]:
        ax.set_xlabel(xlabel)
    if title is None:
        m, n = (result.U.shape[0], result.V.shape[0]) if result.problem is None else result.problem.shape
        rank = "direct path" if result.problem is None else f"rank {result.problem.rank}"
        lr = [f"lr {_lr_text(result.lr)}"] if hasattr(result, "lr") else []
        title = ", ".join([f"{m} x {n}", rank, f"k = {result.k}"] + lr + _variant(result)) + f": {result.status}"
        if st.rate is not None:
            unit = "step" if "step" in h else "unit time"
            bound = (f"the theorem's bound: {st.rate_theory:.4g}" if st.rate_theory is not None
                     else "no bound from the theorem, which is about plain constant-step GD")  # fmt: skip
            title += f"\nloss falls by {st.rate:.4g} a {unit} after T0 ({bound})"
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_runs(results, labels=None, *, key: str = "loss", time_axis: bool = False, ax=None):
    """Overlay one history key (default the loss, log scale) of several runs, T0 marked.

    Parameters
    ----------
    results : sequence of SolveResult or FlowResult
        E.g. several seeds or step sizes.
    labels : sequence of str, optional
        Default: the seed, the step size and the status of each run.
    key : str
        A history key: "loss", "sigma_min_A", "P_op", ...
    time_axis : bool
        Plot GD runs against the time sum_t eta_t (the flow's time), which lines up step
        sizes: lr * step for a constant lr; for a schedule, the sum over the recorded
        steps of the history's "lr" (the step size at each) times the steps to the next
        record, which is exact when every step is recorded (``record_every=1``).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    results = list(results)
    if labels is None:
        labels = [_label(r) for r in results]
    if len(labels) != len(results):
        raise ValueError(f"labels must give one label per result: {len(labels)} labels for {len(results)} results")
    for result, label in zip(results, labels, strict=True):
        if key not in result.history:
            raise ValueError(f"key must be a history key, one of {', '.join(result.history)}; got {key!r}")
        x, xlabel = _axis(result)
        t = _time(result) if time_axis and hasattr(result, "lr") else x
        (line,) = ax.plot(*_finite(t, result.history[key]), lw=1.3, label=label)
        if result.stages.T0 is not None:
            j = int(np.searchsorted(x, result.stages.T0))
            ax.plot(t[j], result.history[key][j], "o", color=line.get_color(), ms=5)
    if key not in ("sigma_min_A", "lambda_min_P"):
        ax.set_yscale("log")
    ax.set_xlabel("time: sum of the step sizes (lr t for a constant lr)" if time_axis else xlabel)
    ax.set_ylabel(key)
    ax.set_title(f"{key} of {len(results)} runs (dots: T0)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def _finite(x, y):
    if y is None:
        return np.array([]), np.array([])
    keep = np.isfinite(y)
    return x[keep], y[keep]


def _shade(ax, x, T1, T0, labels: bool) -> None:
    edges = [x[0]] + [T for T in (T1, T0) if T is not None] + [x[-1]]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            name = stage_name(lo, T1, T0)
            ax.axvspan(lo, hi, color=_STAGE_COLORS[name], zorder=0, lw=0, label=name if labels else None)


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
