"""Stages of a run (Ye and Du 2021: Theorem 3.1 and section 3.3; docs/maths.md section 4).

T1: the first recorded time with sigma_min(A) >= sqrt(sigma_d / 2), the end of the warm-up;
T0: the first recorded time from T1 on with ||P||_op <= sigma_d / 4;
T_delta: the first recorded time with loss <= delta.
T1 and T0 are decided in the compiled loop by exact Loewner tests (a Cholesky factorization
of the shifted matrix) at every recorded step, whatever the spectral stride; recorded
every step, they are exact. After T0 the loss decays linearly: `rate` is its measured
factor per step (per unit time for the flow), a least-squares fit of log(loss) on the
records from T0 on that lie above the rounding floor, and `rate_theory` the stage-two
bound's, (1 - lr sigma_d / 2)^2 (exp(-sigma_d) for the flow; `fastmf.theory.linear_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stages:
    """Stage boundaries and the linear rate after T0; None where not reached or measurable.

    `rate` is measured, `rate_theory` the stage-two bound on it, and `rate_local` the factor
    that linearizing GD at the minimum the run ends near predicts for its tail
    (`fastmf.theory.local_rate`, from the final state; plain GD that reached T0 only)."""

    T1: float | None
    T0: float | None
    T_delta: float | None
    delta: float | None
    rate: float | None
    rate_theory: float | None
    rate_local: float | None = None


def detect(axis, loss, T1, T0, delta, rate_theory, s, delta_reported) -> Stages:
    """Stages from a recorded history (axis: steps or times) and the kernel's T1, T0.

    loss, delta and s in one system of units (a run's internal units, `fastmf.scaling`);
    `delta_reported` is delta in the user's units, kept in the result.
    """
    T_delta = None
    if delta is not None:
        hit = np.flatnonzero(loss <= delta)
        T_delta = axis[hit[0]].item() if hit.size else None
    rate = None if T0 is None else fit_rate(axis, loss, T0, s)
    return Stages(T1=T1, T0=T0, T_delta=T_delta, delta=delta_reported, rate=rate, rate_theory=rate_theory)


def fit_rate(axis, loss, T0, s) -> float | None:
    """The loss's linear rate after T0: exp of the slope of a least-squares fit of log(loss)
    on the records from T0 on above the rounding floor (None with fewer than 3 of them)."""
    floor = 1e4 * (np.finfo(np.float64).eps * np.linalg.norm(s)) ** 2
    use = (axis >= T0) & (loss > floor)
    if np.count_nonzero(use) < 3:
        return None
    return float(np.exp(np.polyfit(axis[use], np.log(loss[use]), 1)[0]))


# A run is "converged" only when its loss is also this close to the best loss of its width
# (as a fraction of the way from the loss of U = V = 0): a tol that is large for the scale
# of Sigma cannot make a run converge at step 0.
CONVERGED_FRACTION = 1e-4


def converged_level(s, k: int) -> float:
    """The largest loss that counts as converged whatever tol is: f* + 1e-4 (h - f*), with
    h = 1/2 ||Sigma||_F^2 = 1/2 sum s_i^2 and f* = 1/2 sum_{i > k} s_i^2 the best loss of
    width k (Eckart-Young). `s` in any units; the level is in the same units squared."""
    s2 = np.square(np.asarray(s, dtype=np.float64))
    h, best = 0.5 * float(np.sum(s2)), 0.5 * float(np.sum(s2[k:]))
    return best + CONVERGED_FRACTION * (h - best)


def name(position: float, T1: float | None, T0: float | None) -> str:
    """Name of the stage at a step or time (Ye and Du 2021, Theorem 3.1; docs/maths.md section 4):
    "warm-up" before T1 (sigma_min(A) < sqrt(sigma_d / 2)), "alignment" from T1 to T0
    (||P||_op > sigma_d / 4), "linear" from T0 on."""
    if T0 is not None and position >= T0:
        return "linear"
    if T1 is not None and position >= T1:
        return "alignment"
    return "warm-up"
