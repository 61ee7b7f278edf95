"""The prescriptions of Ye and Du 2021, written out again from the statements."""

import numpy as np
import pytest

from fastmf import Problem, solve, solve_batch, theory


def test_prescriptions_match_the_statements():
    s, m, n, delta = np.array([3.0, 2.0, 0.5]), 300, 200, 1e-9
    d, s1, sd = 3, 3.0, 0.5
    eps = sd / np.sqrt(d**3 * s1 * (m + n))
    eta = sd * eps**2 / (d * s1**3)
    out = theory.prescriptions(s, m, n, delta)
    assert out["init_scale"] == pytest.approx(eps, rel=1e-14)
    assert out["lr"] == pytest.approx(eta, rel=1e-14)
    assert out["T0"] == pytest.approx(np.log(d * sd / eps**2) / (eta * sd), rel=1e-14)
    # the scale-invariant logarithm ln(d sigma_d / eps^2), as in T0 (Theorem 1.1 prints ln(d sigma_d / eps))
    assert out["T_total"] == pytest.approx((np.log(d * sd / eps**2) + np.log(sd**2 / delta)) / (eta * sd), rel=1e-14)
    assert out["flow_time"] == pytest.approx((np.log(d * sd / eps**2) + np.log(sd**2 / delta)) / sd, rel=1e-14)
    assert out["T_total"] > out["T0"]
    assert out["linear_rate"] == pytest.approx((1 - eta * sd / 2) ** 2, rel=1e-14)
    assert theory.init_scale(s, m, n, c=0.1) == pytest.approx(0.1 * eps)
    assert theory.step_size(s, eps, c=2.0) == pytest.approx(2 * eta)


def test_solve_uses_the_theory_on_request():
    s = np.array([2.0, 1.0])
    p = Problem.from_spectrum(s, 50, 40)
    res = solve(p, 2, "theory", 5, init_scale="theory", seed=0)
    eps = theory.init_scale(s, 50, 40)
    assert res.init_scale == pytest.approx(eps) and res.lr == pytest.approx(theory.step_size(s, eps))
    with pytest.raises(ValueError, match="'theory'"):
        solve(p, 2, 0.1, 5, init_scale="paper")


def test_lemma_3_2_map_and_bound():
    rng = np.random.default_rng(1)
    d = 4
    Sigma = np.diag([2.0, 1.5, 1.2, 1.0])
    lr, beta = 0.5 / (8 * 2.0), 0.5
    for _ in range(50):
        G = rng.standard_normal((d, d))
        S = 0.3 * G @ G.T + 1e-3 * np.eye(d)
        s = np.linalg.eigvalsh(S)[0]
        after = np.linalg.eigvalsh(theory.lemma_3_2_map(S, Sigma, lr))[0]
        assert after >= theory.lemma_3_2_bound(s, 1.0, 2.0, lr, beta) - 1e-14


def test_lemma_hypotheses_are_enforced():
    with pytest.raises(ValueError, match="beta / \\(8 sigma_1\\)"):
        theory.lemma_3_3_bound(-0.1, 1.0, 2.0, 0.1, 0.5)
    with pytest.raises(ValueError, match="beta must be in"):
        theory.lemma_3_3_bound(-0.1, 1.0, 2.0, 0.01, 1.5)
    with pytest.raises(ValueError, match="nonzero singular values"):
        theory.init_scale([1.0, 0.0], 10, 10)


def test_total_time_is_invariant_under_the_scale_and_never_below_T0():
    """T_total and flow_time are unchanged by Sigma -> c Sigma, eps -> sqrt(c) eps, eta -> eta / c,
    delta -> c^2 delta (a loss: the same trajectory); and T_total >= T0
    for s = 1_5, eps = 1e-3, delta = 1e-2 (13.1 < 15.4 with the printed logarithm)."""
    s, eps, delta, lr = np.ones(5), 1e-3, 1e-2, 1e-3
    for c in (1e-4, 1.0, 1e4):
        assert theory.T_total(c * s, lr / c, np.sqrt(c) * eps, c**2 * delta) == pytest.approx(
            theory.T_total(s, lr, eps, delta), rel=1e-12
        )
        assert c * theory.flow_time(c * s, np.sqrt(c) * eps, c**2 * delta) == pytest.approx(
            theory.flow_time(s, eps, delta), rel=1e-12
        )
    assert theory.T_total(s, lr, eps, delta) >= theory.T0(s, lr, eps)


def test_the_stage_two_bounds_hold_along_a_run():
    """The loss's factor after T0 against (1 - eta sigma_d / 2)^2 (not 1 - eta sigma_d / 2), and
    ||E||_op against condition (2), (2/5) sigma_d (1 - eta sigma_d / 2)^(t - T0)."""
    s, lr = np.array([3.0, 2.0, 1.0]), 0.02
    res = solve(Problem.from_spectrum(s, 50, 40), 3, lr, 3000, init_scale=1e-4, seed=0, tol=1e-26)
    st = res.stages
    assert st.rate_theory == pytest.approx((1 - lr / 2) ** 2) and st.rate_theory < 1 - lr / 2
    assert st.rate is not None and st.rate <= st.rate_theory
    after = res.history["step"] >= st.T0
    bound = theory.delta_bound(s, lr, res.history["step"][after], st.T0)
    assert np.all(res.history["E_op"][after] <= bound)
    assert theory.flow_rate(s) == pytest.approx(np.exp(-1.0))


def _tail_factor(res, f_star):
    """The measured per-step factor of f - f* over the last 15% of the records above the rounding
    floor (of the loss, and of the difference with f*)."""
    step, excess = res.history["step"], res.history["loss"] - f_star
    keep = excess > 1e-24 * np.sum(res.problem.s**2) + 1e-10 * f_star
    step, excess = step[keep], excess[keep]
    tail = max(3, step.size * 15 // 100)
    return np.exp(np.polyfit(step[-tail:], np.log(excess[-tail:]), 1)[0])


def _gd_jacobian_factor(Sigma, U, V, lr):
    """(spectral radius)^2 of the Jacobian of plain GD, (U, V) -> (U + lr R V, V + lr R^T U) with
    R = Sigma - U V^T, written out in the original basis, on the modes that move the loss: the
    orthogonal complement of the directions (U C, -V C^T), C k x k, along which U V^T stays put."""
    (m, k), n = U.shape, V.shape[0]
    R = Sigma - U @ V.T
    columns = []
    for e in np.eye((m + n) * k):
        dU, dV = e[: m * k].reshape(m, k), e[m * k :].reshape(n, k)
        dR = -(dU @ V.T + U @ dV.T)
        dU_next, dV_next = dU + lr * (dR @ V + R @ dV), dV + lr * (dR.T @ U + R.T @ dU)
        columns.append(np.concatenate([dU_next.ravel(), dV_next.ravel()]))
    G = np.array(columns).T
    flat = [np.concatenate([(U @ C).ravel(), (-V @ C.T).ravel()]) for C in np.eye(k * k).reshape(k * k, k, k)]
    basis = np.linalg.qr(np.array(flat).T, mode="complete")[0][:, k * k :]
    return np.max(np.abs(np.linalg.eigvals(basis.T @ G @ basis))) ** 2


@pytest.mark.parametrize(
    ("s", "m", "n", "k", "init", "steps", "expected"),
    [
        ([3.0, 2.0, 1.0], 3, 3, 3, 1e-3, 3000, (1 - 2 * 0.02) ** 2),  # principal modes: 2 sigma_d
        ([3.0, 2.0, 1.0], 7, 6, 3, 1e-3, 3000, (1 - 0.02) ** 2),  # the complement: sigma_d
        ([3.0, 2.0, 1.5], 3, 3, 2, 1e-3, 4000, (1 - 0.02 * 0.5) ** 2),  # k < r: sigma_k - sigma_{k+1}
        ([3.0, 2.0, 1.5], 7, 6, 2, 1e-3, 4000, (1 - 0.02 * 0.5) ** 2),
    ],
)
def test_local_rate_is_the_late_factor_and_the_linearization(s, m, n, k, init, steps, expected):
    """local_rate at the final state against the loss's measured late factor, the balanced
    minimum's value (1 - eta h)^2 and the spectral radius of plain GD's Jacobian in NumPy."""
    s, lr = np.array(s), 0.02
    res = solve(Problem.from_spectrum(s, m, n), k, lr, steps, init_scale=init, seed=0, tol=0, spectral_every=0)
    predicted = theory.local_rate(s, lr, res.Up, res.Vp, res.L_U, res.L_V)
    assert 1 - predicted == pytest.approx(1 - expected, rel=1e-3)
    assert 1 - predicted == pytest.approx(1 - _tail_factor(res, 0.5 * np.sum(s[k:] ** 2)), rel=1e-2)
    Sigma = np.zeros((m, n))
    Sigma[: s.size, : s.size] = np.diag(s)
    assert predicted == pytest.approx(_gd_jacobian_factor(Sigma, res.U, res.V, lr), rel=1e-9)
    if k >= s.size:  # the stage-two bound is about k = r; for k < r the gap sigma_k - sigma_{k+1} sets the rate
        assert predicted < theory.linear_rate(s, lr)


def test_local_rate_with_an_extra_direction_is_the_slow_tail():
    """k = r + 1: the extra direction's eigenvalues a, b of U^T U and V^T V are small and the loss
    falls by (1 - eta (a + b))^2 a step, measured from the run itself, far slower than at k = r."""
    s, lr = np.array([3.0, 2.0, 1.0]), 0.02
    res = solve(Problem.from_spectrum(s, 7, 6), 4, lr, 20000, init_scale=3e-2, seed=0, tol=0, spectral_every=0)
    predicted = theory.local_rate(s, lr, res.Up, res.Vp, res.L_U, res.L_V)
    a = np.linalg.eigvalsh(res.U.T @ res.U)[0]
    b = np.linalg.eigvalsh(res.V.T @ res.V)[0]
    assert predicted == pytest.approx((1 - lr * (a + b)) ** 2, rel=1e-12)
    assert 1 - predicted == pytest.approx(1 - _tail_factor(res, 0.0), rel=0.1)
    assert 1 - predicted < 0.01 * (1 - (1 - lr) ** 2)


def test_local_rate_checks_its_arguments():
    with pytest.raises(ValueError, match="Up and Vp must both be len\\(s\\) x k"):
        theory.local_rate([2.0, 1.0], 0.1, np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="L_U and L_V must have k = 2 columns"):
        theory.local_rate([2.0, 1.0], 0.1, np.ones((2, 2)), np.ones((2, 2)), np.ones((1, 3)))


def test_stages_carry_the_local_rate_of_the_final_state():
    """result.stages.rate_local is theory.local_rate of the run's final state, the batch's run
    gives it too, and a variant (no linearization of plain GD applies) has none."""
    problem = Problem.from_spectrum(np.array([3.0, 2.0, 1.0]), 30, 20)
    run = solve(problem, k=3, lr=0.05, max_iter=600, init_scale=1e-4, seed=2)
    assert run.stages.T0 is not None
    expected = theory.local_rate(problem.s, 0.05, run.Up, run.Vp, run.L_U, run.L_V)
    assert run.stages.rate_local == pytest.approx(expected, rel=1e-12)
    assert run.stages.rate_local == pytest.approx((1 - 0.05 * 1.0) ** 2, rel=1e-6)  # the complement's mode, m > d
    batch = solve_batch(problem, k=3, lr=0.05, max_iter=600, init_scale=1e-4, seeds=[2])
    assert batch[0].stages.rate_local == pytest.approx(run.stages.rate_local, rel=1e-9)
    assert solve(problem, k=3, lr=0.05, max_iter=600, init_scale=1e-4, seed=2, balance=1.0).stages.rate_local is None
