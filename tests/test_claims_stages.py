"""The stage claims of Ye and Du 2021 at their quick size: each verdict's numbers, and the table
behind it, checked against the paper's statements written out here again."""

import csv

import numpy as np
import pytest

import fastmf
from fastmf.claims import stages

pytest.importorskip("matplotlib")

S = stages.SPECTRUM
SIGMA_D, D, ETA = S.min(), S.size, stages.LR
NAMES = ("stage-order", "delta-bound", "T-delta-slopes", "T1-epsilon", "T0-kappa", "dimension-free", "rank-mismatch")


def reproduce(name, tmp_path):
    verdict = fastmf.reproduce(name, quick=True, output=tmp_path)
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
    """Theorem 3.1 and section 3.3: T1 < T0 < T_delta in every run, the loss's factor after T0 at
    most (1 - eta sigma_d / 2)^2, and the linearization at the balanced minimum (1 - eta sigma_d)^2."""
    verdict, table = reproduce("stage-order", tmp_path)
    T1, T0, T_delta = (numbers(table[key]) for key in ("T1", "T0", "T_delta"))
    assert np.all((T1 < T0) & (T0 < T_delta))
    bound = (1 - ETA * SIGMA_D / 2) ** 2
    assert np.all(numbers(table["rate"]) <= bound) and verdict.values["rate_max"] <= bound
    balanced = (1 - ETA * SIGMA_D) ** 2  # the complement's slowest mode at a balanced minimum
    assert 1 - np.median(numbers(table["tail_rate"])) == pytest.approx(1 - balanced, rel=0.02)
    assert verdict.values["local_rate_median"] == pytest.approx(balanced, rel=1e-4)
    assert verdict.holds and (tmp_path / "stage-order.png").stat().st_size > 0


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
    """Theorem 1.1: T_delta proportional to 1 / (eta sigma_d) (a line through 0) and linear in ln(1 / delta),
    each piece of the latter no steeper than the stage-two bound allows, and the tail as steep as the
    complement's slowest mode (1 - eta sigma_d)^2 makes it."""
    verdict, table = reproduce("T-delta-slopes", tmp_path)
    eta_sweep = table["sweep"] == "eta"
    x, T = numbers(table["inv_eta_sigma_d"])[eta_sweep], numbers(table["T_delta_median"])[eta_sweep]
    slope, intercept = np.polyfit(x, T, 1)
    assert slope > 0 and abs(intercept) <= 0.05 * T.min()
    assert np.max(np.abs(slope * x + intercept - T)) <= 0.02 * T.min()
    delta_sweep = ~eta_sweep
    log_inv = np.log(1 / numbers(table["delta"])[delta_sweep])
    pieces = np.diff(numbers(table["T_delta_median"])[delta_sweep]) / np.diff(log_inv) * ETA * SIGMA_D
    assert np.all(pieces > 0)
    assert np.all(pieces <= ETA * SIGMA_D / (-2 * np.log(1 - ETA * SIGMA_D / 2)))
    assert pieces[-1] == pytest.approx(ETA * SIGMA_D / (-2 * np.log(1 - ETA * SIGMA_D)), rel=0.05)
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
    """At fixed eps, T1 and T0 do not move with m = n; at the prescribed eps they grow by about
    1 / (2 ln(1 + eta sigma_d)) steps per unit of ln(m + n) (ln(d sigma_d / eps^2) = ln(m + n) + const)."""
    verdict, table = reproduce("dimension-free", tmp_path)
    m = numbers(table["m"])
    for start in ("fixed", "theory"):
        on = table["start"] == start
        sizes = np.unique(m[on])
        for name in ("T1", "T0"):
            medians = np.array([np.median(numbers(table[name])[on & (m == size)]) for size in sizes])
            if start == "fixed":
                assert np.ptp(medians) <= 0.02 * np.median(medians)
            else:
                slope = np.polyfit(np.log(2 * sizes), medians, 1)[0]
                assert slope == pytest.approx(1 / (2 * np.log1p(ETA * SIGMA_D)), rel=0.1)
    assert verdict.holds


def test_rank_mismatch(tmp_path):
    """Eckart-Young: the loss of width k is never below f* = 1/2 sum_{i > k} sigma_i^2 and GD reaches it."""
    verdict, table = reproduce("rank-mismatch", tmp_path)
    k = table["k"].astype(int)
    assert set(k) == {D - 1, D, D + 1, 2 * D}
    best = np.array([0.5 * np.sum(S[width:] ** 2) for width in k])
    excess = (numbers(table["final_loss"]) - best) / (0.5 * np.sum(S**2))
    assert np.all(excess >= -1e-14) and np.all(excess <= 1e-6)
    assert np.all(excess[k == D] <= 1e-20)  # k = r: to rounding
    assert verdict.holds


def test_fit_and_first_below():
    slope, intercept, r2 = stages.fit([1.0, 2.0, 4.0], [3.0, 5.0, 9.0])
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    steps = np.arange(5)
    losses = np.array([[1.0, 0.5, 0.1, 0.01, np.nan], [1.0, 1.0, 1.0, 1.0, 1.0]])
    found = stages.first_below(steps, losses, [0.5, 0.05])
    np.testing.assert_array_equal(found, [[1, 3], [np.nan, np.nan]])
