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


def test_sandwich_holds_for_every_start(quick):
    verdict, table = quick["sandwich"]
    k = column(table, "k")
    above, below = column(table, "lambda_min_vs_lower"), column(table, "lambda_max_vs_upper")
    assert np.all(above[k == 4] >= 1 - TOL)  # U U^T >= diag(s_i(t; alpha))
    assert np.all(below <= 1 + TOL)  # U U^T <= diag(s_i(t; beta))
    assert np.all(np.isnan(above[k == 2]))  # the 4 x 2 start: alpha = 0, no lower bound to check
    assert (k == 2).any() and (k == 4).any()
    assert verdict.values["worst_violation"] <= TOL


def test_imbalance_is_conserved_by_the_flow_and_drifts_by_order_eta(quick):
    _, table = quick["imbalance-conserved"]
    lr, t, drift = column(table, "lr"), column(table, "t"), column(table, "drift")
    assert drift[lr == 0].max() <= TOL
    lrs = np.unique(lr[lr > 0])
    final = [drift[(lr == x) & (t == t.max())][0] for x in lrs]
    assert slope(lrs, final) == pytest.approx(1, abs=0.1)
    assert all(d > TOL for d in final)  # GD does drift


def test_coupling_stays_under_the_proofs_bound_in_stage_one(quick):
    verdict, table = quick["coupling"]
    one = (table["stage_one"] == "True") & (column(table, "t") > 0)
    assert one.sum() >= 4 and (~one).sum() >= 4
    assert np.all(column(table, "gap")[one] <= column(table, "bound")[one])
    # what the proof uses the coupling for: A's smallest singular value is that of A_hat, nearly
    assert verdict.values["gap_over_sigma_d_at_t1"] < 0.1


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
