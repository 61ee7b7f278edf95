"""fastmf.schedules: the step sizes each schedule gives (from its formula), their checks, and
how a run's schedule is saved and given back."""

import numpy as np
import pytest

import fastmf
from fastmf import schedules

T = np.arange(0, 50, 7)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (schedules.Constant(0.2), 0.2 + 0 * T),
        (schedules.InverseSqrt(0.2, 10), 0.2 / np.sqrt(1 + T / 10)),
        (schedules.StepDecay(0.2, 0.5, 20), 0.2 * 0.5 ** np.floor(T / 20)),
        (schedules.Warmup(0.2, 25), 0.2 * np.minimum(1, (T + 1) / 25)),
    ],
)
def test_each_schedule_gives_its_formula_and_comes_back_from_its_description(schedule, expected):
    np.testing.assert_allclose(schedule(T), expected, rtol=1e-15)
    assert schedules.from_dict(schedule.to_dict()) == schedule
    assert schedules.from_json(schedules.to_json(schedule)) == schedule


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda t: 0.1 + 1j + 0 * t, "real numbers"),
        (lambda t: "0.1", "real numbers"),
        (lambda t: t >= 0, "real numbers"),
        (lambda t: np.ones(3), "one step size per step"),
        (lambda t: 0.1 - 0.1 * (t > 2), "at step 3"),
        (lambda t: np.where(t == 2, np.nan, 0.1), "at step 2"),
        (lambda t: t.nonexistent, "failed on an array of steps"),
    ],
)
def test_a_bad_schedule_is_refused_with_the_step_it_failed_at(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        fastmf.solve(fastmf.Problem.from_spectrum([2.0, 1.0], 10, 8), lr=bad, max_iter=5, seed=0)


def test_a_scalar_from_a_schedule_serves_every_step():
    np.testing.assert_array_equal(schedules.values(lambda t: 0.1, T), np.full(T.shape, 0.1))


def test_a_batch_takes_one_schedule_for_all_its_runs():
    problem = fastmf.Problem.from_spectrum([2.0, 1.0], 10, 8)
    with pytest.raises(TypeError, match="one schedule serves every run"):
        fastmf.solve_batch(problem, lr=[schedules.Constant(0.1)] * 2, seeds=[0, 1], max_iter=3)


def test_a_saved_custom_schedule_must_be_given_again_and_match():
    steps, taken = np.array([0, 5, 10]), np.array([0.1, 0.1 / 1.5, 0.05])
    own = lambda t: 0.1 / (1 + np.asarray(t) / 10)  # noqa: E731
    saved = schedules.Custom("own")
    assert schedules.again(saved, own, steps, taken) is own
    with pytest.raises(ValueError, match="pass it again"):
        schedules.again(saved, None, steps, taken)
    with pytest.raises(ValueError, match="gives 0.10000000000000001 at step 5"):
        schedules.again(saved, lambda t: 0.1 + 0 * t, steps, taken)
    built_in = schedules.InverseSqrt(0.1, 10)
    assert schedules.again(built_in, None, steps, taken) is built_in
    with pytest.raises(ValueError, match="drop lr"):
        schedules.again(built_in, own, steps, taken)


def test_theory_outside_names_what_departs_from_the_theorems():
    problem = fastmf.Problem.from_spectrum([2.0, 1.0], 10, 8)
    assert fastmf.theory.outside(fastmf.solve(problem, max_iter=2, seed=0).options) == []
    run = fastmf.solve(problem, lr=schedules.Warmup(0.1, 5), max_iter=2, seed=0, balance=1.0, noise=1e-6)
    assert len(fastmf.theory.outside(run.options)) == 3 and run.stages.rate_theory is None
    flow = fastmf.gradient_flow(problem, t_max=0.5, seed=0, init="balanced")
    assert fastmf.theory.outside(flow.options) == ["a balanced start (the theorems draw U0 and V0 independently)"]
