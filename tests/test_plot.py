"""Figures: the stage page draws the run's own numbers and marks its stages."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import fastmf  # noqa: E402
from fastmf.plot import plot_run, plot_runs  # noqa: E402

P = fastmf.Problem.from_spectrum(np.array([4.0, 3.0, 2.0, 1.5, 1.0]), 300, 200)


@pytest.fixture(autouse=True)
def close_figures():
    """Every test's figures closed after it: pyplot keeps them, and warns past 20 open."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def run():
    return fastmf.solve(P, 5, 0.05, 2000, seed=0, init_scale=1e-5, tol=1e-24, record_every=5, spectral_every=10)


def test_stage_page_draws_the_history(run, tmp_path):
    fig = plot_run(run)
    axes = fig.axes
    assert len(axes) == 6
    loss_line = axes[0].get_lines()[0]
    np.testing.assert_array_equal(loss_line.get_xdata(), run.history["step"])
    np.testing.assert_array_equal(loss_line.get_ydata(), run.history["loss"])
    T1, T0 = run.stages.T1, run.stages.T0
    assert T1 is not None and T0 is not None and run.stages.T_delta is not None
    vertical = {line.get_xdata()[0] for line in axes[0].get_lines() if np.ptp(line.get_xdata()) == 0}
    assert {T1, T0, run.stages.T_delta} <= vertical
    overlay = axes[0].get_lines()[1]  # the theorem's rate from T0: loss(T0) (1 - lr sigma_d / 2)^(2 (t - T0))
    x, y = overlay.get_xdata(), overlay.get_ydata()
    assert x[0] == T0
    np.testing.assert_allclose(y[-1] / y[0], (1 - 0.05 * 1.0 / 2) ** (2 * (x[-1] - x[0])), rtol=1e-12)
    threshold = axes[1].get_lines()[1].get_ydata()[0]
    assert threshold == pytest.approx(np.sqrt(1.0 / 2))
    spectral = axes[1].get_lines()[0]  # sigma_min_A: only where it was recorded (every 10 steps)
    assert np.all(spectral.get_xdata() % 10 == 0) or spectral.get_xdata()[-1] == run.n_iter
    labels = {text.get_text() for text in axes[0].get_legend().get_texts()}
    assert {"warm-up", "alignment", "linear", "T1", "T0"} <= labels
    fig.savefig(tmp_path / "page.png")
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_flow_page_and_overlay(run):
    flow = fastmf.gradient_flow(P, 5, 40.0, seed=0, init_scale=1e-5)
    fig = plot_run(flow)
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), flow.history["t"])
    assert "imbalance" in fig.axes[4].get_title() and len(fig.axes[4].get_lines()) >= 2  # drift drawn

    other = fastmf.solve(P, 5, 0.025, 4000, seed=1, init_scale=1e-5, record_every=5)
    fig = plot_runs([run, other], time_axis=True)
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(lines[2].get_xdata(), 0.025 * other.history["step"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "seed 0, lr 0.05, converged",
        "seed 1, lr 0.025, max_iter",
    ]
    with pytest.raises(ValueError, match="key must be a history key"):
        plot_runs([run], key="nope")
    with pytest.raises(ValueError, match="one label per result"):
        plot_runs([run, other], labels=["a"])


def test_pages_of_runs_that_recorded_less():
    """A direct-path run (no basis, the loss and the imbalance only), one run of a batch (the
    loss only) and a run without spectral records draw what they have and leave out the rest."""
    noisy = np.random.default_rng(0).standard_normal((60, 40))
    batch = fastmf.solve_batch(P, 5, 0.05, 300, seeds=[0, 1], history=True)
    cases = [
        fastmf.solve(noisy, 3, 0.01, 50, seed=0, method="direct"),
        batch[1],
        fastmf.solve(P, 5, 0.05, 300, seed=0, spectral_every=0),
    ]
    for result in cases:
        axes = plot_run(result).axes
        np.testing.assert_array_equal(axes[0].get_lines()[0].get_ydata(), result.history["loss"])
        drawn = axes[1].get_lines()[0].get_xdata()  # the first line of the panel: sigma_min(A)
        assert (len(drawn) > 0) == ("sigma_min_A" in result.history)
    assert "direct path" in plot_run(cases[0])._suptitle.get_text()
    overlay = plot_runs(batch).axes[0]
    assert any(np.array_equal(line.get_ydata(), batch[1].history["loss"]) for line in overlay.get_lines())


SMALL = fastmf.Problem.from_spectrum(np.array([3.0, 2.0, 1.0]), 50, 40)


def test_variant_page_draws_no_rate_bound(tmp_path):
    """A variant reaching T0 has no stage-two bound (`theory.rate_bound` is None): the page draws
    the loss and, with balance, the regularizer, names the variant and claims no theorem's rate."""
    from fastmf.cli import main

    run = fastmf.solve(SMALL, lr=0.1, balance=0.5, max_iter=300, seed=0)
    assert run.stages.T0 is not None and run.stages.rate_theory is None
    fig = plot_run(run)
    curves = [line for line in fig.axes[0].get_lines() if np.ptp(line.get_xdata()) > 0]
    assert len(curves) == 2  # the loss and the regularizer, no rate line
    np.testing.assert_allclose(curves[1].get_ydata(), 0.5 / 8 * run.history["imbalance"] ** 2, rtol=1e-12)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert not any("theorem" in label for label in labels)
    title = fig._suptitle.get_text()
    assert "balance=0.5" in title and "no bound from the theorem" in title
    assert [t.get_text() for t in plot_runs([run]).axes[0].get_legend().get_texts()] == [
        f"seed 0, lr 0.1, balance=0.5, {run.status}"
    ]
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
    fig = plot_runs([run, *batch, own], time_axis=True)
    curves = [line for line in fig.axes[0].get_lines() if line.get_marker() != "o"]
    for curve in curves[:3]:
        np.testing.assert_allclose(curve.get_xdata(), time, rtol=1e-14)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == f"seed 0, lr StepDecay(lr=0.2, factor=0.5, every=100), {run.status}"
    assert labels[3] == f"seed 0, lr own schedule <lambda>, {own.status}"
    assert "lr StepDecay(lr=0.2" in plot_run(batch[1])._suptitle.get_text()
