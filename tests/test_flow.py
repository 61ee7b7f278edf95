"""Gradient flow against an independent NumPy integration, the closed forms and GD."""

import numpy as np
import pytest
import scipy.integrate

import fastmf
import fastmf._kernels
from fastmf import Problem, gd_flow_gap, gradient_flow, sandwich_bounds, symmetric_solution
from naive import flow, low_rank


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("complement", ["compressed", "full"])
@pytest.mark.parametrize("m, n, r, k", [(12, 9, 2, 3), (8, 15, 3, 2), (10, 10, 10, 10)])
def test_matches_plain_numpy_flow(m, n, r, k, complement):
    rng = np.random.default_rng(m * n + k)
    Sigma = low_rank(rng, m, n, np.geomspace(2.0, 1.0, r))
    U0, V0 = 0.1 * rng.standard_normal((m, k)), 0.1 * rng.standard_normal((n, k))
    U, V = flow(Sigma, U0, V0, 6.0)
    res = gradient_flow(Sigma, k, 6.0, U0=U0, V0=V0, rtol=1e-12, complement=complement)
    assert res.status == "t_max" and res.t == 6.0
    assert _rel(res.U, U) < 1e-8 and _rel(res.V, V) < 1e-8
    np.testing.assert_allclose(res.loss, 0.5 * np.sum((Sigma - U @ V.T) ** 2), rtol=1e-7)


def test_float32_problem_returns_float32_factors():
    rng = np.random.default_rng(6)
    Sigma = low_rank(rng, 12, 9, [2.0, 1.0])
    U0, V0 = 0.1 * rng.standard_normal((12, 2)), 0.1 * rng.standard_normal((9, 2))
    U, V = flow(Sigma, U0, V0, 4.0)
    res = gradient_flow(Sigma.astype(np.float32), 2, 4.0, U0=U0, V0=V0)
    assert res.U.dtype == np.float32 and res.V.dtype == np.float32
    assert _rel(res.U, U) < 1e-5 and _rel(res.V, V) < 1e-5


def test_spectrum_random_start_matches_plain_numpy_flow():
    p = Problem.from_spectrum([2.0, 1.0], 40, 30)
    start = gradient_flow(p, 3, 1e-9, init_scale=0.1, seed=3)  # the start, rebuilt with its drawn W
    res = gradient_flow(p, 3, 5.0, init_scale=0.1, seed=3, rtol=1e-12)
    U, V = flow(p.dense(), start.U, start.V, 5.0)
    assert _rel(res.U, U) < 1e-7 and _rel(res.V, V) < 1e-7


def test_closed_form_of_the_symmetric_flow():
    """U0 = V0 = a0 I on a square diagonal Sigma: sigma_i(U U^T)(t) = s_i(t) (the gradient-flow paper, eq 8)."""
    s = np.geomspace(4.0, 1.0, 20)
    p = Problem.from_spectrum(s, 20, 20)
    a0 = 1e-3
    for t in np.linspace(0.5, 20 / s[-1], 8):
        res = gradient_flow(p, 20, t, U0=a0 * np.eye(20), V0=a0 * np.eye(20), rtol=1e-12)
        ev = np.sort(np.linalg.eigvalsh(res.U @ res.U.T))[::-1]
        np.testing.assert_allclose(ev, np.sort(symmetric_solution(s, a0, t))[::-1], rtol=1e-8)


def test_closed_form_solves_its_ode():
    """s(t) of symmetric_solution satisfies ds/dt = 2 s (sigma - s) and s(0) = a0^2."""
    s, a0, t, h = np.array([3.0, 1.0]), 0.05, np.linspace(0.0, 5.0, 11), 1e-5
    x = symmetric_solution(s, a0, t)
    np.testing.assert_allclose(x[0], a0**2, rtol=1e-14)
    dx = (symmetric_solution(s, a0, t + h) - symmetric_solution(s, a0, t - h)) / (2 * h)
    np.testing.assert_allclose(dx, 2 * x * (s - x), rtol=1e-6, atol=1e-8)  # central differences, h = 1e-5


def test_loewner_sandwich_of_theorem_4():
    rng = np.random.default_rng(4)
    d = 8
    s = np.geomspace(3.0, 1.0, d)
    p = Problem.from_spectrum(s, d, d)
    Q1, Q2 = np.linalg.qr(rng.standard_normal((d, d)))[0], np.linalg.qr(rng.standard_normal((d, d)))[0]
    U0 = (Q1 * np.linspace(0.01, 0.2, d)) @ Q2.T  # singular values in [0.01, 0.2]
    for t in np.linspace(0.0, 8.0, 9):
        res = gradient_flow(p, d, max(t, 1e-9), U0=U0, V0=U0, rtol=1e-12)
        S = res.U @ res.U.T
        lower, upper = sandwich_bounds(s, U0, res.t)
        tol = 1e-9 * s[0]
        assert np.linalg.eigvalsh(S - np.diag(lower)).min() >= -tol
        assert np.linalg.eigvalsh(np.diag(upper) - S).min() >= -tol


def test_the_sandwich_of_a_start_with_fewer_columns_than_rows():
    """A 3 x 2 U0: U0 U0^T is singular, so alpha = 0 and the lower bound is 0 (the smallest
    singular value of U0 as a lower bound is false: by 0.60 at t = 3 here); a U0 whose rows
    are not len(s) is refused."""
    s = np.array([3.0, 2.0, 1.0])
    U0 = 0.1 * np.random.default_rng(0).standard_normal((3, 2))
    res = gradient_flow(Problem.from_spectrum(s, 3, 3), 2, 3.0, U0=U0, V0=U0, rtol=1e-12)
    S = res.U @ res.U.T
    lower, upper = sandwich_bounds(s, U0, res.t)
    np.testing.assert_array_equal(lower, 0.0)
    assert np.linalg.eigvalsh(np.diag(upper) - S).min() >= -1e-9
    false = symmetric_solution(s, np.linalg.svd(U0, compute_uv=False)[-1], res.t)
    assert np.linalg.eigvalsh(S - np.diag(false)).min() < -0.1  # the old lower bound fails here
    with pytest.raises(ValueError, match="U0 must have len"):
        sandwich_bounds(s, np.ones((2, 2)), 1.0)


def test_imbalance_is_conserved_and_gd_converges_to_the_flow_at_first_order():
    rng = np.random.default_rng(5)
    Sigma = low_rank(rng, 30, 20, [2.0, 1.0, 0.5])
    U0, V0 = 0.3 * rng.standard_normal((30, 3)), 0.1 * rng.standard_normal((20, 3))
    res = gradient_flow(Sigma, 3, 10.0, U0=U0, V0=V0, rtol=1e-11)
    D0 = np.linalg.norm(U0.T @ U0 - V0.T @ V0)
    assert res.history["imbalance_drift"].max() < 1e-8 * D0
    np.testing.assert_allclose(res.history["imbalance"], D0, rtol=1e-8)

    eta = 0.02
    out = gd_flow_gap(Sigma, 3, [eta, eta / 2, eta / 4], 4.0, U0=U0, V0=V0)
    gap = out["gap"][:, -1]
    assert np.all(gap > 0)
    ratios = gap[:-1] / gap[1:]
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)  # O(eta) global error


def test_target_loss_stops_the_flow():
    p = Problem.from_spectrum([2.0, 1.0, 0.5], 500, 400)
    res = gradient_flow(p, 3, 200.0, seed=1, target_loss=1e-10)
    assert res.status == "converged" and res.t < 200.0
    assert res.loss == pytest.approx(1e-10, rel=1e-6)
    assert res.history["t"][-1] == res.t and np.all(np.diff(res.history["t"]) > 0)
    assert "target_loss" in res.message


def test_does_not_stall_where_the_flow_is_stiff():
    """An explicit method's loss hovers near (rtol sigma_1)^2 ~ 4e-20 once the flow turns stiff;
    the default integrator keeps it decaying."""
    p = Problem.from_spectrum([2.0, 1.0, 0.5], 300, 200)
    res = gradient_flow(p, 3, 400.0, seed=0, target_loss=1e-28)
    assert res.status == "converged" and res.loss == pytest.approx(1e-28, rel=1e-2)
    stalled = gradient_flow(p, 3, 400.0, seed=0, target_loss=1e-28, ode_method="DOP853")
    assert stalled.status == "t_max" and stalled.loss > 1e-24


def test_huge_spectrum_flow_to_1e_12():
    p = Problem.from_spectrum(np.geomspace(2.0, 1.0, 32), 10**6, 10**6)
    res = gradient_flow(p, 32, 500.0, seed=0, target_loss=1e-12)
    assert res.status == "converged" and res.loss <= 1e-12 * (1 + 1e-6)


def test_n_iter_counts_the_steps_of_the_ode_solver(monkeypatch):
    steps = []
    real = scipy.integrate.RK45.step

    def step(solver):
        steps.append(solver.t)
        return real(solver)

    monkeypatch.setattr(scipy.integrate.RK45, "step", step)
    res = gradient_flow(np.diag([2.0, 1.0, 0.5]), 2, 5.0, seed=0, ode_method="RK45")
    assert res.status == "t_max" and res.n_iter == len(steps) > 10


def test_interrupt_keeps_the_state_reached(monkeypatch):
    real = fastmf._kernels.flow_rhs
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 200:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(fastmf._kernels, "flow_rhs", interrupted)
    p = Problem.from_spectrum([2.0, 1.0], 50, 40)
    res = gradient_flow(p, 2, 50.0, seed=2)
    assert res.status == "interrupted" and 0 < res.t < 50.0
    assert np.all(np.isfinite(res.history["loss"])) and res.history["t"][-1] == res.t
    assert np.all(np.isfinite(res.U))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(t_max=0.0), ValueError, "t_max must be > 0"),
        (dict(ode_method="Euler"), ValueError, "ode_method must be one of"),
        (dict(t_eval=[0.0, 2.0, 1.0]), ValueError, "t_eval must be increasing"),
        (dict(t_eval=[0.0, 20.0]), ValueError, r"inside \[0, t_max"),
        (dict(target_loss=-1.0), ValueError, "target_loss must be >= 0"),
        (dict(rtol=0.0), ValueError, "rtol must be > 0"),
        (dict(k=0), ValueError, "k must be >= 1"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(k=2, t_max=10.0) | kwargs
    with pytest.raises(exc, match=match):
        gradient_flow(np.diag([2.0, 1.0, 0.5]), **args)


def test_target_above_the_converged_level_names_the_level_it_stopped_at():
    # the stop is the lower of target_loss and the converged level 1e-4 * 1/2 ||Sigma||^2 = 5e-5
    p = Problem.from_spectrum(np.array([1.0]), 1, 1)
    start = np.full((1, 1), 1e-3)
    res = gradient_flow(p, 1, 200.0, target_loss=1e-2, U0=start, V0=start)
    assert res.status == "converged" and res.loss == pytest.approx(5e-5, rel=1e-6)
    assert "the converged level 5e-05 (below target_loss 0.01)" in res.message
