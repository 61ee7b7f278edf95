"""GradientDescentMF: scikit-learn's own estimator checks, and the factorization it fits."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmf  # noqa: E402
from fastmf import GradientDescentMF  # noqa: E402
from naive import low_rank  # noqa: E402


@parametrize_with_checks([GradientDescentMF()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_fit_is_solve_and_recovers_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    X = low_rank(rng, 80, 50, np.array([5.0, 3.0, 2.0]))
    est = GradientDescentMF(3, random_state=4, tol=1e-24, record_every=1)
    U = est.fit_transform(X)
    res = fastmf.solve(X, 3, 0.25 / 5.0, 10_000, seed=4, tol=1e-24 * 0.5 * np.sum(X**2), spectral_every=0)
    np.testing.assert_allclose(est.components_, res.V.T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(U, res.U, rtol=1e-12, atol=1e-15)
    assert est.n_iter_ == res.n_iter < 10_000 and est.status_ == "converged"
    np.testing.assert_allclose(U @ est.components_, X, atol=1e-10)
    assert est.reconstruction_err_ == pytest.approx(np.linalg.norm(X - U @ est.components_), rel=1e-3, abs=1e-11)
    np.testing.assert_allclose(est.transform(X), U, atol=1e-8)
    np.testing.assert_allclose(est.inverse_transform(U), X, atol=1e-10)
    assert list(est.get_feature_names_out()) == ["gradientdescentmf0", "gradientdescentmf1", "gradientdescentmf2"]


def test_fewer_components_give_the_best_low_rank_approximation():
    """Eckart-Young, from an SVD that shares nothing with the estimator."""
    rng = np.random.default_rng(1)
    X = low_rank(rng, 40, 30, np.array([4.0, 3.0, 1.0, 0.5]))
    U = GradientDescentMF(2, random_state=0, max_iter=20_000).fit_transform(X.astype(np.float32))
    W, s, Vt = np.linalg.svd(X)
    best = (W[:, :2] * s[:2]) @ Vt[:2]
    assert U.dtype == np.float32
    est = GradientDescentMF(2, random_state=0, max_iter=20_000).fit(X)
    np.testing.assert_allclose(est.transform(X) @ est.components_, best, atol=1e-8)
    assert est.reconstruction_err_ == pytest.approx(np.sqrt(s[2] ** 2 + s[3] ** 2), rel=1e-10)
    assert est.stages_.T1 is not None


def test_in_a_pipeline_and_bad_parameters():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 6))
    Z = make_pipeline(StandardScaler(), GradientDescentMF(3, random_state=0)).fit_transform(X)
    assert Z.shape == (30, 3)
    with pytest.raises(ValueError, match="n_components=9 must be at most"):
        GradientDescentMF(9).fit(X)
    with pytest.raises(ValueError, match="lr must be > 0"):
        GradientDescentMF(2, lr=-1.0).fit(X)
    with pytest.raises(ValueError, match="all zeros"):
        GradientDescentMF(2).fit(np.zeros((5, 4)))
