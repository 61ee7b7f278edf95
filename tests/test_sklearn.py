"""GradientDescentMF: scikit-learn's own estimator checks, the factorization it fits, its stopping
rule, its warnings, sparse input and score."""

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import scipy.sparse  # noqa: E402
from sklearn.decomposition import TruncatedSVD  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmf  # noqa: E402
from fastmf import GradientDescentMF  # noqa: E402
from naive import gd, low_rank  # noqa: E402


@parametrize_with_checks([GradientDescentMF()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def stop_step(losses, tol, every):
    """The step where the documented rule stops GD whose loss at every step is `losses`: the first
    check (every `every` steps) whose gain (previous check's loss - loss) / loss_0 lies in [0, tol),
    once an earlier check has gained at least tol; None if there is none."""
    armed = False
    for t in range(every, losses.size, every):
        gain = (losses[t - every] - losses[t]) / losses[0]
        if armed and 0 <= gain < tol:
            return t
        armed = armed or gain >= tol
    return None


def low_rank_plus_noise(rng, m, n, s):
    return low_rank(rng, m, n, s) + rng.standard_normal((m, n))


def test_stops_on_relative_improvement_as_plain_gd_would():
    """The fit is plain GD from solve's start, stopped by the documented rule, well before max_iter."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 60))
    lr, scale, tol = 0.3 / np.linalg.norm(X, 2), 0.05, 1e-4
    est = GradientDescentMF(4, lr=lr, init_scale=scale, tol=tol, random_state=7).fit(X)
    start = fastmf.solve(X, 4, lr, 0, init_scale=scale, seed=7, method="direct")
    losses, _, _, _ = gd(X, start.U, start.V, lr, 2000)
    t = stop_step(losses, tol, 10)
    assert est.status_ == "converged" and est.n_iter_ == t < 2000 // 5
    np.testing.assert_allclose(est.history_["step"], np.arange(0, t + 1, 10))
    np.testing.assert_allclose(est.history_["loss"], losses[: t + 1 : 10], rtol=1e-9)
    _, _, _, V = gd(X, start.U, start.V, lr, t)
    np.testing.assert_allclose(est.components_, V.T, rtol=1e-7, atol=1e-10)


def test_deterministic_and_one_run():
    """The same random_state gives the same bits; the chunked fit is one solve() run of n_iter_ steps."""
    rng = np.random.default_rng(1)
    X = low_rank_plus_noise(rng, 150, 80, [40.0, 30.0, 20.0])
    first = GradientDescentMF(3, random_state=5).fit(X)
    second = GradientDescentMF(3, random_state=5).fit(X)
    np.testing.assert_array_equal(first.components_, second.components_)
    assert first.n_iter_ == second.n_iter_ < first.max_iter_
    lr, scale = first.lr_, first.init_scale_
    one = fastmf.solve(X, 3, lr, first.n_iter_, init_scale=scale, seed=5, method="direct")
    np.testing.assert_array_equal(first.components_, one.V.T)


def test_warm_up_does_not_stop_the_fit():
    """From a tiny start the loss barely moves for many checks; the fit must go on to the optimum."""
    rng = np.random.default_rng(2)
    X = low_rank_plus_noise(rng, 120, 70, [60.0, 40.0])
    est = GradientDescentMF(2, init_scale=1e-9, random_state=0).fit(X)
    loss = est.history_["loss"]
    assert est.n_iter_ > 30 and (loss[0] - loss[3]) / loss[0] < est.tol  # three checks of warm-up
    s = np.linalg.svd(X, compute_uv=False)
    assert est.reconstruction_err_ == pytest.approx(np.sqrt(np.sum(s[2:] ** 2)), rel=1e-4)


def test_error_of_low_rank_plus_noise_is_near_the_optimum():
    """Within 0.2% of sqrt(sum of the discarded s_i^2) with the defaults; with a smaller tol, closer
    to it than TruncatedSVD gets (the 5th and 6th singular values here are 34.5 and 33.2)."""
    rng = np.random.default_rng(3)
    X = low_rank_plus_noise(rng, 400, 200, np.arange(5, 0, -1) * np.sqrt(400))
    s = np.linalg.svd(X, compute_uv=False)
    best = np.sqrt(np.sum(s[5:] ** 2))
    tsvd = TruncatedSVD(5, algorithm="randomized", random_state=0)
    tsvd_err = np.linalg.norm(X - tsvd.fit_transform(X) @ tsvd.components_)
    est = GradientDescentMF(5, random_state=0).fit(X)
    U = est.transform(X)
    assert est.reconstruction_err_ == pytest.approx(np.linalg.norm(X - U @ est.components_), rel=1e-12)
    assert best <= est.reconstruction_err_ <= best * (1 + 2e-3)
    tight = GradientDescentMF(5, tol=1e-6, random_state=0).fit(X)
    assert best <= tight.reconstruction_err_ <= min(best * (1 + 2e-5), tsvd_err)


def test_recovers_a_low_rank_matrix_in_both_dtypes():
    rng = np.random.default_rng(4)
    X = low_rank(rng, 80, 50, np.array([5.0, 3.0, 2.0]))
    for dtype, atol in ((np.float64, 1e-8), (np.float32, 1e-4)):
        est = GradientDescentMF(3, tol=1e-15, random_state=4)
        U = est.fit_transform(X.astype(dtype))
        assert U.dtype == est.components_.dtype == dtype and est.status_ == "converged"
        np.testing.assert_allclose(U @ est.components_, X, atol=atol)
        np.testing.assert_allclose(est.inverse_transform(U), X, atol=atol)
    assert list(est.get_feature_names_out()) == ["gradientdescentmf0", "gradientdescentmf1", "gradientdescentmf2"]


def test_fewer_components_give_the_best_low_rank_approximation():
    """Eckart-Young, from an SVD that shares nothing with the estimator."""
    rng = np.random.default_rng(1)
    X = low_rank(rng, 40, 30, np.array([4.0, 3.0, 1.0, 0.5]))
    est = GradientDescentMF(2, tol=1e-15, random_state=0).fit(X)
    W, s, Vt = np.linalg.svd(X)
    np.testing.assert_allclose(est.transform(X) @ est.components_, (W[:, :2] * s[:2]) @ Vt[:2], atol=1e-7)
    assert est.reconstruction_err_ == pytest.approx(np.sqrt(s[2] ** 2 + s[3] ** 2), rel=1e-10)


def test_max_iter_warns():
    X = np.random.default_rng(5).standard_normal((60, 40))
    with pytest.warns(ConvergenceWarning, match="stopped at max_iter=25 before the loss improved"):
        est = GradientDescentMF(3, max_iter=25, random_state=0).fit(X)
    assert est.status_ == "max_iter" and est.n_iter_ == 25 and est.history_["step"][-1] == 25


def test_divergence_warns_with_the_stable_range():
    X = np.random.default_rng(6).standard_normal((60, 40))
    bound = 1 / (3 * np.linalg.norm(X, 2))
    with pytest.warns(ConvergenceWarning, match=rf"diverged .* exceeds .* = {bound:.4g}: pass a smaller lr"):
        est = GradientDescentMF(3, lr=10, random_state=0).fit(X)
    assert est.status_ == "diverged" and est.n_iter_ < est.max_iter_
    # within the stable range the advice is about the start, not lr
    with pytest.warns(
        ConvergenceWarning, match=r"diverged at step \d+; lr = \S+ is within .*smaller init_scale"
    ) as caught:
        GradientDescentMF(3, lr=0.3 * bound, init_scale=1e3, random_state=0).fit(X)
    assert "exceeds" not in str(caught[0].message)


def test_sparse_input_gives_the_dense_fit():
    rng = np.random.default_rng(7)
    X = scipy.sparse.random(200, 150, density=0.05, random_state=rng, format="csr") * 10
    dense = GradientDescentMF(4, random_state=0).fit(X.toarray())
    for fmt in ("csr", "csc", "coo"):
        sparse = GradientDescentMF(4, random_state=0).fit(X.asformat(fmt))
        np.testing.assert_array_equal(sparse.components_, dense.components_)
        assert sparse.n_iter_ == dense.n_iter_
        np.testing.assert_allclose(sparse.transform(X.asformat(fmt)), dense.transform(X.toarray()), rtol=1e-12)
        assert sparse.score(X.asformat(fmt)) == pytest.approx(dense.score(X.toarray()), rel=1e-12)
    with pytest.raises(TypeError, match="Sparse data was passed, but dense data is required"):
        dense.inverse_transform(scipy.sparse.csr_matrix(dense.transform(X)))


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="the memory check needs os.sysconf")
def test_sparse_too_large_to_densify_says_so():
    X = scipy.sparse.csr_matrix(([1.0, 2.0], ([0, 5], [3, 7])), shape=(10**6, 10**7))
    with pytest.raises(MemoryError, match="streams X as a dense array.*TruncatedSVD"):
        GradientDescentMF(2).fit(X)


def test_score_is_minus_the_reconstruction_error():
    rng = np.random.default_rng(8)
    X = low_rank_plus_noise(rng, 100, 60, [30.0, 20.0, 10.0])
    Y = low_rank_plus_noise(rng, 40, 60, [30.0, 20.0, 10.0])
    est = GradientDescentMF(2, random_state=0).fit(X)
    C = est.components_
    U = np.linalg.lstsq(C.T, Y.T, rcond=None)[0].T
    assert est.score(Y) == pytest.approx(-np.linalg.norm(Y - U @ C), rel=1e-10)
    assert est.score(X) == pytest.approx(-est.reconstruction_err_, rel=1e-12) and est.score(X) < 0
    assert GradientDescentMF(3, random_state=0).fit(X).score(X) > est.score(X)


def test_in_a_pipeline_and_bad_parameters():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 6))
    Z = make_pipeline(StandardScaler(), GradientDescentMF(3, random_state=0)).fit_transform(X)
    assert Z.shape == (30, 3)
    with pytest.raises(ValueError, match="n_components=9 must be at most"):
        GradientDescentMF(9).fit(X)
    with pytest.raises(ValueError, match="The 'lr' parameter of GradientDescentMF must be a float in the range"):
        GradientDescentMF(2, lr=-1.0).fit(X)
    with pytest.raises(ValueError, match="The 'tol' parameter of GradientDescentMF must be"):
        GradientDescentMF(2, tol="small").fit(X)
    with pytest.raises(ValueError, match="all zeros"):
        GradientDescentMF(2).fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="all zeros"):
        GradientDescentMF(2).fit(scipy.sparse.csr_matrix((5, 4)))


@pytest.mark.parametrize("c", [1e-170, 1e300])
def test_any_scale_of_x_fits_as_scale_one(c):
    """The stopping rule compares losses: at these scales they leave the double range in X's
    units, so the fit runs on X / c (c a power of 4, exact)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 80)) + 0.01 * rng.standard_normal((200, 80))
    one = GradientDescentMF(5, random_state=0).fit(X)
    big = GradientDescentMF(5, random_state=0).fit(X * c)
    assert big.n_iter_ == one.n_iter_ and big.status_ == one.status_ == "converged"
    assert big.reconstruction_err_ / c == pytest.approx(one.reconstruction_err_, rel=1e-9)
    np.testing.assert_allclose(big.components_ / np.sqrt(c), one.components_, rtol=1e-9, atol=1e-12)


def test_an_lr_too_small_to_move_warns_once():
    X = np.random.default_rng(1).standard_normal((40, 30))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GradientDescentMF(3, lr=1e-30, max_iter=100, random_state=0).fit(X)
    small = [w for w in caught if "so small" in str(w.message)]
    assert len(small) == 1
    assert any(issubclass(w.category, ConvergenceWarning) and "never improved" in str(w.message) for w in caught)


def test_the_variants_reach_every_run_of_the_fit(monkeypatch):
    X = low_rank(np.random.default_rng(3), 30, 30, [3.0, 1.0])
    calls = []
    solve = fastmf.sklearn.solve

    def recording(S, **kwargs):
        calls.append(kwargs)
        return solve(S, **kwargs)

    monkeypatch.setattr(fastmf.sklearn, "solve", recording)
    est = GradientDescentMF(2, max_iter=30, lr=0.01, random_state=4, balance=0.5, update="alternating",
                            precondition=0.1, noise=1e-9, init="symmetric")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    assert len(calls) == 3 and est.get_params()["init"] == "symmetric"
    for i, kwargs in enumerate(calls):
        options = kwargs["options"]
        assert (options.balance, options.update, options.precondition, options.noise) == (0.5, "alternating", 0.1,
                                                                                          1e-9)  # fmt: skip
        assert kwargs["seed"] == (4 if i == 0 else [4, i])  # with noise each run draws its own
    assert calls[0]["init"] == "symmetric" and "init" not in calls[1] and "U0" in calls[1]
    for bad in ({"balance": -1.0}, {"update": "both"}, {"precondition": "yes"}, {"noise": -1.0}, {"init": "zeros"}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"'{name}' parameter"):
            GradientDescentMF(2, **bad).fit(X)


def test_scaledgd_fits_with_its_scale_free_step_at_any_scale_of_x():
    """With precondition, the default lr is DEFAULTS.lr itself (ScaledGD's step is scale-free),
    and a fit of c X with precondition c lam and noise sqrt(c) nu is the fit of X scaled (c = 2^140,
    beyond which the estimator works on X / c)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4)) @ rng.standard_normal((4, 40)) * 3
    mf = fastmf.GradientDescentMF(4, random_state=0, precondition=0.1, max_iter=300).fit(X)
    assert mf.lr_ == fastmf.options.DEFAULTS.lr and mf.status_ == "converged"
    c = 2.0**140
    for given in ({"precondition": 0.1, "lr": 0.3}, {"noise": 1e-3}):
        small = fastmf.GradientDescentMF(4, random_state=0, max_iter=300, **given).fit(X)
        scaled = {key: value * (c if key == "precondition" else np.sqrt(c) if key == "noise" else 1)
                  for key, value in given.items()}  # fmt: skip
        large = fastmf.GradientDescentMF(4, random_state=0, max_iter=300, **scaled).fit(X * c)
        assert large.status_ == small.status_ and large.n_iter_ == small.n_iter_
        np.testing.assert_allclose(large.reconstruction_err_ / c, small.reconstruction_err_, rtol=1e-12)
