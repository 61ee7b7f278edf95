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
    assert out["T_total"] == pytest.approx((np.log(d * sd / eps) + np.log(sd / delta)) / (eta * sd), rel=1e-14)
    assert out["flow_time"] == pytest.approx((np.log(d * sd / eps) + np.log(sd / delta)) / sd, rel=1e-14)
    assert out["linear_rate"] == pytest.approx(1 - eta * sd / 2, rel=1e-14)
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
