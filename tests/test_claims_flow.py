"""The gradient-flow claims (fastmf.claims.flow), each at its quick size, checked against the papers'
statements: the numbers are recomputed from NAME.csv with the paper's formulas written out here."""

import csv

import numpy as np
import pytest

import fastmf
from fastmf.claims import claims

RTOL = 1e-10  # the claims' ODE tolerance
TOL = 100 * RTOL  # a flow's global error, relative
NAMES = ("closed-form", "sandwich", "imbalance-conserved", "coupling", "asymmetry-decreasing", "gd-to-flow",
         "flow-lower-bound")  # fmt: skip


def slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Every claim of the module at its quick size: {name: (verdict, table read back from NAME.csv)}."""
    found = {}
    for name in NAMES:
        folder = tmp_path_factory.mktemp(name)
        verdict = fastmf.reproduce(name, quick=True, output=folder)
        with open(verdict.csv, newline="") as f:
            rows = list(csv.reader(f))
        table = {key: np.array(column) for key, column in zip(rows[0], zip(*rows[1:], strict=True), strict=True)}
        found[name] = (verdict, table)
    return found


def column(table, key):
    return table[key].astype(float)


def test_the_module_registers_its_claims():
    listed = [c.name for c in claims()]
    assert set(NAMES) <= set(listed)
    assert all(c.source and c.statement for c in claims() if c.name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_csv_has_the_table_and_the_verdict_agrees(quick, name):
    verdict, table = quick[name]
    assert list(table) == list(verdict.outcome.table)
    assert all(len(value) == len(np.ravel(verdict.outcome.table[key])) for key, value in table.items())
    assert verdict.holds, verdict.line
    assert verdict.line.startswith(f"{name}: agrees: measured ")
    if verdict.png is not None:  # matplotlib installed: the figure was drawn
        with open(verdict.png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_closed_form_is_eq_8(quick):
    _, table = quick["closed-form"]
    a0, t, sigma = column(table, "a0"), column(table, "t"), column(table, "sigma_i")
    e = np.exp(2 * sigma * t)
    printed = sigma * e / (e + sigma / a0**2 - 1)  # eq 8 as printed
    np.testing.assert_allclose(column(table, "closed_form"), printed, rtol=1e-12)
    np.testing.assert_allclose(column(table, "flow"), printed, rtol=TOL)
    assert np.all(column(table, "rel_deviation") <= TOL)
    assert set(a0) >= {1e-3, 2.0}  # a start below sigma_d and one above sigma_1
    assert column(table, "flow")[t == t.max()] == pytest.approx(
        sigma[t == t.max()], rel=1e-2
    )  # the range covers the growth


def eq_8(sigma, a0, t):
    """s_i(t; a0) = sigma_i e^{2 sigma_i t} / (e^{2 sigma_i t} + sigma_i / a0^2 - 1), the gradient-flow paper's eq 8."""
    e = np.exp(2 * sigma * t)
    return sigma * e / (e + sigma / a0**2 - 1)


def scaled_eigenvalues(S, D):
    """The eigenvalues of D^(-1/2) S D^(-1/2), D = diag(D) (rows of stacked S and D): >= 1 iff S >= D."""
    root = np.sqrt(D)
    return np.linalg.eigvalsh(S / root[:, :, None] / root[:, None, :])


def test_sandwich_holds_for_every_start(quick):
    verdict, table = quick["sandwich"]
    d = 4
    k, t = column(table, "k"), column(table, "t")[:, None]
    alpha, beta = column(table, "alpha")[:, None], column(table, "beta")[:, None]
    sigma = np.stack([column(table, f"sigma_{i}") for i in range(1, d + 1)], axis=1)
    S = np.empty((t.size, d, d))
    for i in range(d):
        for j in range(i, d):
            S[:, i, j] = S[:, j, i] = column(table, f"UUt_{i + 1}{j + 1}")
    # alpha and beta are U0's extreme singular values: the square roots of U U^T(0)'s extreme eigenvalues
    start = t[:, 0] == 0
    square = k == d
    eigenvalues = np.linalg.eigvalsh(S[start])
    np.testing.assert_allclose(np.sqrt(eigenvalues[:, -1]), beta[start, 0], rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(eigenvalues[square[start], 0]), alpha[start & square, 0], rtol=1e-10)
    assert np.all(alpha[~square] == 0) and (~square).any() and square.any()  # the d x 2 start: alpha = 0
    # Theorem 4: diag(s_i(t; alpha)) <= U U^T(t) <= diag(s_i(t; beta)); for alpha = 0 the lower bound is 0
    above = scaled_eigenvalues(S[square], eq_8(sigma[square], alpha[square], t[square]))
    below = scaled_eigenvalues(S, eq_8(sigma, beta, t))
    assert above.min() >= 1 - TOL and below.max() <= 1 + TOL
    # the claim measured against these bounds, not looser ones
    np.testing.assert_allclose(column(table, "lambda_min_vs_lower")[square], above[:, 0], rtol=1e-9)
    np.testing.assert_allclose(column(table, "lambda_max_vs_upper"), below[:, -1], rtol=1e-9)
    worst = max(1 - above.min(), below.max() - 1)
    assert verdict.values["worst_violation"] == pytest.approx(worst, abs=1e-12)
    # what the measurement adds: both bounds are touched at every t (the proof's congruence keeps them singular)
    assert np.abs(above[:, 0] - 1).max() <= TOL and np.abs(below[:, -1] - 1).max() <= TOL


def test_imbalance_is_conserved_by_the_flow_and_drifts_by_order_eta(quick):
    _, table = quick["imbalance-conserved"]
    lr, t, drift = column(table, "lr"), column(table, "t"), column(table, "drift")
    assert drift[lr == 0].max() <= TOL
    lrs = np.unique(lr[lr > 0])
    final = [drift[(lr == x) & (t == t.max())][0] for x in lrs]
    assert slope(lrs, final) == pytest.approx(1, abs=0.1)
    assert all(d > TOL for d in final)  # GD does drift


def coupling_bound(t, sigma_1, sigma_d, alpha, B0, nodes=4001):
    """int_0^t e^{sigma_1 (t - s)} 3 sqrt(alpha' sigma_d) e^{-2 (1 - alpha') sigma_d s} ||B(0)||_F^2 ds, the
    gradient-flow paper's bound on eq 17 (Lemma 7 and eq 11), by the trapezoid rule; every argument one per row."""
    s = t[:, None] * np.linspace(0, 1, nodes)
    f = (
        np.exp(sigma_1[:, None] * (t[:, None] - s))
        * 3
        * np.sqrt(alpha * sigma_d)[:, None]
        * np.exp(-2 * (1 - alpha)[:, None] * sigma_d[:, None] * s)
        * B0[:, None] ** 2
    )
    return (f[:, 1:] + f[:, :-1]).sum(axis=1) / 2 * t / (nodes - 1)


def test_coupling_stays_under_the_proofs_bound_in_stage_one(quick):
    verdict, table = quick["coupling"]
    seed, t, gap = column(table, "seed"), column(table, "t"), column(table, "gap")
    sigma_1, sigma_d, alpha = column(table, "sigma_1"), column(table, "sigma_d"), column(table, "alpha_prime")
    # stage one: A A^T <= alpha' sigma_d I, i.e. ||A||_op^2 <= alpha' sigma_d, held since t = 0
    one = np.zeros(t.size, dtype=bool)
    for run in np.unique(seed):
        on = seed == run
        one[on] = np.logical_and.accumulate(column(table, "A_op")[on] ** 2 <= alpha[on] * sigma_d[on])
    np.testing.assert_array_equal(table["stage_one"] == "True", one)
    one &= t > 0
    assert one.sum() >= 4 and (~one).sum() >= 4
    bound = coupling_bound(t, sigma_1, sigma_d, alpha, column(table, "B0_fro"))
    assert np.all(gap[one] <= bound[one])
    # the claim measured against this bound, not a looser one
    np.testing.assert_allclose(column(table, "bound")[one], bound[one], rtol=1e-4)
    assert verdict.values["max_gap_over_bound"] == pytest.approx(np.max(gap[one] / bound[one]), rel=1e-4)
    # what the proof uses the coupling for: at the end of stage one A's smallest singular value is A_hat's, nearly
    ends = [np.flatnonzero(one & (seed == run))[-1] for run in np.unique(seed)]
    assert np.max(gap[ends] / column(table, "sigma_d_A_hat")[ends]) < 0.1


def test_asymmetry_decreases_in_stage_one(quick):
    _, table = quick["asymmetry-decreasing"]
    seed, t, norm = column(table, "seed"), column(table, "t"), column(table, "B_fro")
    one = table["stage_one"] == "True"
    for run in np.unique(seed):
        inside = norm[(seed == run) & one]
        assert inside.size >= 4
        assert np.all(np.diff(inside) <= TOL * inside[:-1])
    sigma_d, alpha = 0.5, 0.5
    assert np.all(norm[one] <= np.exp(-(1 - alpha) * sigma_d * t[one]) * (1 + TOL))  # eq 11


def test_gd_is_first_order_in_eta(quick):
    _, table = quick["gd-to-flow"]
    lr, t, gap = column(table, "lr"), column(table, "t"), column(table, "gap")
    lrs = np.unique(lr)
    assert slope(lrs, [gap[(lr == x) & (t == t.max())][0] for x in lrs]) == pytest.approx(1, abs=0.05)
    assert slope(lrs, [gap[lr == x].max() for x in lrs]) == pytest.approx(1, abs=0.05)


def test_flow_needs_time_theta_log_one_over_delta(quick):
    _, table = quick["flow-lower-bound"]
    setting, sigma, delta, time = (
        table["setting"],
        column(table, "sigma"),
        column(table, "delta"),
        column(table, "t_delta"),
    )
    seed = column(table, "seed")
    a0 = 1e-3
    scalar = setting == "example"
    # Ye and Du 2021 after Corollary 1.2: s(t) = sigma e^{2 sigma t} / (e^{2 sigma t} + sigma / a0^2 - 1); the loss
    # is (sigma - s)^2 / 2, so loss <= delta first at e^{2 sigma t} = (sigma / a0^2 - 1)(sigma / sqrt(2 delta) - 1)
    exact = np.log((sigma / a0**2 - 1) * (sigma / np.sqrt(2 * delta) - 1)) / (2 * sigma)
    np.testing.assert_allclose(time[scalar], exact[scalar], rtol=1e-4)
    tail = delta <= 1e-10
    for name in np.unique(setting):
        for s in np.unique(sigma):
            on = (setting == name) & (sigma == s) & tail & (seed <= 0)
            fitted = np.polyfit(np.log(1 / delta[on]), time[on], 1)[0] * s
            if name == "example":
                assert fitted == pytest.approx(0.25, rel=0.04)  # 1 / (4 sigma) per ln(1 / delta)
            else:
                assert 0.24 <= fitted <= 1  # Theta(1 / sigma), never faster than the example
