"""The direct path (solve(..., method="direct")) against plain GD in the original basis (tests/naive.py)."""

import numpy as np
import pytest
import scipy.sparse

from fastmf import Problem, SolveResult, resume, solve
from fastmf._kernels import block_rows
from naive import gd, low_rank

# (m, n, r, k): m < n, m > n, rank 1, k = m = n at full rank, k > r, k < r, Sigma of full rank
SHAPES = [
    (30, 50, 3, 3), (50, 30, 3, 3), (40, 35, 1, 1), (12, 12, 12, 12), (40, 30, 3, 6), (40, 30, 5, 2), (25, 20, 20, 4),
]  # fmt: skip


def _case(m, n, r, k, seed=0):
    rng = np.random.default_rng(seed)
    s = np.geomspace(3.0, 1.0, r)
    return low_rank(rng, m, n, s), 0.3 * rng.standard_normal((m, k)), 0.3 * rng.standard_normal((n, k)), 0.2 / s[0]


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("m, n, r, k", SHAPES)
def test_matches_plain_gd(m, n, r, k):
    Sigma, U0, V0, lr = _case(m, n, r, k)
    loss, imbalance, U, V = gd(Sigma, U0, V0, lr, 150)
    res = solve(Sigma, k, lr, 150, U0=U0, V0=V0, method="direct")
    assert isinstance(res, SolveResult) and res.method == "direct" and res.status == "max_iter" and res.n_iter == 150
    np.testing.assert_array_equal(res.history["step"], np.arange(151))
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-10, atol=1e-14 * loss[0])
    np.testing.assert_allclose(res.history["imbalance"], imbalance, rtol=1e-9, atol=1e-12 * imbalance[0])
    assert _rel(res.U, U) < 1e-11 and _rel(res.V, V) < 1e-11


def test_float32_stays_float32_and_tracks_float64():
    Sigma, U0, V0, lr = _case(40, 60, 3, 4)
    loss, _, U, V = gd(Sigma, U0, V0, lr, 100)
    res = solve(Sigma.astype(np.float32), 4, lr, 100, U0=U0, V0=V0, method="direct")
    assert res.U.dtype == res.V.dtype == np.float32
    assert _rel(res.U, U) < 1e-4 and _rel(res.V, V) < 1e-4
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-4, atol=1e-6 * loss[0])


def test_row_blocks_and_their_boundary():
    """Sigma of 21 rows in blocks of 8: two full blocks and a partial one."""
    n = 1 << 15
    assert block_rows(n) == 8
    Sigma, U0, V0, _ = _case(21, n, 2, 3)
    V0 = V0 / np.sqrt(n)
    loss, imbalance, U, V = gd(Sigma, U0, V0, 0.05, 12)
    res = solve(Sigma, 3, 0.05, 12, U0=U0, V0=V0, method="direct")
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-12)
    assert _rel(res.U, U) < 1e-12 and _rel(res.V, V) < 1e-12


def test_loss_keeps_its_digits_down_to_rounding():
    """Near convergence the identity 2f = ||S||^2 - 2<U, SV> + <U^T U, V^T V> would cancel;
    the loss is then summed from the residual: the recorded loss of a state agrees with
    NumPy's ||Sigma - U V^T||^2 / 2 of that state far below eps ||Sigma||^2."""
    Sigma, U0, V0, lr = _case(30, 20, 2, 2)
    s2 = np.sum(Sigma**2)
    levels = []
    for t in (0, 50, 200, 800, 1500):
        res = solve(Sigma, 2, lr, t, U0=U0, V0=V0, method="direct", record_every=max(t, 1))
        exact = 0.5 * np.sum((Sigma - res.U @ res.V.T) ** 2)
        assert res.loss == pytest.approx(exact, rel=1e-10)
        levels.append(exact / s2)
    assert max(levels) > 1e-4 > min(levels) and min(levels) < 1e-28  # both branches, down to 1e-28


def test_same_trajectory_as_the_split_engine_from_the_same_seed():
    Sigma, _, _, lr = _case(60, 45, 4, 5)
    split = solve(Sigma, 5, lr, 300, seed=7, method="split")
    direct = solve(Sigma, 5, lr, 300, seed=7, method="direct")
    assert type(split) is type(direct) is SolveResult and (split.method, direct.method) == ("split", "direct")
    assert direct.init_scale == pytest.approx(split.init_scale, rel=1e-12)
    np.testing.assert_allclose(direct.history["loss"], split.history["loss"], rtol=1e-8)
    assert _rel(direct.U, split.U) < 1e-10 and _rel(direct.V, split.V) < 1e-10


def test_record_every_tol_and_delta():
    Sigma, U0, V0, lr = _case(30, 25, 2, 2)
    loss, _, _, _ = gd(Sigma, U0, V0, lr, 300)
    res = solve(Sigma, 2, lr, 300, U0=U0, V0=V0, method="direct", record_every=7, tol=1e-6, delta=1e-3)
    t = int(np.flatnonzero((np.arange(301) % 7 == 0) & (loss <= 1e-6))[0])
    assert res.status == "converged" and res.n_iter == t
    np.testing.assert_array_equal(res.history["step"], np.arange(0, t + 1, 7))
    np.testing.assert_allclose(res.history["loss"], loss[: t + 1 : 7], rtol=1e-9)
    assert res.stages.T_delta == int(np.flatnonzero((np.arange(301) % 7 == 0) & (loss <= 1e-3))[0])
    assert res.stages.T1 is None and res.stages.T0 is None


def test_chunks_and_callbacks_leave_the_numbers_alone():
    Sigma, U0, V0, lr = _case(40, 30, 3, 3)
    plain = solve(Sigma, 3, lr, 500, U0=U0, V0=V0, method="direct")
    seen = []
    watched = solve(Sigma, 3, lr, 500, U0=U0, V0=V0, method="direct", callback=lambda s: seen.append(s.step))
    assert seen
    np.testing.assert_array_equal(watched.history["loss"], plain.history["loss"])
    np.testing.assert_array_equal(watched.U, plain.U)
    stopped = solve(Sigma, 3, lr, 10**9, U0=U0, V0=V0, method="direct", callback=lambda s: True)
    assert stopped.status == "stopped" and 0 < stopped.n_iter < 10**9
    assert "resume" in stopped.message


def test_direct_runs_resume_bit_for_bit_with_their_sigma(tmp_path):
    Sigma, U0, V0, lr = _case(40, 30, 3, 3)
    unbroken = solve(Sigma, 3, lr, 500, U0=U0, V0=V0, method="direct", record_every=3)
    path = tmp_path / "direct.npz"
    part = solve(Sigma, 3, lr, 500, U0=U0, V0=V0, method="direct", record_every=3, checkpoint=path,
                 callback=lambda s: s.step >= 100)  # fmt: skip
    assert part.status == "stopped" and 100 <= part.n_iter < 500 and part.problem is None
    for source in (part, path):
        again = resume(source, Sigma=Sigma, checkpoint=False)
        assert again.n_iter == 500 and again.method == "direct" and again.stages == unbroken.stages
        for key in ("step", "loss", "imbalance"):
            np.testing.assert_array_equal(again.history[key], unbroken.history[key], err_msg=key)
        np.testing.assert_array_equal(again.U, unbroken.U)
        np.testing.assert_array_equal(again.V, unbroken.V)
    with pytest.raises(ValueError, match="pass it again"):
        resume(path)
    other = Sigma.copy()
    other[0, 0] += 1e-12
    with pytest.raises(ValueError, match="not the matrix this run was saved with"):
        resume(path, Sigma=other)


def test_divergence_keeps_the_last_finite_state():
    Sigma, U0, V0, _ = _case(30, 20, 3, 3)
    res = solve(Sigma, 3, 50.0, 1000, U0=U0, V0=V0, method="direct")
    assert res.status == "diverged" and res.diverged_at == res.n_iter + 1
    assert np.all(np.isfinite(res.U)) and np.all(np.isfinite(res.history["loss"]))
    _, _, U, _ = gd(Sigma, U0, V0, 50.0, res.n_iter)
    assert _rel(res.U, U) < 1e-8
    assert f"{1 / (3 * np.linalg.norm(Sigma, 2)):.4g}" in res.message


def test_auto_picks_split_for_low_rank_and_direct_for_a_short_run_on_full_rank():
    rng = np.random.default_rng(3)
    low = low_rank(rng, 300, 200, [3.0, 2.0, 1.0])
    assert isinstance(solve(low, 3, 0.1, 5, seed=0), SolveResult)
    assert isinstance(solve(Problem(low), 3, 0.1, 5, seed=0), SolveResult)
    full = rng.standard_normal((300, 200))
    assert solve(full, 2, 0.01, 5, seed=0).method == "direct"  # a sketch of <= 32 columns finds no basis
    assert isinstance(solve(full, 2, 0.01, 5, seed=0, method="split"), SolveResult)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "fast"}, "method must be one of 'auto', 'split', 'direct'"),
        ({"method": "direct", "lr": "theory"}, "never computes"),
        ({"method": "direct", "k": 31}, "k must be at most"),
        ({"method": "direct", "U0": np.zeros((30, 2))}, "give both U0 and V0"),
        ({"method": "direct", "U0": np.zeros((3, 2)), "V0": np.zeros((20, 2))}, "U0 must have shape"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, match):
    Sigma, _, _, _ = _case(30, 20, 3, 2)
    args = {"k": 2, "lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        solve(Sigma, args.pop("k"), args.pop("lr"), 10, **args)


def test_direct_needs_a_dense_sigma():
    with pytest.raises(ValueError, match="dense array"):
        solve(scipy.sparse.eye(20, format="csr"), 2, 0.1, 5, method="direct")
    with pytest.raises(ValueError, match="kind 'spectrum'"):
        solve(Problem.from_spectrum([2.0, 1.0], 20, 20), 2, 0.1, 5, method="direct")


def test_auto_weighs_the_split_runs_records():
    """A full-rank Sigma and a long run: the sketch may afford the basis (max_iter k / 2 columns),
    but a record every step would then cost O(r^2) against 4 m n k flops a direct step."""
    full = np.random.default_rng(4).standard_normal((300, 200))
    assert solve(full, 2, 0.01, 2000, seed=0).method == "direct"
    # records every 100 steps: the basis (a full SVD) and cheap steps beat 2000 direct steps
    assert isinstance(solve(full, 2, 0.01, 2000, seed=0, record_every=100), SolveResult)
    low = low_rank(np.random.default_rng(4), 300, 200, [3.0, 2.0, 1.0])
    assert isinstance(solve(low, 3, 0.1, 2000, seed=0), SolveResult)
