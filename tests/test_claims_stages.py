"""The stage claims of Ye and Du 2021 at their quick size: each verdict's numbers, and the table
behind it, checked against the paper's statements written out here again. The figures are drawn
and checked where matplotlib is installed; the verdicts are checked everywhere."""

import csv
import importlib.util

import numpy as np
import pytest

import fastmf
from fastmf import claims
from fastmf.claims import stages

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
S = stages.SPECTRUM
SIGMA_D, SIGMA_1, D, ETA = S.min(), S.max(), S.size, stages.LR
M, N = stages.SHAPE
EPS = SIGMA_D / np.sqrt(D**3 * SIGMA_1 * (M + N))  # Theorem 1.1's eps with c = 1
ROUNDING = 100 * np.finfo(np.float64).eps
NAMES = ("stage-order", "delta-bound", "T-delta-slopes", "T1-epsilon", "T0-kappa", "dimension-free", "rank-mismatch")


def reproduce(name, tmp_path):
    """The quick run of a claim, its table read back from the CSV; the PNG checked where it can be drawn."""
    verdict = fastmf.reproduce(name, quick=True, output=tmp_path, figure=HAVE_MATPLOTLIB)
    if HAVE_MATPLOTLIB:
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    with open(tmp_path / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    table = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    return verdict, table


def numbers(column):
    return column.astype(np.float64)


def test_the_module_lists_its_claims():
    listed = [c.name for c in fastmf.claims.claims() if c.run.__module__ == stages.__name__]
    assert listed == list(NAMES)


def test_stage_order(tmp_path):
    """Theorem 3.1: T0 <= ln(c^2 d sigma_d / eps^2) / (eta sigma_d) (constant 1, c the start's constant of
    section 3.1) and its conditions on A, B, J, K up to T0; section 3.3: from T0 on the loss falls at least
    by (1 - eta sigma_d / 2)^2 at every step."""
    verdict, table = reproduce("stage-order", tmp_path)
    assert stages.EPS == pytest.approx(EPS, rel=1e-12)
    c = numbers(table["c"])
    assert c[0] == pytest.approx(start_constant(0), rel=1e-9)
    T0_bound = np.log(c**2 * D * SIGMA_D / EPS**2) / (ETA * SIGMA_D)
    np.testing.assert_allclose(numbers(table["T0_bound"]), T0_bound, rtol=1e-12)
    assert np.all(numbers(table["T0"]) <= T0_bound)
    for key in "ABJK":  # traced for the first seeds only
        ratios = numbers(table[f"condition_{key}"])
        assert np.isfinite(ratios).sum() >= 3 and np.nanmax(ratios) <= 1
    bound = (1 - ETA * SIGMA_D / 2) ** 2
    assert np.all(numbers(table["factor_max"]) <= bound) and np.all(numbers(table["envelope_max"]) <= 1)
    balanced = (1 - ETA * SIGMA_D) ** 2  # the complement's slowest mode at a balanced minimum
    assert 1 - np.median(numbers(table["tail_rate"])) == pytest.approx(1 - balanced, rel=0.02)
    assert verdict.values["local_rate_median"] == pytest.approx(balanced, rel=1e-4)
    assert verdict.holds


def start_constant(seed):
    """Section 3.1's constant c of a start, from the dense U_0, V_0 (Sigma's singular basis is the standard one):
    the least c with sigma_d(A_0) >= eps / (c sqrt d), ||B_0||_F <= c d eps, ||J_0||_op <= c eps sqrt(m - d),
    ||K_0||_op <= c eps sqrt(n - d)."""
    start = fastmf.solve(fastmf.Problem.from_spectrum(S, M, N), D, ETA, 0, init_scale=EPS, seed=seed, progress=False)
    U, V = start.U, start.V
    A, B = (U[:D] + V[:D]) / 2, (U[:D] - V[:D]) / 2
    ratios = (
        EPS / (np.sqrt(D) * np.linalg.svd(A, compute_uv=False).min()),
        np.linalg.norm(B) / (D * EPS),
        np.linalg.norm(U[D:], 2) / (EPS * np.sqrt(M - D)),
        np.linalg.norm(V[D:], 2) / (EPS * np.sqrt(N - D)),
    )
    return max(ratios)


def test_after_T0_against_a_hand_computed_loss():
    steps = np.arange(6)
    losses = np.array([[2.0, 1.0, 0.5, 0.25, 0.2, np.nan], [1.0, 0.9, 0.8, 0.1, 1e-40, np.nan]])
    factor, envelope = stages.after_T0(steps, losses, np.array([1, 0]), 0.6)
    # run 0 from T0 = 1: factors 0.5, 0.5, 0.8; envelope 0.5 / 0.6, 0.25 / 0.36, 0.2 / 0.216
    # run 1 from T0 = 0, the record under the rounding floor left out: factors 0.9, 0.8 / 0.9, 0.125
    np.testing.assert_allclose(factor, [0.8, 0.9])
    np.testing.assert_allclose(envelope, [0.2 / 0.216, 0.8 / 0.36])


def test_delta_bound(tmp_path):
    """Condition (2): E_op <= (2/5) sigma_d (1 - eta sigma_d / 2)^(t - T0) for t >= T0."""
    verdict, table = reproduce("delta-bound", tmp_path)
    since = numbers(table["since_T0"])
    after = since >= 0
    bound = 0.4 * SIGMA_D * (1 - ETA * SIGMA_D / 2) ** since[after]
    assert np.all(numbers(table["E_op"])[after] <= bound)
    assert verdict.values["worst_ratio"] == pytest.approx(np.max(numbers(table["E_op"])[after] / bound), rel=1e-9)
    # then E_op falls as the principal block's slowest mode at a balanced minimum, 1 - 2 eta sigma_d a step
    factor = np.exp(np.polyfit(since[after], np.log(numbers(table["E_op"])[after]), 1)[0])
    assert 1 - factor == pytest.approx(2 * ETA * SIGMA_D, rel=0.05)
    assert verdict.holds


def test_t_delta_slopes(tmp_path):
    """Theorem 1.1 (scale-invariant form): T_delta <= (ln(d sigma_d / eps^2) + ln(sigma_d^2 / delta)) / (eta sigma_d)
    for every run of both sweeps, with the one constant 1; the step sizes' runs have distinct seeds; the tail
    of the delta sweep as steep as the complement's slowest mode (1 - eta sigma_d)^2 makes it."""
    verdict, table = reproduce("T-delta-slopes", tmp_path)
    inverse, delta, T = numbers(table["inv_eta_sigma_d"]), numbers(table["delta"]), numbers(table["T_delta"])
    bound = (np.log(D * SIGMA_D / EPS**2) + np.log(SIGMA_D**2 / delta)) * inverse
    assert np.all(np.isfinite(T)) and np.all(T <= bound)
    assert verdict.values["c_needed"] == pytest.approx(np.max(T / bound), rel=1e-12)
    eta_sweep = table["sweep"] == "eta"
    assert np.unique(table["seed"][eta_sweep]).size == eta_sweep.sum()
    deltas = np.unique(delta[~eta_sweep])[::-1]
    medians = np.array([np.median(T[~eta_sweep & (delta == level)]) for level in deltas])
    last = (medians[-1] - medians[-2]) / np.log(deltas[-2] / deltas[-1])  # steps per unit of ln(1/delta)
    assert last == pytest.approx(1 / (-2 * np.log(1 - ETA * SIGMA_D)), rel=0.05)
    assert verdict.holds


def test_t1_epsilon(tmp_path):
    """Lemma 3.2: sigma_d(A A^T) grows by (1 + eta sigma_d)^2 a step while small, so T1 grows by
    1 / (2 ln(1 + eta sigma_d)) steps per unit of ln(d sigma_d / eps^2)."""
    verdict, table = reproduce("T1-epsilon", tmp_path)
    x = np.log(D * SIGMA_D / numbers(table["init_scale"]) ** 2)
    slope = np.polyfit(x, numbers(table["T1_median"]), 1)[0]
    assert slope == pytest.approx(1 / (2 * np.log1p(ETA * SIGMA_D)), rel=0.1)
    assert verdict.values["slope"] == pytest.approx(slope * ETA * SIGMA_D, rel=1e-9)
    assert np.all(numbers(table["T1_median"]) < numbers(table["T0_median"]))
    assert verdict.holds


def test_sweep_gives_every_level_its_own_seeds():
    batch = stages.sweep(fastmf.Problem.from_spectrum([2.0, 1.0], 20, 20), 3, "init_scale", [1e-3, 1e-2], k=2,
                         lr=0.05, max_iter=5)  # fmt: skip
    assert np.unique(batch.seed).size == 6
    np.testing.assert_array_equal(batch.init_scale, [1e-3] * 3 + [1e-2] * 3)


def test_t0_kappa(tmp_path):
    """Section 3.2.4, eq (18): T0 - T1 <= ln(4 kappa) / (-2 ln(1 - eta sigma_d / 2)) in every run."""
    verdict, table = reproduce("T0-kappa", tmp_path)
    kappa, lr = numbers(table["kappa"]), numbers(table["lr"])
    gap = numbers(table["T0"]) - numbers(table["T1"])
    assert np.all(gap > 0)
    assert np.all(gap <= np.log(4 * kappa) / (-2 * np.log(1 - lr * 1.0 / 2)))  # sigma_d = 1
    assert verdict.values["slope"] < 1  # in units of 1 / (eta sigma_d) per unit of ln kappa; the bound's is 1
    assert verdict.holds


def test_dimension_free(tmp_path):
    """At fixed eps (the same seeds at every m), T1 and T0 do not move with m = n; at the prescribed eps
    (distinct seeds at every m) they grow by about 1 / (2 ln(1 + eta sigma_d)) steps per unit of ln(m + n)
    (ln(d sigma_d / eps^2) = ln(m + n) + const)."""
    verdict, table = reproduce("dimension-free", tmp_path)
    m = numbers(table["m"])
    for start in ("fixed", "theory"):
        on = table["start"] == start
        sizes = np.unique(m[on])
        seeds = [set(table["seed"][on & (m == size)]) for size in sizes]
        if start == "fixed":
            assert all(found == seeds[0] for found in seeds)
        else:
            assert len(set.union(*seeds)) == sum(map(len, seeds))
        for name in ("T1", "T0"):
            medians = np.array([np.median(numbers(table[name])[on & (m == size)]) for size in sizes])
            if start == "fixed":
                assert np.ptp(medians) <= 0.02 * np.median(medians)
            else:
                slope = np.polyfit(np.log(2 * sizes), medians, 1)[0]
                assert slope == pytest.approx(1 / (2 * np.log1p(ETA * SIGMA_D)), rel=0.1)
    assert verdict.holds


def test_rank_mismatch(tmp_path):
    """Eckart-Young: the loss of width k is never below f* = 1/2 sum_{i > k} sigma_i^2; for k <= r GD reaches
    the best rank-k approximation Sigma_k; for k > r the loss falls at every step, ever more slowly."""
    verdict, table = reproduce("rank-mismatch", tmp_path)
    k = table["k"].astype(int)
    assert set(k) == {D - 1, D, D + 1, 2 * D}
    best = np.array([0.5 * np.sum(S[width:] ** 2) for width in k])
    excess = (numbers(table["final_loss"]) - best) / (0.5 * np.sum(S**2))
    assert np.all(excess >= -ROUNDING)
    assert np.all(numbers(table["distance"])[k <= D] <= 1e-10)
    for width in (D + 1, 2 * D):
        assert verdict.values[f"rising_max_k{width}"] <= ROUNDING  # the loss never rises
        assert verdict.values[f"slowing_max_k{width}"] < 1  # each run slower over the last third than the middle
        # at k > r the distance to Sigma_k = Sigma is the loss's: sqrt(2 f) / ||Sigma||_F
        on = k == width
        from_loss = np.sqrt(2 * numbers(table["final_loss"])[on]) / np.linalg.norm(S)
        np.testing.assert_allclose(numbers(table["distance"])[on], from_loss, rtol=1e-6)
    assert verdict.holds


def test_distance_against_dense_factors():
    """||U V^T - Sigma_k||_F / ||Sigma||_F from the split state equals the dense computation."""
    s = np.array([3.0, 2.0, 1.0])
    problem = fastmf.Problem.from_spectrum(s, 9, 7)
    for k in (2, 4):
        run = fastmf.solve(problem, k, 0.05, 30, init_scale=0.3, seed=1, progress=False)
        best = np.zeros((9, 7))
        best[np.arange(min(k, 3)), np.arange(min(k, 3))] = s[:k]
        dense = np.linalg.norm(run.U @ run.V.T - best) / np.linalg.norm(s)
        assert stages.distance(run, s) == pytest.approx(dense, rel=1e-10)


def test_window_rate():
    steps = np.arange(100)
    excess = np.where(steps < 50, 0.9**steps, 0.9**50 * 0.99 ** (steps - 50))
    assert stages.window_rate(steps, excess, 0, 49) == pytest.approx(0.1)
    assert stages.window_rate(steps, excess, 50, 99) == pytest.approx(0.01)


def test_fit_and_first_below():
    slope, intercept, r2 = stages.fit([1.0, 2.0, 4.0], [3.0, 5.0, 9.0])
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    steps = np.arange(5)
    losses = np.array([[1.0, 0.5, 0.1, 0.01, np.nan], [1.0, 1.0, 1.0, 1.0, 1.0]])
    found = claims.first_below(steps, losses, [0.5, 0.05])
    np.testing.assert_array_equal(found, [[1, 3], [np.nan, np.nan]])
