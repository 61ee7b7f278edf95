"""The prescriptions of Ye and Du 2021, written out again from the statements."""

import numpy as np
import pytest

from fastmf import Problem, solve, theory


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
    assert out["T_total"] == pytest.approx((np.log(d * sd / eps**2) + np.log(sd / delta)) / (eta * sd), rel=1e-14)
    assert out["flow_time"] == pytest.approx((np.log(d * sd / eps**2) + np.log(sd / delta)) / sd, rel=1e-14)
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
    delta -> c delta (ln(sigma_d / delta) takes delta in the units of sigma); and T_total >= T0
    for s = 1_5, eps = 1e-3, delta = 1e-2 (13.1 < 15.4 with the printed logarithm)."""
    s, eps, delta, lr = np.ones(5), 1e-3, 1e-2, 1e-3
    for c in (1e-4, 1.0, 1e4):
        assert theory.T_total(c * s, lr / c, np.sqrt(c) * eps, c * delta) == pytest.approx(
            theory.T_total(s, lr, eps, delta), rel=1e-12
        )
        assert c * theory.flow_time(c * s, np.sqrt(c) * eps, c * delta) == pytest.approx(
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
