"""Numerics (docs/maths.md section 5): any finite scale of Sigma behaves as scale 1, a run
far past convergence holds no subnormal number, and outcomes are reported as they are."""

import os

import numpy as np
import pytest

import fastmf
from fastmf import Problem, gradient_flow, solve, solve_batch
from fastmf import _kernels as K
from fastmf._kernels import fpmode
from fastmf._kernels.batch import _half_step
from fastmf._kernels.batch import lanes as batch_lanes
from fastmf._kernels.spectral import extreme_eig
from naive import gd, low_rank

SPECTRUM = np.geomspace(4.0, 1.0, 16)


def _subnormals(*arrays) -> int:
    """How many entries are subnormal (nonzero and below the smallest normal number)."""
    count = 0
    for a in arrays:
        a = np.asarray(a)
        count += int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))
    return count


# ----------------------------------------------------------------------------- subnormals

# With lr = 0.0125 the slowest complement mode shrinks by 1 - lr sigma_d = 0.9875 a step from
# about 1e-6: after 56,600 steps it sits inside the subnormal range (1e-314), where it stays
# for about 1,300 steps before underflowing to 0 on its own.
LONG = 56_600


@pytest.mark.parametrize("complement", ["compressed", "full"])
def test_a_run_far_past_convergence_holds_no_subnormal(complement):
    p = Problem.from_spectrum(SPECTRUM, 300, 200)
    res = solve(p, 16, 0.0125, LONG, init_scale=1e-6, seed=0, complement=complement, record_every=200)
    assert res.status == "max_iter"
    assert _subnormals(res.Up, res.Vp, res.L_U, res.L_V) == 0
    assert np.count_nonzero(res.L_U == 0) > 0  # the complement did reach the range, and was flushed
    spectral = ("sigma_min_A", "lambda_min_P", "P_op", "J_op", "K_op", "E_op")
    assert all(np.all(np.isfinite(res.history[key])) for key in spectral)


def test_direct_path_far_past_convergence_holds_no_subnormal():
    """Sigma with zero rows and columns: those rows of U and V shrink by about 1 - lr sigma_d a
    step; after 14,000 steps they are inside the subnormal range."""
    S = np.zeros((40, 30))
    S[:3, :3] = np.diag([4.0, 2.0, 1.0])
    res = solve(S, 3, 0.05, 14_000, init_scale=1e-3, seed=0, method="direct", record_every=500)
    assert res.status == "max_iter"
    assert _subnormals(res.U, res.V) == 0 and np.count_nonzero(res.U[3:] == 0) > 0


def test_the_flow_integrates_in_flush_to_zero_mode(monkeypatch):
    modes = []
    rhs = fastmf.flow._State.rhs

    def spy(self, t, y):
        modes.append(fpmode.mode_bits())
        return rhs(self, t, y)

    monkeypatch.setattr(fastmf.flow._State, "rhs", spy)
    before = fpmode.mode_bits()
    gradient_flow(Problem.from_spectrum([2.0, 1.0], 20, 10), 2, 5.0, seed=0, t_eval=[0.0, 5.0])
    assert modes and fpmode.mode_bits() == before
    if fpmode.X86:
        assert all(mode & fpmode.FTZ_DAZ == fpmode.FTZ_DAZ for mode in modes)


def test_batch_half_step_flushes_subnormals():
    rng = np.random.default_rng(0)
    lanes = batch_lanes(np.float64)
    X = rng.standard_normal((5, 3, lanes))
    X[3:] = 1e-310  # subnormal complement rows
    Y = rng.standard_normal((5, 3, lanes))
    H, Xn = np.broadcast_to(np.eye(3)[:, :, None], (3, 3, lanes)).copy(), np.empty_like(X)  # H = I - lr G, G = 0
    Se = np.repeat(0.1 * np.array([2.0, 1.0])[:, None, None], lanes, axis=2)  # lr s_i, lane by lane
    _half_step(X, Y, Se, H, Xn)
    assert _subnormals(Xn) == 0 and np.all(Xn[3:] == 0)
    np.testing.assert_allclose(Xn[:2], X[:2] + Se * Y[:2], rtol=1e-15)  # eq 6 with G = 0


def test_flush_and_the_processor_mode():
    A = np.array([[1e-310, 1.0], [-5e-324, 2.3e-308]])
    fpmode.flush(A)
    np.testing.assert_array_equal(A, [[0.0, 1.0], [0.0, 2.3e-308]])
    B = np.array([[1e-40, 1.0]], dtype=np.float32)
    fpmode.flush(B)
    assert B[0, 0] == 0 and B.dtype == np.float32
    before = fpmode.mode_bits()
    with fpmode.flushing():
        inside = fpmode.mode_bits()
    assert fpmode.mode_bits() == before
    if fpmode.X86:
        assert inside & fpmode.FTZ_DAZ == fpmode.FTZ_DAZ and before & fpmode.FTZ_DAZ == 0


@pytest.mark.parametrize("scale", [0.0, 1e-310, 1e-200])
def test_certified_eigenvalue_of_a_zero_or_tiny_matrix(scale):
    M = scale * np.array([[2.0, 1.0], [1.0, 3.0]])
    work = [np.zeros((2, 2)) for _ in range(3)]
    value = extreme_eig(M, 2, True, 0.0, np.zeros(2), np.zeros(1, np.int64), 0, *work)
    assert np.isfinite(value)
    assert value == pytest.approx(np.linalg.eigvalsh(M)[-1], rel=1e-12, abs=0)


# ----------------------------------------------------------------------------- scale


def _scaled_problem(c, m=60, n=50):
    return Problem.from_spectrum(np.array([3.0, 2.0, 1.0, 0.5]) * c, m, n)


@pytest.mark.parametrize("e", [-120, -30, 1, 40, 110])
@pytest.mark.parametrize("complement", ["compressed", "full"])
def test_a_power_of_4_scale_changes_no_bit(e, complement):
    """GD on (Sigma / c, U / sqrt c, V / sqrt c, lr c) is the same run: with c = 4^e exactly."""
    c = 4.0**e
    kwargs = {"max_iter": 600, "seed": 3, "complement": complement, "record_every": 7, "delta": 1e-12}
    one = solve(_scaled_problem(1.0), 4, 0.1, init_scale=1e-4, **kwargs)
    big = solve(_scaled_problem(c), 4, 0.1 / c, init_scale=1e-4 * np.sqrt(c), delta=1e-12 * c * c,
                **{k: v for k, v in kwargs.items() if k != "delta"})  # fmt: skip
    root = 2.0**e
    for a, b in ((one.Up, big.Up), (one.Vp, big.Vp), (one.L_U, big.L_U), (one.L_V, big.L_V)):
        np.testing.assert_array_equal(a * root, b)
    np.testing.assert_array_equal(one.history["loss"] * c * c, big.history["loss"])
    np.testing.assert_array_equal(one.history["P_op"] * c, big.history["P_op"])
    np.testing.assert_array_equal(one.history["J_op"] * root, big.history["J_op"])
    assert (one.stages.T1, one.stages.T0, one.stages.T_delta) == (big.stages.T1, big.stages.T0, big.stages.T_delta)


@pytest.mark.parametrize("c", [1e-300, 1e-170, 1e-150, 1e152, 1e153, 1e300])
def test_any_scale_runs_as_scale_one(c):
    """(The loss itself, c^2 times scale 1's, is out of range for most of these c.)"""
    one = solve(_scaled_problem(1.0), 4, 0.2 / 3, 3000, init_scale=1e-4, seed=1)
    res = solve(_scaled_problem(c), 4, 0.2 / 3 / c, 3000, init_scale=1e-4 * np.sqrt(c), seed=1)
    assert res.status == one.status == "max_iter"
    assert (res.stages.T1, res.stages.T0) == (one.stages.T1, one.stages.T0) != (None, None)
    np.testing.assert_allclose(res.Up / np.sqrt(c), one.Up, rtol=1e-9, atol=1e-12)
    sigma = res.history["sigma_min_A"] / np.sqrt(c)
    np.testing.assert_allclose(sigma, one.history["sigma_min_A"], rtol=1e-9)


@pytest.mark.parametrize("c", [1e-300, 1e300])
def test_direct_batch_and_flow_at_extreme_scales(c):
    S = low_rank(np.random.default_rng(0), 30, 20, [3.0, 2.0, 1.0])
    one = solve(S, 3, 0.1, 500, init_scale=1e-3, seed=0, method="direct")
    res = solve(S * c, 3, 0.1 / c, 500, init_scale=1e-3 * np.sqrt(c), seed=0, method="direct")
    assert res.status == "max_iter"
    np.testing.assert_allclose(res.U / np.sqrt(c), one.U, rtol=1e-9, atol=1e-12)
    p1, pc = _scaled_problem(1.0), _scaled_problem(c)
    b1 = solve_batch(p1, 4, 0.1, 800, seeds=[0, 1])
    bc = solve_batch(pc, 4, 0.1 / c, 800, seeds=[0, 1], init_scale=b1.init_scale * np.sqrt(c))
    np.testing.assert_array_equal(bc.T0, b1.T0)
    assert np.all(np.isfinite(b1.T0)) and list(bc.status) == list(b1.status) == ["max_iter"] * 2
    f1 = gradient_flow(p1, 4, 40.0, init_scale=1e-3, seed=0, t_eval=[0.0, 40.0])
    fc = gradient_flow(pc, 4, 40.0 / c, init_scale=1e-3 * np.sqrt(c), seed=0, t_eval=[0.0, 40.0 / c])
    assert fc.status == f1.status == "t_max" and fc.stages.T0 * c == pytest.approx(f1.stages.T0, rel=1e-9)
    np.testing.assert_allclose(fc.Up / np.sqrt(c), f1.Up, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- outcomes


def test_no_convergence_at_step_0_for_a_tol_large_for_the_scale():
    p = _scaled_problem(1e-10)  # the loss starts near 7e-20
    res = solve(p, 4, 0.1e10, 4000, init_scale=1e-9, seed=0, tol=1e-6)
    assert res.n_iter > 0 and res.status == "converged"
    assert res.loss <= 1e-4 * 0.5 * np.sum(p.s**2)
    tiny = solve(_scaled_problem(1e-170), 4, 0.1e170, 50, seed=0)  # the loss underflowed to 0 here
    assert tiny.status == "max_iter" and tiny.n_iter == 50


def test_best_loss_of_width_k_counts_as_converged():
    """k < r: the loss cannot go below f* = 1/2 sum_{i>k} s_i^2; a tol above it converges."""
    p = Problem.from_spectrum([3.0, 2.0, 1.0, 0.1], 40, 30)
    best = 0.5 * 0.1**2
    res = solve(p, 3, 0.1, 20_000, init_scale=1e-4, seed=0, tol=best * (1 + 1e-6))
    assert res.status == "converged" and best <= res.loss <= best * (1 + 1e-6)


def test_divergence_advice_only_when_lr_breaks_the_bound():
    p = _scaled_problem(1e152)
    res = solve(p, 4, 0.2 / p.sigma_1, 300, seed=0)
    assert res.status == "max_iter"  # diverged before: the loss overflowed at this scale
    S = low_rank(np.random.default_rng(1), 20, 15, [2.0, 1.0])
    big_start = solve(S, 2, 0.1, 200, init_scale=30.0, seed=0, method="split", record_every=100)
    assert big_start.status == "diverged"
    assert "init_scale" in big_start.message and "stable for lr" not in big_start.message
    too_big_lr = solve(S, 2, 2.0, 200, seed=0, record_every=100)
    assert too_big_lr.status == "diverged" and "stable for lr <=" in too_big_lr.message


@pytest.mark.parametrize("method", ["split", "direct"])
def test_loss_is_the_loss_of_the_returned_state(method):
    S = low_rank(np.random.default_rng(2), 20, 15, [2.0, 1.0])
    res = solve(S, 2, 1.7, 300, seed=0, record_every=100, method=method)
    assert res.status == "diverged" and res.n_iter % 100 != 0
    R = S - res.U @ res.V.T
    assert res.loss == pytest.approx(0.5 * np.sum(R * R), rel=1e-9)
    assert res.history["step"][-1] == res.n_iter


def test_batch_final_loss_of_a_diverged_run_is_its_last_state():
    p = _scaled_problem(1.0)
    batch = solve_batch(p, 4, [1.0], 300, seeds=[0], record_every=100)
    res = solve(p, 4, 1.0, 300, seed=0, record_every=100, spectral_every=0)
    assert batch.status[0] == res.status == "diverged"
    assert batch.final_loss[0] == pytest.approx(res.loss, rel=1e-9)


def test_float32_lr_too_small_to_move_warns():
    p = Problem.from_spectrum(np.array([2.0, 1.0]), 10, 8, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="rounds to 1 in float32"):
        res = solve(p, 2, 1e-9, 5, seed=0)
    assert res.status == "max_iter"


def test_rebuilding_u_counts_what_it_allocates(monkeypatch):
    """Rebuilding U from a drawn W holds the draw, its QR and W (float64) besides U: the check
    must refuse when m k * 8 bytes fit but five times that do not."""
    res = solve(Problem.from_spectrum([2.0, 1.0], 50_000, 40), 2, 0.1, 3, seed=0)
    need = 50_000 * 2 * 8
    page = 4096
    monkeypatch.setattr(os, "sysconf", lambda name: page if name == "SC_PAGE_SIZE" else 3 * need // page)
    with pytest.raises(MemoryError, match="result.Up"):
        res.U  # noqa: B018


def test_gd_in_original_basis_agrees_after_internal_scaling():
    """The internal units are invisible: the split engine against plain GD, at scale 1e-100."""
    c = 1e-100
    rng = np.random.default_rng(4)
    S = low_rank(rng, 12, 9, [3.0, 1.5]) * c
    U0, V0 = 1e-2 * np.sqrt(c) * rng.standard_normal((12, 2)), 1e-2 * np.sqrt(c) * rng.standard_normal((9, 2))
    loss, _, U, V = gd(S, U0, V0, 0.1 / c, 200)
    res = solve(S, 2, 0.1 / c, 200, U0=U0, V0=V0, method="split")
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-8, atol=1e-12 * loss[0])
    np.testing.assert_allclose(res.U, U, rtol=1e-8, atol=1e-12 * np.abs(U).max())


# ----------------------------------------------------------------------------- extreme scales, the rest


@pytest.mark.parametrize("c", [1e-200, 1e200])
def test_direct_path_default_start_and_divergence_message_at_extreme_scales(c):
    """sigma_1 (for the default init_scale and the divergence advice) came from ARPACK on the
    unscaled Sigma, which fails below about 1e-160 and above 1e154 (wider than 128)."""
    rng = np.random.default_rng(0)
    S = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 200))
    s1 = np.linalg.norm(S, 2)
    one = solve(S, 4, 0.1 / s1, 100, seed=0, method="direct")
    res = solve(S * c, 4, 0.1 / (s1 * c), 100, seed=0, method="direct")
    np.testing.assert_allclose(res.U / np.sqrt(c), one.U, rtol=1e-6, atol=1e-12)
    assert fastmf.direct.top_singular_value(S * c) == pytest.approx(s1 * c, rel=1e-12)


@pytest.mark.parametrize("c", [1e-120, 1e120])
def test_theory_prescriptions_at_any_scale(c):
    s, m, n = np.array([4.0, 2.0, 1.0]), 50, 40
    eps, eps_c = fastmf.theory.init_scale(s, m, n), fastmf.theory.init_scale(s * c, m, n)
    assert eps_c == pytest.approx(eps * np.sqrt(c), rel=1e-12)
    lr, lr_c = fastmf.theory.step_size(s, eps), fastmf.theory.step_size(s * c, eps_c)
    assert lr_c == pytest.approx(lr / c, rel=1e-12)
    assert fastmf.theory.T0(s * c, lr_c, eps_c) == pytest.approx(fastmf.theory.T0(s, lr, eps), rel=1e-12)
    res = solve(Problem.from_spectrum(s * c, m, n), 3, "theory", 10, init_scale="theory", seed=0)
    assert res.lr == pytest.approx(lr / c, rel=1e-12) and res.status == "max_iter"


def test_resume_keeps_the_stages_where_the_loss_leaves_the_double_range(tmp_path):
    p = Problem.from_spectrum(np.ldexp(np.geomspace(4, 1, 6), 600), 60, 50)  # the loss is ~4^600: inf
    kw = {"lr": np.ldexp(0.08, -600), "init_scale": np.ldexp(1e-6, 300), "seed": 0, "record_every": 7}
    unbroken = solve(p, 6, max_iter=1500, **kw)
    solve(p, 6, max_iter=450, checkpoint=tmp_path / "c.npz", **kw)
    resumed = fastmf.resume(tmp_path / "c.npz", max_iter=1500)
    assert unbroken.stages.rate is not None and resumed.stages == unbroken.stages


def test_the_flow_leaves_the_callback_in_the_callers_mode():
    seen = []
    gradient_flow(Problem.from_spectrum([2.0, 1.0], 10, 10), 2, 10.0, seed=0, callback=lambda st: seen.append(
        fpmode.mode_bits()) or True)  # fmt: skip
    assert seen == [fpmode.mode_bits()]


@pytest.mark.parametrize("c", [1e-170, 1e160, 1e300])
def test_the_basis_residual_check_works_at_any_scale(c):
    S = low_rank(np.random.default_rng(1), 30, 20, [3.0, 2.0, 1.0, 0.5])
    p = Problem(S * c)  # warnings are errors here: no overflow in the check
    assert 0 <= p.basis_residual < 1e-12 and p.rank == 4


def test_float32_lr_beyond_its_range_names_lr():
    p = Problem.from_spectrum(np.array([2.0, 1.0], np.float32), 10, 10)
    with pytest.raises(ValueError, match="lr = 1e[+]39 is beyond the range of float32"):
        solve(p, 2, 1e39, 20, seed=0)


def test_a_start_that_flushes_to_zero_warns():
    with pytest.warns(RuntimeWarning, match="flushed to U = V = 0"):
        res = solve(_scaled_problem(1.0), 4, 0.1, 20, init_scale=1e-320, seed=0)
    assert np.all(res.Up == 0)


def test_direct_path_on_a_float32_sigma_at_the_edge_of_its_range():
    """Entries near 1e-38 are partly subnormal in float32: the direct path scales a copy of Sigma
    outside the flush-to-zero mode, so it reads them as they are and agrees with the split path."""
    S = (low_rank(np.random.default_rng(3), 40, 30, [3.0, 2.0, 1.0]) * 1e-38).astype(np.float32)
    assert np.count_nonzero((S != 0) & (np.abs(S) < np.finfo(np.float32).tiny)) > 0
    s1 = float(np.linalg.norm(S.astype(np.float64), 2))
    runs = [solve(S, 3, 0.3 / s1, 400, seed=0, method=method) for method in ("direct", "split")]
    half_norm2 = 0.5 * float(np.sum(S.astype(np.float64) ** 2))
    for res in runs:
        assert res.loss < 1e-8 * half_norm2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("blocks_in, offset", [(0, 1), (1, -1), (1, 0), (1, 1), (2, 3)])
def test_block_grams_of_a_tall_state_match_numpy(dtype, blocks_in, offset):
    # rows in several blocks of _block_rows(k) rows, r inside the first block, on a block boundary
    # (the complement starts a block) or past it: N = X^T X and the complement's Gram X[r:]^T X[r:]
    # from grams and from half_step (whose new state then equals the NumPy step)
    from fastmf._kernels import blocks

    k = 64
    block = blocks._block_rows(k)
    r = blocks_in * block + offset
    rng = np.random.default_rng(r)
    X, Y = (rng.standard_normal((3 * block + 5, k)).astype(dtype) for _ in range(2))
    s = np.linspace(2.0, 1.0, r).astype(dtype)
    N, Gc, T, Mh = (np.full((k, k), np.nan, dtype) for _ in range(4))
    tol = {np.float64: 1e-12, np.float32: 1e-4}[dtype]
    blocks.grams(X, r, N, Gc, T, True)
    X64 = X.astype(np.float64)
    assert np.allclose(N, X64.T @ X64, rtol=tol, atol=tol * len(X))
    assert np.allclose(Gc, X64[r:].T @ X64[r:], rtol=tol, atol=tol * len(X))
    lr = dtype(0.01)
    blocks.shifted((Y.T @ Y).astype(dtype), lr, Mh)
    Xn = np.empty_like(X)
    blocks.half_step(X, Y, s, lr, Mh, Xn, N, Gc, T, True)
    expected = X64 - 0.01 * X64 @ (Y.T.astype(np.float64) @ Y) + 0.01 * np.vstack([s[:, None] * Y[:r], 0 * Y[r:]])
    assert np.allclose(Xn, expected, rtol=tol, atol=tol * 10)
    Xn64 = Xn.astype(np.float64)
    assert np.allclose(Gc, Xn64[r:].T @ Xn64[r:], rtol=tol, atol=tol * len(X))


def test_a_cancelling_cross_block_of_the_loss_is_summed_from_the_rows():
    # Up L_V^T = 0 exactly (L_V lives in a direction of its own), but in rotated coordinates the Gram
    # form <Up^T Up, L_V^T L_V> sums terms of size 1e-4 to about 1e-20: the record must take the rows
    from fastmf.split import diagnostic_work

    r, k = 3, 4
    Q = np.linalg.qr(np.random.default_rng(6).standard_normal((k, k)))[0]  # (both Gram forms come out positive)
    X, Y = np.zeros((r + 1, k)), np.zeros((r + 1, k))
    X[:r, :r], Y[:r, :r] = 0.1 * np.eye(r), 0.1 * np.eye(r)
    X[r, r], Y[r, r] = 0.3, 0.2
    X, Y = X @ Q, Y @ Q
    s = np.array([3.0, 2.0, 1.0])
    E, D, vecs, valid = diagnostic_work(r, k)
    row, info = np.zeros(K.N_KEYS), np.full(K.N_INFO, -1, np.int64)
    K.state_record(X, Y, s, np.zeros((5, k, k)), E, 0, False, row, D, vecs, valid, info, None, X, Y)  # (no QR work)
    # the Gram forms give about 1e-20; the rows' sums of squares are at the level of the product's rounding
    for key in ("loss_Up_LV", "loss_LU_Vp"):
        assert 0.0 <= row[K.KEYS.index(key)] <= 1e-30, (key, row[K.KEYS.index(key)])


@pytest.mark.parametrize("dtype, size", [(np.float64, 1e-3), (np.float64, 1e-138), (np.float64, 1e-170),
                                         (np.float64, 1e-300), (np.float32, 1e-3), (np.float32, 1e-12),
                                         (np.float32, 1e-19), (np.float32, 1e-25)])  # fmt: skip
def test_the_complement_gram_keeps_j_op_to_its_last_digits(dtype, size):
    # J_op = ||L||_2 from the Gram of the complement rows L = X[r:]: the kernel's own Gram where it is
    # exact, a Gram of L / max|L| where L^T L is near underflow (float64 below about 1e-138, float32 below
    # about 1e-12, where some of its products are flushed to 0), in the flush-to-zero mode of a run
    from fastmf._kernels import blocks, diagnostics

    r, k = 2, 5
    rng = np.random.default_rng(3)
    X = np.vstack([rng.standard_normal((r, k)), size * rng.standard_normal((k - 1, k))]).astype(dtype)
    N, Gc, T = (np.zeros((k, k), dtype) for _ in range(3))
    out, work = np.zeros((k, k)), np.zeros((k, k))
    with fpmode.flushing():
        blocks.grams(X, r, N, Gc, T, True)
        scale = diagnostics._complement_gram(X, r, Gc, out, work)
    expected = np.linalg.norm(X[r:].astype(np.float64) / size, 2)
    rtol = 1e-6 if dtype == np.float32 and size >= 1e-12 else 1e-12  # (float32's own Gram: its sums' rounding)
    np.testing.assert_allclose(np.sqrt(np.linalg.eigvalsh(out)[-1]) * scale / size, expected, rtol=rtol)
    if size == 1e-3:  # far from underflow: the kernel's Gram as it is
        assert scale == 1.0 and np.array_equal(out, Gc.astype(np.float64))
