"""The claims of fastmf/claims/beyond.py: each quick run against its paper's statement, and the
measurements they rest on against plainly written NumPy (each verdict's numbers are recomputed from
the table it wrote)."""

import csv

import numpy as np
import pytest

import fastmf
from fastmf.claims import first_below
from fastmf.claims.beyond import late_factor, ward_kolda_start


def read_table(path) -> dict:
    """The columns of a claim's CSV file, as float arrays where they are numbers."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    for key, column in columns.items():
        try:
            columns[key] = column.astype(float)
        except ValueError:
            pass
    return columns


def slope(x, y) -> float:
    """The least-squares slope of y against x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2))


def test_first_below_is_the_first_recorded_step_at_or_under_each_level():
    steps = np.array([0, 10, 20, 30, 40])
    losses = np.array([[4.0, 2.0, 1.0, 0.5, np.nan], [3.0, 3.0, 3.0, 3.0, 3.0]])
    found = first_below(steps, losses, [2.0, 0.6, 0.1])
    expected = np.array([[10, 30, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(found, expected)


def test_late_factor_takes_the_last_decade_before_the_floor():
    # a fast mode 0.5^t above a slow one 1e-30 0.9^t: the loss reaches 1e-24 of its start in the
    # fast mode, so the slow one (below the floor) must not enter the fit
    t = np.arange(400)
    loss = 0.5**t + 1e-30 * 0.9**t
    assert late_factor(t, loss) == pytest.approx(0.5, rel=1e-9)


def test_late_factor_takes_the_end_when_the_loss_stays_above_the_floor():
    # a fast mode dies, a slow one 1e-6 (1 - 1e-7)^t remains: the factor at the end is the slow one
    t = np.arange(0, 20_000, 10)
    loss = 0.8**t + 1e-6 * (1 - 1e-7) ** t
    assert 1 - late_factor(t, loss) == pytest.approx(1e-7, rel=1e-4)


def test_late_factor_skips_what_lies_past_a_run_s_end():
    t = np.arange(100)
    loss = np.where(t < 60, 0.7**t, np.nan)
    assert late_factor(t, loss) == pytest.approx(0.7, rel=1e-9)


def test_ward_kolda_start_is_sigma_phi_against_a_small_random_psi():
    s, n, d, lr, c_y, c_x = np.array([4.0, 2.0, 1.0]), 50, 6, 0.05, 0.7, 4.0
    given = ward_kolda_start(s, n, d, lr, c_y, seed=3, c_x=c_x)
    rng = np.random.default_rng(3)
    phi = rng.standard_normal((3, d)) / np.sqrt(d)  # Sigma = diag(s) padded: Sigma Phi's rows are s_i Phi_i
    psi = rng.standard_normal((n, d)) / np.sqrt(n)
    np.testing.assert_allclose(given.Up, np.diag(s) @ phi / (np.sqrt(lr) * c_x * s[0]), rtol=1e-14)
    assert given.L_U.shape == (0, d)  # U0 lies in the range of Sigma
    y = np.sqrt(lr) * c_y * s[0] * psi
    np.testing.assert_allclose(given.Vp, y[:3], rtol=1e-14)
    # the complement rows as a d x d factor of the same Gram matrix (the frame is the run's own)
    np.testing.assert_allclose(given.L_V.T @ given.L_V, y[3:].T @ y[3:], rtol=1e-12, atol=1e-15)


def test_width_rate_quick(tmp_path):
    verdict = fastmf.reproduce("width-rate", quick=True, output=tmp_path)
    table = read_table(tmp_path / "width-rate.csv")
    sweep = table["steps"] == 20_000
    scales = np.unique(table["init_scale"][sweep])
    median = {}
    for k in (3, 5):
        rows = sweep & (table["k"] == k)
        median[k] = np.array([np.median(1 - table["late_factor"][rows & (table["init_scale"] == a)]) for a in scales])
    exponent = slope(np.log(scales), np.log(median[5]))
    assert verdict.values["exponent"] == pytest.approx(exponent, rel=1e-9)
    # k > r: exp(-Omega(alpha^2 T)) means 1 - q >= c alpha^2, so 1 - q ~ alpha^p with p <= 2 (and >= 1: set by alpha)
    assert 1.0 <= exponent <= 2.1
    assert verdict.values["alpha2_constant"] == pytest.approx(np.min(median[5] / scales**2), rel=1e-9)
    # k = r: the same rate at every scale, the linearization's 1 - (1 - lr sigma_r)^2 (lr = 0.1, sigma_r = 1)
    assert median[3].max() / median[3].min() - 1 <= 0.01
    assert median[3] == pytest.approx(1 - 0.9**2, rel=1e-3)
    # the symmetric start: the loss falls no faster than the paper's Omega(1/T^2)
    problem = fastmf.Problem.from_spectrum([3.0, 2.0, 1.0], 30, 30)
    run = fastmf.solve(problem, 5, 0.1, 200_000, seed=0, init_scale=1e-2, init="symmetric", record_every=10,
                       spectral_every=0, progress=False)  # fmt: skip
    t, loss = run.history["step"], run.history["loss"]
    tail = t >= 20_000
    sym_slope = slope(np.log(t[tail]), np.log(loss[tail]))
    assert verdict.values["symmetric_loss_slope"] == pytest.approx(sym_slope, rel=1e-9)
    assert -2.1 <= sym_slope <= -1.0
    assert verdict.holds


def test_alternating_count_quick(tmp_path):
    verdict = fastmf.reproduce("alternating-count", quick=True, output=tmp_path)
    table = read_table(tmp_path / "alternating-count.csv")
    kappas, eps = np.unique(table["kappa"]), np.unique(table["eps"])[::-1]
    assert kappas.tolist() == [4, 8, 16]
    assert np.all(table["width"] > 5)  # the theorem's d > r (r = 5)
    fitted = eps <= 1e-4
    found = {}
    for name, key in (("ward-kolda c'=0.1", "small_y"), ("ward-kolda c'=1", "large_y"), ("fastmf", "fastmf")):
        rows = table["start"] == name
        median = np.array([[np.median(table["steps"][rows & (table["kappa"] == k) & (table["eps"] == e)])
                            for e in eps] for k in kappas])  # fmt: skip
        per_log = np.array([slope(np.log(1 / eps[fitted]), row[fitted]) for row in median])
        found[key] = {
            "exponent": slope(np.log(kappas), np.log(median[:, -1])),
            "exponent_per_log": slope(np.log(kappas), np.log(per_log)),
            "C": np.max(median / (kappas[:, None] ** 2 * np.log(1 / eps))),
            "r2": min(np.corrcoef(np.log(1 / eps[fitted]), row[fitted])[0, 1] ** 2 for row in median),
            "reached": np.all(np.isfinite(table["steps"][rows])),
        }
        for name in ("exponent", "exponent_per_log", "C"):
            assert verdict.values[f"{name}_{key}"] == pytest.approx(found[key][name], rel=1e-9)
    for key in ("small_y", "large_y"):  # their start: O(kappa^2 ln(1/eps)), at most kappa^2 and linear in ln(1/eps)
        assert found[key]["reached"]
        assert found[key]["exponent"] <= 2.1
        assert found[key]["exponent_per_log"] <= 2.1
        assert found[key]["r2"] >= 0.98
    assert verdict.values["r2"] == pytest.approx(min(found["small_y"]["r2"], found["large_y"]["r2"]), rel=1e-9)
    assert verdict.holds


def test_variants_quick(tmp_path):
    verdict = fastmf.reproduce("variants", quick=True, output=tmp_path)
    table = read_table(tmp_path / "variants.csv")
    assert table["steps"].size == 2 * 4 * 3  # 2 kappas x 4 variants x 3 seeds
    kappas = np.unique(table["kappa"])
    median = {}
    for name in ("plain GD", "balanced", "perturbed", "decaying step"):
        rows = table["variant"] == name
        steps = np.where(np.isnan(table["steps"]), np.inf, table["steps"])
        median[name] = np.array([np.median(steps[rows & (table["kappa"] == k)]) for k in kappas])
        # the noise: nu^2 = 0.75 x 4 lr delta / (k (m + n - 2r)), lr = 0.3 / sigma_1, delta = 1e-10 ||Sigma||_F^2 / 2
        delta = np.array([1e-10 * 0.5 * np.sum(np.geomspace(k, 1, 5) ** 2) for k in table["kappa"][rows]])
        nu = np.sqrt(0.75 * 4 * (0.3 / table["kappa"][rows]) * delta / (5 * 1990)) if name == "perturbed" else 0.0
        np.testing.assert_allclose(table["noise"][rows], nu, rtol=1e-12)
    best = np.min([median[name] for name in ("balanced", "perturbed", "decaying step")], axis=0)
    ratio = median["plain GD"] / best
    assert verdict.values["ratio_max"] == pytest.approx(ratio.max(), rel=1e-12)
    # no variant beats plain GD by more than 10%
    assert ratio.max() <= 1.1
    # the noise acts: its floor at 3/4 of the level costs perturbed GD at least 1% more steps than plain GD
    assert np.all(median["perturbed"] >= 1.01 * median["plain GD"])
    assert verdict.values["perturbed_vs_plain_max"] == pytest.approx(np.max(median["perturbed"] / median["plain GD"]))
    assert verdict.holds
