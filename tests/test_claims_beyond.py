"""The claims of fastmf/claims/beyond.py: each quick run against its paper's statement, and the
measurements they rest on against plainly written NumPy."""

import numpy as np
import pytest

import fastmf
from fastmf.claims.beyond import first_below, late_factor


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


def test_width_rate_quick(tmp_path):
    verdict = fastmf.reproduce("width-rate", quick=True, output=tmp_path)
    found = verdict.values
    # k > r: the rate's distance from 1 moves with the start's scale, at least in proportion to it
    assert found["exponent"] >= 1.0
    assert found["largest_gap"] / found["smallest_gap"] >= 1e3
    # k = r: the same rate at every scale, the linearization's 1 - (1 - lr sigma_r)^2 (lr = 0.1, sigma_r = 1)
    assert found["spread_k_eq_r"] <= 0.01
    assert found["rate_k_eq_r"] == pytest.approx(1 - 0.9**2, rel=1e-3)
    # symmetric start: a power of t (sublinear), not a geometric fall
    assert -3.0 <= found["symmetric_loss_slope"] <= -1.0
    assert verdict.holds
    assert (tmp_path / "width-rate.csv").exists()


def test_alternating_count_quick(tmp_path):
    verdict = fastmf.reproduce("alternating-count", quick=True, output=tmp_path)
    found = verdict.values
    # O(kappa^2 ln(1/eps)): no faster growth in kappa than kappa^2, and linear in ln(1/eps)
    assert found["exponent"] <= 2.1
    assert found["exponent_per_log"] <= 2.1
    assert found["r2"] >= 0.98
    assert verdict.holds


def test_variants_quick(tmp_path):
    verdict = fastmf.reproduce("variants", quick=True, output=tmp_path)
    # plain GD within 10% of the best of the balanced, perturbed and decaying-step runs
    assert verdict.values["ratio_max"] <= 1.1
    assert verdict.holds
    rows = (tmp_path / "variants.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 4 * 3  # header, 2 kappas x 4 variants x 3 seeds
