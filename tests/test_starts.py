"""Starts beyond the Gaussian: init="balanced" and "symmetric", and a start in split coordinates
(fastmf.SplitStart), checked against plain NumPy in the original basis."""

import numpy as np
import pytest
import scipy.linalg

import fastmf
from fastmf import Problem, SplitStart, gradient_flow, solve, solve_batch
from naive import gd, low_rank

BIG = 10**9


def _gaussian_draw(seed, m, n, k, eps):
    """The documented Gaussian start: U0 then V0 from the first stream of SeedSequence(seed)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])
    return eps * rng.standard_normal((m, k)), eps * rng.standard_normal((n, k))


def _split_loss(s, Up, Vp, L_U, L_V):
    """1/2 ||Sigma - U V^T||_F^2 for U = Phi Up + W_U L_U, V = Psi Vp + W_V L_V: the four blocks
    of the residual in the bases (Phi, W_U) x (Psi, W_V) are orthogonal."""
    blocks = (np.diag(s) - Up @ Vp.T, Up @ L_V.T, L_U @ Vp.T, L_U @ L_V.T)
    return 0.5 * sum(np.sum(b * b) for b in blocks)


def _stacked_gram(result, side):
    X = np.vstack([result.Up, result.L_U] if side == "U" else [result.Vp, result.L_V])
    return X.T @ X


# ----------------------------------------------------------------------------- balanced


@pytest.mark.parametrize("complement", ["compressed", "full"])
def test_balanced_start_is_the_gaussian_draw_with_v_rescaled(complement):
    rng = np.random.default_rng(0)
    Sigma = low_rank(rng, 40, 30, [3.0, 2.0, 1.0])
    start = solve(Sigma, 4, 0.05, 0, init_scale=0.1, seed=5, init="balanced", complement=complement)
    U0, V0 = _gaussian_draw(5, 40, 30, 4, 0.1)
    Gu, Gv = U0.T @ U0, V0.T @ V0
    T = np.linalg.inv(scipy.linalg.sqrtm(Gv).real) @ scipy.linalg.sqrtm(Gu).real
    np.testing.assert_allclose(start.U, U0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(start.V, V0 @ T, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(start.V.T @ start.V, start.U.T @ start.U, rtol=1e-12, atol=1e-15)
    assert start.options.init == "balanced"


def test_balanced_start_at_a_billion_and_in_a_batch_and_a_flow():
    p = Problem.from_spectrum([3.0, 2.0, 1.0], BIG, BIG)
    plain = solve(p, 3, 0.1, 0, seed=2)
    start = solve(p, 3, 0.1, 0, seed=2, init="balanced")
    Gu = _stacked_gram(start, "U")
    np.testing.assert_allclose(_stacked_gram(start, "V"), Gu, rtol=1e-12, atol=1e-12 * np.abs(Gu).max())
    # a Gaussian start at this size is balanced to about 1 / sqrt(m) only
    assert np.abs(_stacked_gram(plain, "V") - _stacked_gram(plain, "U")).max() > 1e-6 * np.abs(Gu).max()
    np.testing.assert_array_equal(start.Up, plain.Up)  # the same draw, only the V side moved
    np.testing.assert_array_equal(start.L_U, plain.L_U)
    batch = solve_batch(p, 3, 0.1, 0, seeds=[2, 9], init="balanced")
    for run in batch:
        Gu = _stacked_gram(run, "U")
        np.testing.assert_allclose(_stacked_gram(run, "V"), Gu, rtol=1e-12, atol=1e-12 * np.abs(Gu).max())
    np.testing.assert_allclose(batch[0].Vp, start.Vp, rtol=1e-14, atol=1e-16)
    small = Problem.from_spectrum([3.0, 2.0, 1.0], 50, 50)
    flow = gradient_flow(small, 3, 1e-3, seed=2, init="balanced", t_eval=[0.0, 1e-3])
    assert flow.history["imbalance"][0] < 1e-12 * np.linalg.norm(Gu)


# ----------------------------------------------------------------------------- symmetric


def test_symmetric_start_is_u0_twice_for_a_dense_square_sigma():
    Sigma = low_rank(np.random.default_rng(1), 30, 30, [2.0, 1.0])
    start = solve(Sigma, 3, 0.05, 0, init_scale=0.1, seed=4, init="symmetric")
    U0, _ = _gaussian_draw(4, 30, 30, 3, 0.1)
    np.testing.assert_allclose(start.U, U0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(start.V, U0, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("m", [50, BIG])
def test_symmetric_start_of_a_spectrum_problem_has_equal_factors(m):
    p = Problem.from_spectrum([2.0, 1.0], m, m)
    start = solve(p, 3, 0.1, 0, seed=6, init="symmetric")
    np.testing.assert_array_equal(start.Up, start.Vp)
    np.testing.assert_array_equal(start.L_U, start.L_V)
    if m < BIG:
        np.testing.assert_array_equal(start.U, start.V)
    batch = solve_batch(p, 3, 0.1, 0, seeds=[6])
    assert not np.array_equal(batch[0].Up, batch[0].Vp)  # the Gaussian start is not symmetric


def test_symmetric_start_needs_a_square_sigma():
    with pytest.raises(ValueError, match="init='symmetric' .* needs a square Sigma"):
        solve(Problem.from_spectrum([1.0], 5, 4), 1, 0.1, 0, init="symmetric")


# ----------------------------------------------------------------------------- SplitStart


def _split_start(rng, r, k, ku, kv, scale=0.1):
    return SplitStart(*(scale * rng.standard_normal((rows, k)) for rows in (r, r, ku, kv)))


def test_split_start_at_a_billion_runs_from_the_loss_of_its_coordinates():
    s = np.array([3.0, 2.0, 1.0])
    st = _split_start(np.random.default_rng(2), 3, 4, 2, 4)
    result = solve(Problem.from_spectrum(s, BIG, BIG), lr=0.1, max_iter=20, start=st)
    assert result.options.k == 4 and result.status == "max_iter"
    expected = _split_loss(s, st.Up, st.Vp, st.L_U, st.L_V)
    np.testing.assert_allclose(result.history["loss"][0], expected, rtol=1e-13)
    assert result.history["loss"][-1] < expected


def test_split_start_in_a_batch_and_a_flow():
    s = np.array([3.0, 2.0, 1.0])
    p = Problem.from_spectrum(s, BIG, BIG)
    st = _split_start(np.random.default_rng(3), 3, 3, 3, 1)
    one = solve(p, lr=0.1, max_iter=30, start=st)
    batch = solve_batch(p, lr=0.1, max_iter=30, seeds=[0, 5], start=st)
    np.testing.assert_allclose(batch.final_loss, one.loss, rtol=1e-10)
    flow = gradient_flow(Problem.from_spectrum(s, 40, 40), t_max=1e-3, start=st, t_eval=[0.0, 1e-3])
    np.testing.assert_allclose(flow.history["loss"][0], _split_loss(s, st.Up, st.Vp, st.L_U, st.L_V), rtol=1e-13)


@pytest.mark.parametrize("complement, method", [("compressed", "split"), ("full", "split"), ("compressed", "direct")])
def test_split_start_runs_as_the_same_start_given_as_u0_v0(complement, method):
    rng = np.random.default_rng(4)
    Sigma = low_rank(rng, 25, 20, [3.0, 2.0, 1.0])
    p = Problem(Sigma)
    U0, V0 = 0.3 * rng.standard_normal((25, 4)), 0.3 * rng.standard_normal((20, 4))
    Phi, Psi = p.left.Phi, p.right.Phi
    Up, Vp = Phi.T @ U0, Psi.T @ V0
    L_U = np.linalg.qr(U0 - Phi @ Up)[1]  # CU = W L_U: only W's span matters to the run
    L_V = np.linalg.qr(V0 - Psi @ Vp)[1]
    st = SplitStart(Up, Vp, L_U, L_V)
    given = solve(Sigma, lr=0.05, max_iter=40, U0=U0, V0=V0, complement=complement, method=method)
    split = solve(Sigma, lr=0.05, max_iter=40, start=st, complement=complement, method=method, seed=3)
    naive_loss, _, U, V = gd(Sigma, U0, V0, 0.05, 40)
    np.testing.assert_allclose(given.history["loss"], naive_loss, rtol=1e-10)
    np.testing.assert_allclose(split.history["loss"], given.history["loss"], rtol=1e-10)
    # what does not depend on the complement frames W: the principal coordinates and the Grams
    for got, want, basis in ((split.U, U, Phi), (split.V, V, Psi)):
        np.testing.assert_allclose(basis.T @ got, basis.T @ want, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.T @ got, want.T @ want, rtol=1e-9, atol=1e-12)


def test_split_start_rebuilds_its_factors_in_the_problems_basis():
    s = np.array([2.0, 1.0])
    p = Problem.from_spectrum(s, 30, 30)
    st = _split_start(np.random.default_rng(5), 2, 3, 1, 3)
    for complement in ("compressed", "full"):
        start = solve(p, lr=0.1, max_iter=0, start=st, complement=complement, seed=8)
        U, V = start.U, start.V
        np.testing.assert_allclose(U[:2], st.Up, rtol=1e-14)  # the principal rows are the coordinates 0, 1
        np.testing.assert_allclose(V[:2], st.Vp, rtol=1e-14)
        np.testing.assert_allclose(U[2:].T @ U[2:], st.L_U.T @ st.L_U, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(V[2:].T @ V[2:], st.L_V.T @ st.L_V, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"U0": np.zeros((6, 2)), "V0": np.zeros((6, 2))}, ValueError, "as U0, V0 or as start=.*not both"),
        ({"init": "balanced"}, ValueError, "with start= given, drop init"),
        ({"k": 1}, ValueError, "k = 1 but the SplitStart has k = 2"),
        ({"start": np.zeros((2, 2))}, TypeError, "start must be a fastmf.SplitStart"),
        ({"start": SplitStart(np.ones((3, 2)), np.ones((3, 2)), np.ones((1, 2)), np.ones((1, 2)))}, ValueError,
         r"SplitStart.Up must have r = 2 rows"),
        ({"start": SplitStart(np.ones((2, 2)), np.ones((2, 2)), np.ones((3, 2)), np.ones((1, 2)))}, ValueError,
         r"SplitStart.L_U must have at most min\(k, m - r\) = 2 rows"),
    ],
)  # fmt: skip
def test_a_bad_split_start_is_refused_naming_the_argument(kwargs, error, match):
    p = Problem.from_spectrum([2.0, 1.0], 6, 6)
    kwargs = {"start": SplitStart(np.ones((2, 2)), np.ones((2, 2)), np.ones((1, 2)), np.ones((0, 2)))} | kwargs
    with pytest.raises(error, match=match):
        solve(p, lr=0.1, max_iter=0, **kwargs)


@pytest.mark.parametrize(
    "parts, match",
    [
        ((np.ones((2, 2)), np.ones((3, 2)), np.ones((1, 2)), np.ones((1, 2))), r"SplitStart.Vp must have the shape"),
        ((np.ones((2, 2)), np.ones((2, 2)), np.ones((1, 3)), np.ones((1, 2))), r"SplitStart.L_U must have k = 2"),
        ((np.ones((2, 2)), np.ones((2, 2)), np.ones((1, 2)), np.ones(2)), r"SplitStart.L_V must be 2-D"),
        ((np.ones((2, 2)), np.full((2, 2), np.nan), np.ones((1, 2)), np.ones((1, 2))), "SplitStart.Vp contains NaN"),
    ],
)
def test_split_start_checks_its_shapes(parts, match):
    with pytest.raises(ValueError, match=match):
        SplitStart(*parts)


def test_a_law_of_the_random_start_is_refused_with_a_given_start():
    Sigma = low_rank(np.random.default_rng(6), 6, 6, [1.0])
    with pytest.raises(ValueError, match="init='symmetric' is a law of the random start; with U0, V0 given, drop init"):
        solve(Sigma, 1, 0.1, 0, U0=np.ones((6, 1)), V0=np.ones((6, 1)), init="symmetric")
    assert fastmf.SplitStart is SplitStart and "SplitStart" in fastmf.__all__


@pytest.mark.parametrize("init", ["balanced", "symmetric"])
def test_the_direct_path_draws_the_start_of_the_split_engine(init):
    Sigma = low_rank(np.random.default_rng(7), 20, 20, [2.0, 1.0])
    split = solve(Sigma, 3, 0.05, 0, init_scale=0.1, seed=3, init=init, method="split")
    direct = solve(Sigma, 3, 0.05, 0, init_scale=0.1, seed=3, init=init, method="direct")
    np.testing.assert_allclose(direct.U, split.U, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(direct.V, split.V, rtol=1e-12, atol=1e-14)
