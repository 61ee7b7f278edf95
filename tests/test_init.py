"""Initial states: exact splits of a given start, and the distribution of sampled ones."""

import numpy as np
import pytest
import scipy.stats

from fastmf import Problem, solve
from fastmf.init import bartlett, split
from naive import low_rank


def test_bartlett_factor_has_the_wishart_distribution():
    """R^T R for R = bartlett(rows, k) must be distributed as G^T G, G rows x k Gaussian."""
    rng = np.random.default_rng(0)
    rows, k, draws = 40, 4, 20000
    R = np.array([bartlett(rng, rows, k) for _ in range(draws)])
    assert np.all(np.triu(R) == R) and np.all(np.diagonal(R, axis1=1, axis2=2) > 0)
    gram = np.einsum("nij,nik->njk", R, R)
    # Wishart(rows, I): mean rows * I, entry variance rows * (1 + delta_jk)
    se = np.sqrt(rows * (1 + np.eye(k)) / draws)
    assert np.all(np.abs(gram.mean(axis=0) - rows * np.eye(k)) < 5 * se)
    for i in range(k):  # R_ii^2 ~ chi^2 with rows - i degrees of freedom
        assert scipy.stats.kstest(R[:, i, i] ** 2, scipy.stats.chi2(rows - i).cdf).pvalue > 1e-3


def test_spectrum_start_is_iid_gaussian():
    """U0 rebuilt from (Up, Bartlett L, Haar W) has iid N(0, eps^2) entries."""
    eps = 0.01
    p = Problem.from_spectrum([2.0, 1.0], 3000, 2000)
    start = solve(p, 3, 0.1, 0, init_scale=eps, seed=4)
    for F in (start.U, start.V):
        assert scipy.stats.kstest(F.ravel() / eps, "norm").pvalue > 1e-3
        # columns are independent: their Gram is close to dim * eps^2 * I
        gram = F.T @ F / (F.shape[0] * eps**2)
        assert np.all(np.abs(gram - np.eye(3)) < 6 / np.sqrt(F.shape[0]))


def test_dense_start_is_the_documented_gaussian_draw():
    Sigma = low_rank(np.random.default_rng(1), 50, 40, [2.0, 1.0])
    start = solve(Sigma, 3, 0.1, 0, init_scale=0.2, seed=9)
    init = np.random.SeedSequence(9).spawn(3)[0]
    rng = np.random.default_rng(init)
    U0, V0 = 0.2 * rng.standard_normal((50, 3)), 0.2 * rng.standard_normal((40, 3))
    np.testing.assert_allclose(start.U, U0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(start.V, V0, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("m, r, k", [(30, 3, 4), (6, 3, 4), (5, 5, 2)])
@pytest.mark.parametrize("kind", ["dense", "spectrum"])
def test_split_is_exact_and_orthogonal(m, r, k, kind):
    rng = np.random.default_rng(m * r * k)
    if kind == "dense":
        p = Problem(low_rank(rng, m, m + 2, np.arange(r, 0, -1.0)))
    else:
        p = Problem.from_spectrum(np.arange(r, 0, -1.0), m, m + 2)
    U = rng.standard_normal((m, k))
    f = split(p.left, U, "compressed", np.float64)
    assert f.L.shape == (min(k, m - r), k)
    W = f.W
    np.testing.assert_allclose(W.T @ W, np.eye(W.shape[1]), atol=1e-12)
    np.testing.assert_allclose(p.left.coords(W), 0, atol=1e-12)  # W is orthogonal to Phi
    np.testing.assert_allclose(p.left.lift(f.principal) + W @ f.L, U, atol=1e-12)
