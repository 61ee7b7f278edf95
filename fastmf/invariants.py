"""Per-run extremes of what Ye and Du 2021 (arXiv:2106.14289) bound with high probability.

With A = (Up + Vp) / 2, B = (Up - Vp) / 2 (r x k), J = L_U, K = L_V, eps the std of the
Gaussian start, d = r (the rank of Sigma, also when k != r; sigma_d(.) is the smallest of the
min(r, k) singular values) and m' = m - d, n' = n - d:

* section 3.1 (t = 0): sigma_min(A_0) >= eps / (c sqrt d), sigma_max(A_0) <= c eps sqrt d,
  ||B_0||_F <= c d eps, ||J_0||_op <= c eps sqrt(max(m', d)), ||K_0||_op <= c eps
  sqrt(max(n', d)). `c0` is the smallest c for which all five hold: the largest of the five
  ratios `c0_A_min` = eps / (sqrt(d) sigma_min(A_0)), `c0_A_max` = sigma_max(A_0) / (eps sqrt d),
  `c0_B` = ||B_0||_F / (d eps), `c0_J` = ||J_0||_op / (eps sqrt(max(m', d))) and `c0_K` alike;
* Theorem 3.1 (t <= T0): A A^T <= 2 Sigma, ||B_t||_F <= 2 c d eps, ||J_t||_op <= c eps
  sqrt(max(m', d)) (and K alike);
* section 3.3 (t >= T0): Delta_t = ||diag(s) - Up Vp^T||_op <= (2/5) sigma_d (1 - eta sigma_d /
  2)^(t - T0) (condition (2), `fastmf.theory.delta_bound`; checked while the bound is above
  the resolution of Delta, `delta_floor`) and sigma_d(Up), sigma_d(Vp) >= sqrt(sigma_d / 2)
  (condition (3)).

`COLUMNS` lists what a run reports (`fastmf.SolveResult.invariants`, the columns of
`fastmf.BatchResult.table` and of `fastmf.sweep` tables). The extremes are taken over the
recorded steps (the eigenvalue-based ones on the spectral stride), the held flags over the
same steps, with the run's own c0 for c. A flag is True when no checked step breaks its bound,
also when no step was checked (the extreme behind it is then NaN); the J and K bound allows a
relative 1e3 machine epsilons, since at t = 0 it holds with equality when c0 = c0_J.
`solve` computes them from its history (`from_history`), `solve_batch` in its kernel
(`fastmf._kernels.batch`, the extremes of `fastmf._kernels.layout`), both then summarized here.
"""

from __future__ import annotations

import numpy as np

from . import theory
from ._kernels.layout import EXT_AAT, EXT_B, EXT_B_T0, EXT_DELTA, EXT_J, EXT_K, EXT_SIGMA_A, EXT_UV, N_EXTREMES

COLUMNS = {
    "c0": "the section 3.1 constant of the start: the largest of the five ratios below",
    "c0_A_min": "eps / (sqrt(d) sigma_min(A_0))",
    "c0_A_max": "sigma_max(A_0) / (eps sqrt(d))",
    "c0_B": "||B_0||_F / (d eps)",
    "c0_J": "||J_0||_op / (eps sqrt(max(m', d)))",
    "c0_K": "||K_0||_op / (eps sqrt(max(n', d)))",
    "max_B_fro": "max over the recorded t of ||B_t||_F",
    "min_sigma_A": "min over the recorded t >= T1 of sigma_d(A_t)",
    "max_lambda_AAt_2S": "max over the recorded t <= T0 of lambda_max(A_t A_t^T - 2 Sigma)",
    "min_sigma_UV": "min over the recorded t >= T0 of min(sigma_d(Up_t), sigma_d(Vp_t))",
    "c_B": "max over the recorded t <= T0 of ||B_t||_F / (d eps)",
    "c_JK": "max over the recorded t <= T0 of ||J_t||_op / (eps sqrt(max(m', d))) and of ||K_t||_op / (eps "
    "sqrt(max(n', d)))",
    "max_Delta_ratio": "max over the recorded t >= T0 of Delta_t / delta_bound(t), while delta_bound(t) is above "
    "Delta's rounding (NaN unless plain constant-step GD)",
    "held_AAt": "A A^T <= 2 Sigma at every checked t <= T0 (max_lambda_AAt_2S <= 0)",
    "held_B": "||B_t||_F <= 2 c0 d eps at every recorded t <= T0 (c_B <= 2 c0)",
    "held_JK": "||J_t||_op, ||K_t||_op within c0 eps sqrt(max(m' or n', d)) at every checked t <= T0 (c_JK <= c0)",
    "held_sigma_UV": "sigma_d(Up_t), sigma_d(Vp_t) >= sqrt(sigma_d / 2) at every checked t >= T0",
    "held_Delta": "Delta_t <= delta_bound(t) at every checked t >= T0 (max_Delta_ratio <= 1)",
}
FLAGS = tuple(name for name in COLUMNS if name.startswith("held_"))
RATIOS = ("c0_A_min", "c0_A_max", "c0_B", "c0_J", "c0_K")
# powers of c (`fastmf.scaling`) of the extremes `fastmf._kernels.layout.EXT_B` ...
EXTREME_POWERS = np.array([0.5, 0.5, 0.5, 1, 0.5, 0.5, 0.5, 0])


def start_ratios(X, Y, r: int, shape, eps) -> np.ndarray:
    """The five section 3.1 ratios (`RATIOS`, in order) of each start, (runs, 5).

    X, Y : (runs, r + p, k) and (runs, r + q, k) stacked starts [Up; L_U], [Vp; L_V] (the
    compressed complement's singular values are the full one's); eps: the std of the start,
    one or one per run, in the units of X and Y (None or NaN: the ratios are NaN).
    """
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    eps = np.full(X.shape[0], np.nan) if eps is None else np.asarray(eps, np.float64) * np.ones(X.shape[0])
    m, n = shape
    d = r
    sv = np.linalg.svd((X[:, :r] + Y[:, :r]) / 2, compute_uv=False)
    b = np.linalg.norm((X[:, :r] - Y[:, :r]) / 2, axis=(1, 2))
    j, k = (_op_norms(Z[:, r:]) for Z in (X, Y))
    with np.errstate(divide="ignore"):
        return np.stack(
            [
                eps / (np.sqrt(d) * sv[:, -1]),
                sv[:, 0] / (eps * np.sqrt(d)),
                b / (d * eps),
                j / (eps * np.sqrt(max(m - d, d))),
                k / (eps * np.sqrt(max(n - d, d))),
            ],
            axis=1,
        )


def _op_norms(L) -> np.ndarray:
    """The largest singular value of each L[i] (0 for an empty complement)."""
    if L.shape[1] == 0:
        return np.zeros(L.shape[0])
    return np.linalg.svd(L, compute_uv=False)[:, 0]


def delta_floor(s, dtype) -> float:
    """The resolution of Delta_t, 1e3 eps ||s|| (eps of the dtype): below it Delta_t is rounding,
    and condition (2) is not checked where its bound is."""
    return 1e3 * float(np.finfo(dtype).eps) * float(np.linalg.norm(np.asarray(s, np.float64)))


def from_history(history: dict, T1, T0, s, lr, dtype) -> np.ndarray:
    """The extremes (`fastmf._kernels.layout` EXT_B ...; NaN where no step is checked) of one
    run from its history (spectral columns NaN off their stride); T1, T0 its stages (None: not
    reached), s its singular values, lr its constant step (None: no Delta bound), all in one
    system of units (a run's internal units, `fastmf.scaling`: then `outward`), dtype its
    state's (`delta_floor`)."""
    steps = np.asarray(history["step"], np.float64)
    col = {key: history.get(key) for key in ("B_fro", "sigma_min_A", "lambda_max_AAt_2S", "J_op", "K_op", "E_op")}
    if "sigma_min_Up" in history:
        col["UV"] = np.minimum(history["sigma_min_Up"], history["sigma_min_Vp"])
    upto0 = slice(None) if T0 is None else steps <= T0
    from0 = None if T0 is None else steps >= T0
    from1 = None if T1 is None else steps >= T1
    ext = np.full(N_EXTREMES, np.nan)
    ext[EXT_B] = _extreme(np.max, col["B_fro"], slice(None))
    ext[EXT_B_T0] = _extreme(np.max, col["B_fro"], upto0)
    ext[EXT_SIGMA_A] = _extreme(np.min, col["sigma_min_A"], from1)
    ext[EXT_AAT] = _extreme(np.max, col["lambda_max_AAt_2S"], upto0)
    ext[EXT_J] = _extreme(np.max, col["J_op"], upto0)
    ext[EXT_K] = _extreme(np.max, col["K_op"], upto0)
    ext[EXT_UV] = _extreme(np.min, col.get("UV"), from0)
    if lr is not None and T0 is not None and col["E_op"] is not None:
        bound = theory.delta_bound(s, lr, steps, T0)
        checked = from0 & (bound > delta_floor(s, dtype))
        ext[EXT_DELTA] = _extreme(np.max, np.asarray(col["E_op"])[checked] / bound[checked], slice(None))
    return ext


def outward(scale, extremes) -> np.ndarray:
    """Extremes (..., N_EXTREMES) from a run's internal units into the user's (`fastmf.scaling.Scale`)."""
    extremes = np.array(extremes, np.float64)
    for c, power in enumerate(EXTREME_POWERS):
        extremes[..., c] = scale.outward(np.ascontiguousarray(extremes[..., c]), power)
    return extremes


def _extreme(reduce, values, where):
    """reduce over values[where] that are not NaN; NaN if there is none (or no values, or `where` is None)."""
    if values is None or where is None:
        return np.nan
    kept = np.asarray(values, np.float64)[where]
    kept = kept[~np.isnan(kept)]
    return float(reduce(kept)) if kept.size else np.nan


def summarize(extremes, ratios, eps, r: int, shape, s, dtype) -> dict:
    """`COLUMNS` from the extremes (runs, N_EXTREMES) (or one run's, (N_EXTREMES,)) in the user's
    units, the start's ratios (runs, 5) or (5,), eps (one or one per run, None: unknown), r, the
    shape (m, n), the singular values s and the dtype of the run(s): arrays, or numbers for one run."""
    extremes, ratios = np.asarray(extremes, np.float64), np.asarray(ratios, np.float64)
    eps = np.nan if eps is None else np.asarray(eps, np.float64)
    m, n = shape
    d = r
    ext = {c: extremes[..., c] for c in range(N_EXTREMES)}
    c0 = np.max(ratios, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_B = ext[EXT_B_T0] / (d * eps)
        c_JK = np.maximum(ext[EXT_J] / (eps * np.sqrt(max(m - d, d))), ext[EXT_K] / (eps * np.sqrt(max(n - d, d))))
        slack = 1 + 1e3 * np.finfo(dtype).eps
        columns = {"c0": c0} | {name: ratios[..., i] for i, name in enumerate(RATIOS)} | {
            "max_B_fro": ext[EXT_B],
            "min_sigma_A": ext[EXT_SIGMA_A],
            "max_lambda_AAt_2S": ext[EXT_AAT],
            "min_sigma_UV": ext[EXT_UV],
            "c_B": c_B,
            "c_JK": c_JK,
            "max_Delta_ratio": ext[EXT_DELTA],
            "held_AAt": ~(ext[EXT_AAT] > 0),
            "held_B": ~(c_B > 2 * c0),
            "held_JK": ~(c_JK > c0 * slack),
            "held_sigma_UV": ~(ext[EXT_UV] < np.sqrt(float(s[-1]) / 2)),
            "held_Delta": ~(ext[EXT_DELTA] > 1),
        }  # fmt: skip
    if extremes.ndim == 1:
        return {name: bool(columns[name]) if name in FLAGS else float(columns[name]) for name in COLUMNS}
    return {name: np.asarray(columns[name], bool if name in FLAGS else np.float64) for name in COLUMNS}
