"""Figures: the stage page draws the run's own numbers, labelled, windowed and trimmed; overlays
are coloured by the parameter that varies and mark each run's stages; sweeps are drawn per point."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.colors import to_rgba  # noqa: E402

import fastmf  # noqa: E402
from fastmf.plot import plot_run, plot_runs  # noqa: E402

P = fastmf.Problem.from_spectrum(np.array([4.0, 3.0, 2.0, 1.5, 1.0]), 300, 200)
SMALL = fastmf.Problem.from_spectrum(np.array([3.0, 2.0, 1.0]), 50, 40)


@pytest.fixture(autouse=True)
def close_figures():
    """Every test's figures closed after it: pyplot keeps them, and warns past 20 open."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def run():
    return fastmf.solve(P, 5, 0.05, 2000, seed=0, init_scale=1e-5, tol=1e-24, record_every=5, spectral_every=10)


def panel(fig, title: str):
    """The axes of a stage page whose title starts with `title`."""
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(title)]
    return ax


def labelled(ax, text: str):
    """The one line of `ax` whose legend label contains `text`."""
    (line,) = [line for line in ax.get_lines() if text in line.get_label()]
    return line


def curves(ax):
    """The lines of an overlay that are runs' curves (the stage marks are single markers)."""
    return [line for line in ax.get_lines() if line.get_marker() in ("None", "", None)]


def legend_texts(ax) -> list:
    """The texts of every legend of `ax` (it may have two)."""
    return [text.get_text() for child in ax.get_children() if isinstance(child, matplotlib.legend.Legend)
            for text in child.get_texts()]  # fmt: skip


def legend_titled(ax, text: str):
    """The legend of `ax` (it may have two) whose title contains `text`."""
    (legend,) = [child for child in ax.get_children()
                 if isinstance(child, matplotlib.legend.Legend) and text in child.get_title().get_text()]  # fmt: skip
    return legend


def verticals(ax) -> dict:
    """x -> (colour, line style) of the vertical lines of `ax` (the stage marks)."""
    return {line.get_xdata()[0]: (to_rgba(line.get_color()), line.get_linestyle()) for line in ax.get_lines()
            if np.ptp(line.get_xdata()) == 0 and np.ptp(line.get_ydata()) > 0}  # fmt: skip


def test_stage_page_draws_the_history_with_the_papers_bounds(run, tmp_path):
    fig = plot_run(run)
    assert len(fig.axes) == 6
    T1, T0, T_delta = run.stages.T1, run.stages.T0, run.stages.T_delta
    assert T1 is not None and T0 is not None and T_delta is not None
    steps, loss = run.history["step"], run.history["loss"]

    ax = panel(fig, "loss")
    curve = labelled(ax, r"loss $f = \frac{1}{2}\|UV^T - \Sigma\|_F^2$")
    np.testing.assert_array_equal(curve.get_xdata(), steps)
    np.testing.assert_array_equal(curve.get_ydata(), loss)
    assert f"{run.stages.rate:.4g}" in curve.get_label()  # the measured rate, in the legend
    bound = labelled(ax, r"$f(T_0)\,(1 - \eta\sigma_d/2)^{2(t - T_0)}$")  # sigma_d = 1, eta = 0.05
    x, y = bound.get_xdata(), bound.get_ydata()
    assert x[0] == T0
    np.testing.assert_allclose(y, loss[steps == T0][0] * (1 - 0.05 / 2) ** (2 * (x - T0)), rtol=1e-12)

    ax = panel(fig, "principal errors")
    for text in (r"$\|P\|_{op}$", r"$\|E\|_{op}$", r"threshold $\sigma_d/4$"):
        assert labelled(ax, text)
    condition_2 = labelled(ax, r"$\frac{2}{5}\sigma_d\,(1 - \eta\sigma_d/2)^{t - T_0}$")
    x, y = condition_2.get_xdata(), condition_2.get_ydata()
    assert x[0] == T0
    np.testing.assert_allclose(y, 0.4 * 1.0 * (1 - 0.05 / 2) ** (x - T0), rtol=1e-12)
    assert labelled(ax, r"threshold $\sigma_d/4$").get_ydata()[0] == 1.0 / 4

    ax = panel(fig, "signal")
    signal = labelled(ax, r"$\sigma_d(A)$")
    assert np.all(signal.get_xdata()[:-1] % 10 == 0)  # recorded every 10 steps only
    assert labelled(ax, r"threshold $\sqrt{\sigma_d/2}$").get_ydata()[0] == pytest.approx(np.sqrt(1.0 / 2))
    ax = panel(fig, "asymmetry")
    for text in (r"$\|B\|_F$", r"$\|J\|_{op}$", r"$\|K\|_{op}$"):
        assert labelled(ax, text)

    # T1, T0, T_delta on every panel, in three styles, none in a threshold's or the bounds' colour
    for ax in fig.axes:
        marks = verticals(ax)
        assert set(marks) == {T1, T0, T_delta}
        assert len(set(marks.values())) == 3
    others = {to_rgba(line.get_color()) for ax in fig.axes for line in ax.get_lines() if "threshold" in
              line.get_label() or "bound" in line.get_label() or "condition" in line.get_label()}  # fmt: skip
    assert len(others) == 3 and not others & {colour for colour, _ in verticals(fig.axes[0]).values()}
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert any(text.startswith(f"$T_1$ = {T1}") for text in legend)
    assert any(text.startswith(f"$T_0$ = {T0}") and r"\sigma_d/4" in text for text in legend)
    assert any(text.startswith(f"$T_\\delta$ = {T_delta}") for text in legend)
    fig.savefig(tmp_path / "page.png")
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_window_of_steps_and_of_times(run):
    fig = plot_run(run, steps=(200, 400))
    for ax in fig.axes:
        assert ax.get_xlim() == (200, 400)
    x = panel(fig, "loss").get_lines()[0].get_xdata()
    assert x[0] == 195 and x[-1] == 405  # the records inside, and one either side
    inside = run.history["loss"][(run.history["step"] >= 200) & (run.history["step"] <= 400)]
    assert panel(fig, "loss").get_ylim()[0] > 0.01 * inside.min()  # scaled to the window, not the run
    flow = fastmf.gradient_flow(SMALL, 3, 30.0, seed=0, init_scale=1e-5)
    assert plot_run(flow, time=(5, 15)).axes[0].get_xlim() == (5, 15)

    with pytest.raises(ValueError, match=r"time= does not apply: this figure's x-axis is step; pass steps="):
        plot_run(run, time=(0, 1))
    with pytest.raises(ValueError, match=r"steps= does not apply: this figure's x-axis is time; pass time="):
        plot_run(flow, steps=(0, 1))
    with pytest.raises(ValueError, match="holds no record"):
        plot_run(run, steps=(5000, 6000))
    with pytest.raises(ValueError, match="finite a < b"):
        plot_run(run, steps=(400, 200))


def test_a_run_long_past_convergence_is_trimmed_after_its_floor():
    """Run ten times longer than it needs, the loss sits at the rounding floor for 90% of the
    steps: the page ends shortly after the floor is reached, shows T_delta, and says so."""
    long = fastmf.solve(SMALL, lr=0.1, max_iter=3000, seed=0, init_scale=1e-5, delta=1e-10, record_every=1)
    loss = long.history["loss"]
    floor = np.flatnonzero(loss > 10 * loss[-1])[-1] + 1  # from this step on, within 10x of the final loss
    assert floor < 0.2 * long.n_iter  # the flat tail is most of the run
    fig = plot_run(long)
    end = fig.axes[0].get_xlim()[1]
    assert floor <= end <= 2 * floor and long.stages.T_delta <= end
    assert "drawn up to step" in fig._suptitle.get_text() and "steps=(a, b)" in fig._suptitle.get_text()
    whole = plot_run(long, steps=(0, 3000))
    assert whole.axes[0].get_xlim() == (0, 3000) and "drawn up to" not in whole._suptitle.get_text()

    # a loss flat because the run is still in its warm-up is not at a floor: nothing trimmed
    early = fastmf.solve(SMALL, lr=0.1, max_iter=60, seed=0, init_scale=1e-5, record_every=1)
    assert early.stages.T1 is None and np.all(early.history["loss"] <= 10 * early.loss)  # "flat" from step 0
    fig = plot_run(early)
    assert fig.axes[0].get_xlim()[1] == 60 and "drawn up to" not in fig._suptitle.get_text()

    overlay = plot_runs([long, fastmf.solve(SMALL, lr=0.1, max_iter=2000, seed=1, init_scale=1e-5)]).axes[0]
    assert overlay.get_xlim()[1] <= 2 * floor and "drawn up to step" in overlay.get_title()


def test_runs_coloured_by_the_parameter_that_varies_with_their_stages_marked():
    runs = [fastmf.solve(SMALL, lr=lr, max_iter=600, seed=seed, init_scale=1e-5, delta=1e-8)
            for lr in (0.05, 0.1) for seed in (0, 1)]  # fmt: skip
    ax = plot_runs(runs).axes[0]
    colours = [to_rgba(line.get_color()) for line in curves(ax)]
    assert colours[0] == colours[1] != colours[2] == colours[3]  # lr 0.05, 0.05, 0.1, 0.1
    legend = legend_titled(ax, r"$\eta$")
    assert [text.get_text() for text in legend.get_texts()] == ["0.05", "0.1"]
    assert [to_rgba(line.get_color()) for line in legend.legend_handles] == [colours[0], colours[2]]
    for name, marker in (("T1", "^"), ("T0", "o"), ("T_delta", "s")):
        marks = [line for line in ax.get_lines() if line.get_marker() == marker]
        expected = [getattr(run.stages, name) for run in runs]
        assert [line.get_xdata()[0] for line in marks] == expected
        heights = [run.history["loss"][run.history["step"] == T][0] for run, T in zip(runs, expected, strict=True)]
        np.testing.assert_allclose([line.get_ydata()[0] for line in marks], heights, rtol=1e-12)
        assert [to_rgba(line.get_color()) for line in marks] == colours
    by_seed = [to_rgba(line.get_color()) for line in curves(plot_runs(runs, by="seed").axes[0])]
    assert by_seed[0] == by_seed[2] != by_seed[1] == by_seed[3]
    with pytest.raises(ValueError, match="by must be one of"):
        plot_runs(runs, by="colour")


def test_batches_are_drawn_run_by_run_and_need_their_history():
    batch = fastmf.solve_batch(SMALL, lr=0.1, max_iter=300, seeds=range(4), init_scale=1e-5, delta=1e-8, history=True)
    ax = plot_runs(batch).axes[0]
    assert len({to_rgba(line.get_color()) for line in curves(ax)}) == 4  # only the seed varies
    legend = legend_titled(ax, "seed")
    assert [text.get_text() for text in legend.get_texts()] == ["0", "1", "2", "3"]
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_marker() == "o"] == list(batch.T0)
    many = fastmf.solve_batch(SMALL, lr=0.1, max_iter=200, seeds=range(12), init_scale=1e-5, history=True)
    fig = plot_runs(many)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "seed"  # past 10 values, a colour bar
    with pytest.raises(ValueError, match=r"solve_batch\(\.\.\., history=True\)"):
        plot_runs(fastmf.solve_batch(SMALL, lr=0.1, max_iter=50, seeds=[0, 1]))


@pytest.fixture(scope="module")
def sweep_table(tmp_path_factory):
    """A sweep's table written as `fastmf.sweep` writes it (its tasks run here, without Dask):
    lr varies, max_iter with it (no series of its own), kappa across two series."""
    from fastmf.sweeps import COLUMNS, SweepResult, grid_points, run_task
    from fastmf.table import open_table

    common = {"m": 30, "d": 3, "kappa": [2, 4], "init_scale": 1e-5, "tol": 1e-12, "seeds": 3}
    grid = [common | {"lr": lr, "max_iter": int(60 / lr)} for lr in (0.025, 0.05, 0.1)]
    path = str(tmp_path_factory.mktemp("sweep") / "sweep.csv")
    table = open_table(path, COLUMNS, resume=False)
    for point, seeds in grid_points(grid):
        table.append(run_task(point, seeds))
    return SweepResult(output=path, status="done", message="", runs=18, ran=18, skipped=0, failed=0)


def test_sweep_stage_steps_and_final_loss_against_the_varying_parameter(sweep_table, tmp_path):
    from fastmf.cli import main

    columns = sweep_table.table()
    fig = plot_runs(sweep_table)
    steps_ax, loss_ax = fig.axes
    assert r"$\eta$" in steps_ax.get_xlabel() and r"$\eta$" in loss_ax.get_xlabel()
    for kappa in (2.0, 4.0):
        rows = columns["kappa"] == kappa
        for name, symbol, ax in (("T1", "$T_1$", steps_ax), ("T_delta", r"$T_\delta$", steps_ax),
                                 ("final_loss", "final loss", loss_ax)):  # fmt: skip
            (median,) = [line for line in ax.get_lines() if line.get_label().startswith(symbol)
                         and line.get_label().endswith(f"$\\kappa$ = {kappa:g}")]  # fmt: skip
            np.testing.assert_array_equal(median.get_xdata(), [0.025, 0.05, 0.1])
            expected = [np.median(columns[name][rows & (columns["lr"] == lr)]) for lr in (0.025, 0.05, 0.1)]
            np.testing.assert_allclose(median.get_ydata(), expected, rtol=1e-12)
    assert not any("max_iter" in line.get_label() for line in steps_ax.get_lines())  # tied to lr: no series
    for same in (columns, sweep_table.output):  # its table's columns and its file draw the same
        lines = plot_runs(same).axes[0].get_lines()
        assert [line.get_label() for line in lines] == [line.get_label() for line in steps_ax.get_lines()]
    by_kappa = plot_runs(sweep_table, by="kappa").axes[0]
    assert "kappa" in by_kappa.get_xlabel()
    assert any(line.get_label().endswith(r"$\eta$ = 0.05") for line in by_kappa.get_lines())
    assert main(["plot", sweep_table.output, "-o", str(tmp_path / "sweep.png")]) == 0
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_sweep_stages_not_reached_are_counted_not_drawn():
    table = {"seed": np.arange(6), "lr": np.repeat([0.1, 0.2], 3), "T1": np.arange(6.0), "T0": np.arange(6.0) + 1,
             "T_delta": np.array([5, np.nan, 7, 4, 6, 8.0]), "final_loss": np.full(6, 1e-9)}  # fmt: skip
    fig = plot_runs(table)
    (median,) = [line for line in fig.axes[0].get_lines() if line.get_label().startswith(r"$T_\delta$")]
    np.testing.assert_array_equal(median.get_ydata(), [6, 6])  # the runs that reached it
    assert median.get_label().endswith("(not reached in 1 of 6 runs)")
    import matplotlib.pyplot as plt

    with pytest.raises(ValueError, match="ax must be a pair of Axes for a sweep"):
        plot_runs(table, ax=plt.figure().subplots())


def test_cli_window(tmp_path, monkeypatch, capsys):
    from fastmf import plot
    from fastmf.cli import main

    fastmf.solve(SMALL, lr=0.1, max_iter=400, seed=0, init_scale=1e-5).save(tmp_path / "r.npz")
    drawn = []
    monkeypatch.setattr(plot, "plot_run", lambda *a, **k: drawn.append(plot_run(*a, **k)) or drawn[-1])
    assert main(["plot", str(tmp_path / "r.npz"), "--steps", "100,200", "-o", str(tmp_path / "r.png")]) == 0
    assert drawn[0].axes[0].get_xlim() == (100, 200)
    with pytest.raises(SystemExit, match="2"):
        main(["plot", str(tmp_path / "r.npz"), "--steps", "200,100"])
    assert "--steps: must be A,B with finite A < B" in capsys.readouterr().err


def test_flow_page_and_overlay(run):
    flow = fastmf.gradient_flow(P, 5, 40.0, seed=0, init_scale=1e-5)
    fig = plot_run(flow)
    np.testing.assert_array_equal(panel(fig, "loss").get_lines()[0].get_xdata(), flow.history["t"])
    assert labelled(panel(fig, "loss"), r"$f(T_0)\,e^{-\sigma_d (t - T_0)}$")
    assert len(panel(fig, "imbalance").get_lines()) >= 2  # the drift drawn

    other = fastmf.solve(P, 5, 0.025, 4000, seed=1, init_scale=1e-5, record_every=5)
    fig = plot_runs([run, other], time_axis=True)
    lines = curves(fig.axes[0])
    np.testing.assert_allclose(lines[1].get_xdata(), 0.025 * other.history["step"])
    assert "sum_{s<t}" in fig.axes[0].get_xlabel()
    assert [t.get_text() for t in legend_titled(fig.axes[0], "stage marks").get_texts()][0].startswith("$T_1$")
    assert legend_texts(plot_runs([run, other], ["a", "b"]).axes[0])[:2] == ["a", "b"]
    with pytest.raises(ValueError, match="key must be a history key"):
        plot_runs([run], key="nope")
    with pytest.raises(ValueError, match="one label per result"):
        plot_runs([run, other], labels=["a"])


def test_pages_of_runs_that_recorded_less():
    """A direct-path run (no basis, the loss and the imbalance only), one run of a batch (the
    loss only) and a run without spectral records draw the panels they have, no empty ones."""
    noisy = np.random.default_rng(0).standard_normal((60, 40))
    batch = fastmf.solve_batch(P, 5, 0.05, 300, seeds=[0, 1], history=True)
    direct = fastmf.solve(noisy, 3, 0.01, 50, seed=0, method="direct")
    cases = [
        (direct, ["loss", "imbalance"]),
        (batch[1], ["loss"]),
        (fastmf.solve(P, 5, 0.05, 300, seed=0, spectral_every=0), ["loss", "asymmetry", "imbalance", "the"]),
    ]
    for result, titles in cases:
        fig = plot_run(result)
        assert sorted(ax.get_title().split()[0].rstrip(",") for ax in fig.axes) == sorted(titles)
        np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), result.history["loss"])
        assert all(ax.get_lines() for ax in fig.axes)
    assert "direct path" in plot_run(direct)._suptitle.get_text()
    overlay = plot_runs(batch).axes[0]
    assert any(np.array_equal(line.get_ydata(), batch[1].history["loss"]) for line in curves(overlay))


def test_variant_page_draws_no_rate_bound(tmp_path):
    """A variant reaching T0 has no stage-two bound (`theory.rate_bound` is None): the page draws
    the loss and, with balance, the regularizer, names the variant and claims no theorem's rate."""
    from fastmf.cli import main

    run = fastmf.solve(SMALL, lr=0.1, balance=0.5, max_iter=300, seed=0)
    assert run.stages.T0 is not None and run.stages.rate_theory is None
    fig = plot_run(run)
    lines = [line for line in fig.axes[0].get_lines() if np.ptp(line.get_xdata()) > 0]
    assert len(lines) == 2  # the loss and the regularizer, no bound
    np.testing.assert_allclose(lines[1].get_ydata(), 0.5 / 8 * run.history["imbalance"] ** 2, rtol=1e-12)
    assert r"$\frac{0.5}{8}\|U^TU - V^TV\|_F^2$" in lines[1].get_label()
    assert not any("bound" in line.get_label() or "condition" in line.get_label() for ax in fig.axes
                   for line in ax.get_lines())  # fmt: skip
    title = fig._suptitle.get_text()
    assert "balance=0.5" in title and "no stage-two bound drawn" in title
    assert "balance=0.5" in plot_runs([run]).axes[0].get_title()
    run.save(tmp_path / "pb.npz")
    assert main(["plot", str(tmp_path / "pb.npz"), "-o", str(tmp_path / "pb.png")]) == 0
    assert (tmp_path / "pb.png").stat().st_size > 10_000


def test_schedule_runs_overlay_against_summed_step_sizes():
    """A schedule labels a run by its repr, and the time axis is sum_{s < t} eta_s (every step recorded)."""
    schedule = fastmf.schedules.StepDecay(0.2, 0.5, 100)
    steps = np.arange(301)
    eta = 0.2 * 0.5 ** (steps // 100)
    time = np.concatenate([[0.0], np.cumsum(eta[:-1])])
    run = fastmf.solve(SMALL, lr=schedule, max_iter=300, seed=0, record_every=1)
    batch = fastmf.solve_batch(SMALL, lr=schedule, max_iter=300, seeds=[0, 1], record_every=1, history=True)
    own = fastmf.solve(SMALL, lr=lambda t: 0.1 + 0 * t, max_iter=30, seed=0)
    fig = plot_runs([run, *batch, own], time_axis=True, time=(0, 40))
    for curve in curves(fig.axes[0])[:3]:
        np.testing.assert_allclose(curve.get_xdata(), time, rtol=1e-14)
    legend = legend_titled(fig.axes[0], r"$\eta$")
    assert [t.get_text() for t in legend.get_texts()] == ["StepDecay(lr=0.2, factor=0.5, every=100)",
                                                          "own schedule <lambda>"]  # fmt: skip
    assert "lr StepDecay(lr=0.2" in plot_run(batch[1])._suptitle.get_text()
