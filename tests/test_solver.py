"""fastmf.solve against plain GD in the original basis (tests/naive.py, eqs 2-3)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmf
import fastmf._kernels
import fastmf.driver
from fastmf import Problem, solve
from naive import gd, low_rank

# (m, n, r, k): m < n, m > n, rank 1, k = m = n at full rank (the gradient-flow paper's case), k > r, k < r,
# and a complement with fewer than k dimensions (m - r < k).
SHAPES = [
    (30, 50, 3, 3),
    (50, 30, 3, 3),
    (40, 35, 1, 1),
    (12, 12, 12, 12),
    (40, 30, 3, 6),
    (40, 30, 5, 2),
    (9, 14, 3, 8),
]


def _case(m, n, r, k, seed=0):
    rng = np.random.default_rng(seed)
    s = np.geomspace(3.0, 1.0, r)
    Sigma = low_rank(rng, m, n, s)
    U0 = 0.3 * rng.standard_normal((m, k))
    V0 = 0.3 * rng.standard_normal((n, k))
    return Sigma, U0, V0, 0.2 / s[0]


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("complement", ["compressed", "full"])
@pytest.mark.parametrize("m, n, r, k", SHAPES)
def test_matches_plain_gd(m, n, r, k, complement):
    Sigma, U0, V0, lr = _case(m, n, r, k)
    steps = 150
    loss, imbalance, U, V = gd(Sigma, U0, V0, lr, steps)
    res = solve(Sigma, k, lr, steps, U0=U0, V0=V0, complement=complement)
    assert res.status == "max_iter" and res.n_iter == steps
    np.testing.assert_array_equal(res.history["step"], np.arange(steps + 1))
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-9, atol=1e-22 * np.sum(Sigma**2))
    np.testing.assert_allclose(res.history["imbalance"], imbalance, rtol=1e-8, atol=1e-12)
    assert _rel(res.U, U) < 1e-9 and _rel(res.V, V) < 1e-9
    assert res.U.dtype == np.float64


@pytest.mark.parametrize("m, n, r, k", [(30, 50, 3, 3), (40, 30, 3, 6), (9, 14, 3, 8)])
def test_float32_keeps_dtype_and_tracks_float64(m, n, r, k):
    Sigma, U0, V0, lr = _case(m, n, r, k, seed=1)
    steps = 100
    loss, _, U, V = gd(Sigma, U0, V0, lr, steps)
    for complement in ("compressed", "full"):
        res = solve(Sigma.astype(np.float32), k, lr, steps, U0=U0, V0=V0, complement=complement)
        assert res.problem.dtype == np.float32
        assert res.U.dtype == np.float32 and res.V.dtype == np.float32 and res.Up.dtype == np.float32
        np.testing.assert_allclose(res.history["loss"], loss, rtol=2e-3, atol=1e-5)
        assert _rel(res.U, U) < 1e-4 and _rel(res.V, V) < 1e-4


def test_spectrum_problem_matches_dense_diagonal():
    s = np.array([2.0, 1.5, 1.0])
    m, n, k = 25, 18, 4
    rng = np.random.default_rng(2)
    U0, V0 = 0.2 * rng.standard_normal((m, k)), 0.2 * rng.standard_normal((n, k))
    p = Problem.from_spectrum(s, m, n)
    loss, _, U, V = gd(p.dense(), U0, V0, 0.1, 120)
    for complement in ("compressed", "full"):
        res = solve(p, k, 0.1, 120, U0=U0, V0=V0, complement=complement)
        np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-9)
        assert _rel(res.U, U) < 1e-9 and _rel(res.V, V) < 1e-9


@pytest.mark.parametrize("complement", ["compressed", "full"])
def test_spectrum_random_start_rebuilds_an_exact_gd_trajectory(complement):
    """The lazily drawn complement basis W makes U_0 and U_T one GD trajectory."""
    p = Problem.from_spectrum([3.0, 2.0, 1.0], 60, 45)
    start = solve(p, 5, 0.1, 0, init_scale=0.1, seed=11, complement=complement)
    res = solve(p, 5, 0.1, 80, init_scale=0.1, seed=11, complement=complement)
    loss, _, U, V = gd(p.dense(), start.U, start.V, 0.1, 80)
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-9)
    assert _rel(res.U, U) < 1e-9 and _rel(res.V, V) < 1e-9


def test_compressed_and_full_agree_from_the_same_seed():
    for p in (
        Problem(low_rank(np.random.default_rng(3), 80, 60, [2.0, 1.0])),
        Problem.from_spectrum([2.0, 1.0], 80, 60),
    ):
        a = solve(p, 4, 0.15, 300, init_scale=0.05, seed=5)
        b = solve(p, 4, 0.15, 300, init_scale=0.05, seed=5, complement="full")
        np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-10)
        assert _rel(a.U, b.U) < 1e-10 and _rel(a.V, b.V) < 1e-10


@pytest.mark.parametrize("record_every", [1, 3])
def test_full_complement_over_several_row_blocks(record_every):
    """m = 1200, k = 16: rows come in blocks of 512, the first straddling the principal rows."""
    rng = np.random.default_rng(8)
    m, n, r, k = 1200, 900, 5, 16
    Sigma = low_rank(rng, m, n, np.geomspace(3.0, 1.0, r))
    U0, V0 = 0.05 * rng.standard_normal((m, k)), 0.05 * rng.standard_normal((n, k))
    lr = 0.2 / 3.0
    loss, imbalance, U, V = gd(Sigma, U0, V0, lr, 60)
    res = solve(Sigma, k, lr, 60, U0=U0, V0=V0, complement="full", record_every=record_every)
    np.testing.assert_allclose(res.history["loss"], loss[res.history["step"]], rtol=1e-9)
    np.testing.assert_allclose(res.history["imbalance"], imbalance[res.history["step"]], rtol=1e-8)
    assert _rel(res.U, U) < 1e-9 and _rel(res.V, V) < 1e-9


def test_record_every_and_final_step():
    Sigma, U0, V0, lr = _case(30, 20, 2, 3)
    loss, imbalance, _, _ = gd(Sigma, U0, V0, lr, 100)
    res = solve(Sigma, 3, lr, 100, U0=U0, V0=V0, record_every=7)
    expected = np.r_[np.arange(0, 100, 7), 100]
    np.testing.assert_array_equal(res.history["step"], expected)
    assert len({len(v) for v in res.history.values()}) == 1
    np.testing.assert_allclose(res.history["loss"], loss[expected], rtol=1e-9)
    np.testing.assert_allclose(res.history["imbalance"], imbalance[expected], rtol=1e-8)


def test_zero_steps_returns_the_start():
    Sigma, U0, V0, lr = _case(20, 15, 2, 2)
    res = solve(Sigma, 2, lr, 0, U0=U0, V0=V0)
    assert res.n_iter == 0 and res.status == "max_iter"
    np.testing.assert_array_equal(res.history["step"], [0])
    np.testing.assert_allclose(res.U, U0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res.history["loss"], [0.5 * np.sum((Sigma - U0 @ V0.T) ** 2)], rtol=1e-12)


def test_tol_stops_at_first_recorded_step_below_it():
    Sigma, U0, V0, lr = _case(30, 25, 2, 2)
    loss, _, _, _ = gd(Sigma, U0, V0, lr, 600)
    tol = 1e-12
    for every in (1, 5):
        res = solve(Sigma, 2, lr, 600, U0=U0, V0=V0, tol=tol, record_every=every)
        first = next(t for t in range(0, 601, every) if loss[t] <= tol)
        assert res.status == "converged" and res.n_iter == first
        assert res.history["step"][-1] == first and res.loss <= tol
        assert "converged" in res.message


def test_chunking_never_changes_the_numbers(monkeypatch):
    p = Problem.from_spectrum([2.0, 1.0, 0.5], 200, 150)
    kwargs = dict(k=3, lr=0.2, max_iter=500, init_scale=1e-3, seed=3, record_every=3)
    base = solve(p, **kwargs)
    monkeypatch.setattr(fastmf.driver, "_FIRST_CHUNK", 1)
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)
    small = solve(p, **kwargs)
    for key in base.history:
        np.testing.assert_array_equal(small.history[key], base.history[key])
    np.testing.assert_array_equal(small.Up, base.Up)
    np.testing.assert_array_equal(small.L_V, base.L_V)


def test_same_seed_same_result_and_seed_none_is_reproducible():
    p = Problem.from_spectrum([1.0, 0.5], 10**6, 10**6)
    a = solve(p, 3, 0.3, 50, seed=7)
    b = solve(p, 3, 0.3, 50, seed=7)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    c = solve(p, 3, 0.3, 50)
    d = solve(p, 3, 0.3, 50, seed=c.seed)
    np.testing.assert_array_equal(c.history["loss"], d.history["loss"])
    assert not np.array_equal(a.history["loss"], c.history["loss"])
    child = np.random.SeedSequence(5).spawn(2)[1]  # a spawned sequence reproduces too
    e = solve(p, 3, 0.3, 50, seed=child)
    f = solve(p, 3, 0.3, 50, seed=e.seed)
    np.testing.assert_array_equal(e.history["loss"], f.history["loss"])
    assert not np.array_equal(e.history["loss"], solve(p, 3, 0.3, 50, seed=5).history["loss"])


def test_divergence_keeps_last_finite_state():
    Sigma, U0, V0, _ = _case(30, 20, 3, 3)
    p = Problem(Sigma)
    lr = 100 / p.sigma_1
    res = solve(p, 3, lr, 1000, U0=U0, V0=V0)
    assert res.status == "diverged"
    assert res.diverged_at == res.n_iter + 1 and np.all(np.isfinite(res.history["loss"]))
    assert np.all(np.isfinite(res.U)) and np.all(np.isfinite(res.V))
    assert f"step {res.diverged_at}" in res.message and "1 / (3 sigma_1)" in res.message
    _, _, U, V = gd(Sigma, U0, V0, lr, res.n_iter)  # really the state after n_iter steps
    assert _rel(res.U, U) < 1e-9
    bound = float(res.message.rsplit("=", 1)[1])
    np.testing.assert_allclose(bound, 1 / (3 * p.sigma_1), rtol=1e-3)
    ok = solve(p, 3, bound, 3000, U0=U0, V0=V0)
    assert ok.status == "max_iter" and ok.loss < 1e-12 * np.sum(Sigma**2)


def test_interrupt_returns_the_state_reached(monkeypatch):
    Sigma, U0, V0, lr = _case(30, 20, 2, 2)
    real = fastmf._kernels.run_blocks
    calls = []

    def interrupted_after_three_chunks(*args):
        real(*args)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)
    monkeypatch.setattr(fastmf._kernels, "run_blocks", interrupted_after_three_chunks)
    res = solve(Sigma, 2, lr, 10_000, U0=U0, V0=V0)
    assert res.status == "interrupted" and 0 < res.n_iter < 10_000
    assert "KeyboardInterrupt" in res.message
    loss, _, U, _ = gd(Sigma, U0, V0, lr, res.n_iter)
    assert res.history["step"][-1] <= res.n_iter
    np.testing.assert_allclose(res.history["loss"], loss[res.history["step"]], rtol=1e-9)
    assert _rel(res.U, U) < 1e-9


def test_inputs_are_not_modified():
    Sigma, U0, V0, lr = _case(20, 15, 2, 2)
    copies = [Sigma.copy(), U0.copy(), V0.copy()]
    seq = np.random.SeedSequence(5)
    solve(Sigma, 2, lr, 20, U0=U0, V0=V0)
    solve(Sigma, 2, lr, 20, seed=seq)
    for a, b in zip([Sigma, U0, V0], copies, strict=True):
        np.testing.assert_array_equal(a, b)
    assert seq.n_children_spawned == 0


def test_huge_spectrum_problem_runs_small_and_refuses_to_rebuild_U():
    p = Problem.from_spectrum(np.linspace(2.0, 1.0, 32), 10**9, 10**9)
    res = solve(p, 32, 0.2, 2000, seed=0, record_every=100)  # the default init_scale is small at any size
    assert res.status == "max_iter" and res.loss < 1e-12 * np.sum(p.s**2)
    assert res.history["loss"][0] == pytest.approx(0.5 * np.sum(p.s**2), rel=1e-3)
    assert res.L_U.shape == (32, 32) and res.Up.shape == (32, 32)
    with pytest.raises(MemoryError, match="result.Up"):
        _ = res.U
    with pytest.raises(MemoryError, match="compressed"):
        solve(p, 32, 0.2, 10, complement="full")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(k=0), ValueError, "k must be >= 1"),
        (dict(k=21), ValueError, "k must be at most min"),
        (dict(k=2.0), TypeError, "k must be an integer"),
        (dict(lr=-0.1), ValueError, "lr must be > 0"),
        (dict(lr=0.0), ValueError, "lr must be > 0"),
        (dict(lr=np.nan), ValueError, "lr must be finite"),
        (dict(lr="0.1"), ValueError, "lr must be a positive number, None or 'theory'"),
        (dict(max_iter=-1), ValueError, "max_iter must be >= 0"),
        (dict(max_iter=10.0), TypeError, "max_iter must be an integer"),
        (dict(tol=-1.0), ValueError, "tol must be >= 0"),
        (dict(record_every=0), ValueError, "record_every must be >= 1"),
        (dict(complement="half"), ValueError, "complement must be"),
        (dict(init_scale=-1.0), ValueError, "init_scale must be > 0"),
        (dict(seed=np.random.default_rng(0)), TypeError, "seed must be None, an integer >= 0.*rng.integers"),
        (dict(U0=np.zeros((30, 2))), ValueError, "both U0 and V0"),
        (dict(U0=np.zeros((30, 3)), V0=np.zeros((20, 2))), ValueError, r"U0 must have shape \(30, 2\)"),
        (dict(U0=np.full((30, 2), np.nan), V0=np.zeros((20, 2))), ValueError, "U0 contains NaN"),
        (dict(U0=np.zeros((30, 2)), V0=np.zeros((20, 2), complex)), TypeError, "V0 is complex"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    Sigma = low_rank(np.random.default_rng(0), 30, 20, [1.0, 0.5])
    args = dict(k=2, lr=0.1, max_iter=10) | kwargs
    with pytest.raises(exc, match=match):
        solve(Sigma, **args)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    r=st.integers(1, 12),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    complement=st.sampled_from(["compressed", "full"]),
)
def test_random_shapes_match_plain_gd(m, n, r, k, seed, complement):
    r, k = min(r, m, n), min(k, m, n)
    Sigma, U0, V0, lr = _case(m, n, r, k, seed=seed)
    loss, _, U, V = gd(Sigma, U0, V0, lr, 40)
    res = solve(Sigma, k, lr, 40, U0=U0, V0=V0, complement=complement)
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-9, atol=1e-22 * np.sum(Sigma**2))
    assert _rel(res.U, U) < 1e-9 and _rel(res.V, V) < 1e-9


def test_spectral_records_thin_out_by_default_when_r_exceeds_k():
    """r = 12, k = 3: a spectral record costs O(r^3), a step O(r k^2): every (r / k)^2 = 16 records."""
    S = low_rank(np.random.default_rng(6), 30, 25, np.linspace(3.0, 1.0, 12))
    res = solve(S, 3, 0.05, 40, seed=0)
    spectral = np.flatnonzero(np.isfinite(res.history["P_op"]))
    np.testing.assert_array_equal(res.history["step"][spectral], [0, 16, 32, 40])
    assert np.all(np.isfinite(res.history["loss"]))
    square = solve(S, 12, 0.05, 10, seed=0)  # r <= k: every record, as before
    assert np.all(np.isfinite(square.history["P_op"]))
