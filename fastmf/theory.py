"""The papers' prescriptions and step-wise bounds (Ye and Du 2021: Theorem 1.1, Theorem 3.1,
Corollary 1.2, Lemmas 3.2 and 3.3, the stage-two rate; docs/maths.md section 4), and the
local rate of GD at the minimum a run ends near (`local_rate`).

The theorems hide universal constants in O(.); here each is a keyword argument that
defaults to 1, so `init_scale(s, m, n, c=0.1)` reads "eps = 0.1 sigma_d / sqrt(...)".
`s` is the spectrum of Sigma (any order); d = len(s), sigma_1 = max(s), sigma_d = min(s).
The step size the theory needs is far below what works in practice (the paper says so);
these functions are for comparing against it, not for choosing a fast one.
"""

from __future__ import annotations

import numpy as np

from ._validate import finite_float, positive_int, real_array


def _spectrum(s):
    s = real_array(s, "s", 1, dtype=np.float64)
    if np.any(s <= 0):
        raise ValueError("s must hold the nonzero singular values of Sigma (all > 0)")
    return s.size, float(s.max()), float(s.min())


def init_scale(s, m: int, n: int, *, c: float = 1.0) -> float:
    """eps = c sigma_d / sqrt(d^3 sigma_1 (m + n))  (Theorem 1.1 and Theorem 3.1)."""
    d, s1, sd = _spectrum(s)
    m, n = positive_int(m, "m"), positive_int(n, "n")
    return c * np.sqrt(s1) * (sd / s1) / np.sqrt(d**3 * (m + n))  # no overflow at any scale of s


def step_size(s, eps: float, *, c: float = 1.0) -> float:
    """eta = c sigma_d eps^2 / (d sigma_1^3)  (Theorem 1.1)."""
    d, s1, sd = _spectrum(s)
    eps = finite_float(eps, "eps", positive=True)
    return c * (sd / s1) * (eps / np.sqrt(s1)) ** 2 / (d * s1)  # no overflow at any scale of s


def T0(s, lr: float, eps: float, *, c: float = 1.0) -> float:
    """End of stage one, c / (eta sigma_d) ln(d sigma_d / eps^2)  (Theorem 3.1)."""
    d, _, sd = _spectrum(s)
    lr, eps = finite_float(lr, "lr", positive=True), finite_float(eps, "eps", positive=True)
    return c / (lr * sd) * (np.log(d) + np.log(sd) - 2 * np.log(eps))


def T_total(s, lr: float, eps: float, delta: float, *, c: float = 1.0) -> float:
    """Steps to loss <= delta, c / (eta sigma_d) (ln(d sigma_d / eps^2) + ln(sigma_d^2 / delta))  (Theorem 1.1).

    Theorem 1.1 prints ln(d sigma_d / eps) + ln(sigma_d / delta); Theorem 3.1 and section
    3.2.3 (`T0`) have ln(d sigma_d / eps^2). Only the forms used here are scale-invariant:
    eps^2 has the units of sigma, and delta, a loss, those of sigma^2. With them T_total >= T0
    for every delta below the converged level, and Sigma -> c Sigma (eta -> eta / c,
    eps -> sqrt(c) eps, delta -> c^2 delta: the same trajectory) leaves T_total unchanged."""
    return flow_time(s, eps, delta, c=c) / finite_float(lr, "lr", positive=True)


def flow_time(s, eps: float, delta: float, *, c: float = 1.0) -> float:
    """Gradient-flow time to loss <= delta, c / sigma_d (ln(d sigma_d / eps^2) + ln(sigma_d^2 / delta))
    (Corollary 1.2, with the scale-invariant logarithms of `T_total`)."""
    d, _, sd = _spectrum(s)
    eps, delta = finite_float(eps, "eps", positive=True), finite_float(delta, "delta", positive=True)
    return c / sd * (np.log(d) + 3 * np.log(sd) - 2 * np.log(eps) - np.log(delta))


def linear_rate(s, lr: float) -> float:
    """Per-step factor (1 - eta sigma_d / 2)^2 bounding the loss after T0 (Ye and Du 2021,
    section 3.3): condition (2) bounds Delta_t = ||diag(s) - Up Vp^T||_op by `delta_bound`,
    which shrinks by 1 - eta sigma_d / 2 a step, and the loss is a sum of squares of such
    errors. (The paper's "Summary of Stage 2" writes the unsquared factor next to
    ||.||_F^2, a slip its units show.)"""
    _, _, sd = _spectrum(s)
    return (1.0 - finite_float(lr, "lr", positive=True) * sd / 2.0) ** 2


def flow_rate(s) -> float:
    """The gradient flow's loss factor per unit time after T0, exp(-sigma_d): `linear_rate`
    with eta -> 0 (its (1 - eta sigma_d / 2)^(2 / eta) tends to exp(-sigma_d))."""
    _, _, sd = _spectrum(s)
    return float(np.exp(-sd))


def delta_bound(s, lr: float, t, T0: float):
    """Condition (2) of Ye and Du 2021, section 3.3: ||diag(s) - Up Vp^T||_op <= (2/5) sigma_d
    (1 - eta sigma_d / 2)^(t - T0) for t >= T0 (an array for an array of steps t)."""
    _, _, sd = _spectrum(s)
    lr = finite_float(lr, "lr", positive=True)
    return 0.4 * sd * (1.0 - lr * sd / 2.0) ** (np.asarray(t, dtype=np.float64) - T0)


def local_rate(s, lr: float, Up, Vp, L_U=None, L_V=None) -> float:
    """Per-step factor of the loss's excess f - f* predicted by linearizing GD at the minimum a
    run ends near, from its final state in Sigma's singular basis: ``local_rate(s, result.lr,
    result.Up, result.Vp, result.L_U, result.L_V)`` (f* = 1/2 sum_{i > k} s_i^2, 0 for k >= r).

    The residual R = U V^T - Sigma obeys R+ = R - eta (U U^T R + R V V^T) + eta^2 R V U^T R
    exactly, so near a minimum its part on x y^T (x, y eigenvectors of U U^T and V V^T, with
    eigenvalues a and b) shrinks by 1 - eta (a + b) a step, and the loss by the square. With
    a_1 >= ... >= a_k the eigenvalues of U^T U = Up^T Up + L_U^T L_U, b those of V^T V, r = len(s)
    and q = min(k, r), the modes a run excites have h = a + b among:

    - the principal block: a_i + b_j, i, j <= q (at a balanced minimum sigma_i + sigma_j,
      slowest 2 sigma_d);
    - the complement, where it is nonzero (m > r, n > r): b_j for L_U Vp^T and a_i for
      Up L_V^T, i, j <= q (at a balanced minimum slowest sigma_d: it dominates the tail);
    - k > r: the k - r extra directions, whose eigenvalues tend to 0, in L_U L_V^T: a_k + b_k
      (the loss's tail is then sublinear; with k - r > 1 it falls faster than this until the
      slowest pair dominates);
    - k < r: the rows of s_l, l > k, where (Up, Vp) moves as [[V^T V, -s_l I], [-s_l I, U^T U]]:
      its eigenvalues (at a balanced minimum sigma_i -+ s_l, slowest sigma_k - sigma_{k+1}).

    Returns the largest (1 - eta h)^2 among them: the loss's factor once the slowest mode
    dominates, sharper than the stage-two bound `linear_rate` (Ye and Du 2021, section 3.3).
    """
    s = np.sort(real_array(s, "s", 1, dtype=np.float64))[::-1]
    lr = finite_float(lr, "lr", positive=True)
    r = s.size
    Up, Vp = real_array(Up, "Up", 2, dtype=np.float64), real_array(Vp, "Vp", 2, dtype=np.float64)
    k = Up.shape[1]
    if Up.shape != (r, k) or Vp.shape != (r, k):
        raise ValueError(f"Up and Vp must both be len(s) x k = {r} x {k}, got {Up.shape} and {Vp.shape}")
    L_U, L_V = (np.zeros((0, k)) if L is None else np.asarray(L, dtype=np.float64) for L in (L_U, L_V))
    if L_U.ndim != 2 or L_V.ndim != 2 or L_U.shape[1] != k or L_V.shape[1] != k:
        raise ValueError(f"L_U and L_V must have k = {k} columns (0 rows: no complement), got {L_U.shape}, {L_V.shape}")
    GU, GV = Up.T @ Up + L_U.T @ L_U, Vp.T @ Vp + L_V.T @ L_V
    a, b = np.linalg.eigvalsh(GU)[::-1], np.linalg.eigvalsh(GV)[::-1]
    q = min(k, r)
    modes = [np.add.outer(a[:q], b[:q]).ravel()]
    if np.any(L_U):
        modes.append(b[:q])
    if np.any(L_V):
        modes.append(a[:q])
    if k > r and np.any(L_U) and np.any(L_V):
        modes.append(a[-1:] + b[-1:])
    I = np.eye(k)
    modes += [np.linalg.eigvalsh(np.block([[GV, -sl * I], [-sl * I, GU]])) for sl in s[k:]]
    return float(np.max((1.0 - lr * np.concatenate(modes)) ** 2))


def rate_bound(s, options) -> float | None:
    """`linear_rate` for a GD run with these resolved `fastmf.Options`; None when its update
    is not plain constant-step GD (`Options.plain`), which the stage-two bound is not about."""
    return linear_rate(s, options.lr) if options.plain else None


def prescriptions(s, m: int, n: int, delta: float, *, c_eps: float = 1.0, c_eta: float = 1.0,
                  c_T: float = 1.0) -> dict:  # fmt: skip
    """Everything Theorem 1.1, Theorem 3.1 and Corollary 1.2 prescribe for this problem."""
    eps = init_scale(s, m, n, c=c_eps)
    lr = step_size(s, eps, c=c_eta)
    return {
        "init_scale": eps,
        "lr": lr,
        "T0": T0(s, lr, eps, c=c_T),
        "T_total": T_total(s, lr, eps, delta, c=c_T),
        "flow_time": flow_time(s, eps, delta, c=c_T),
        "linear_rate": linear_rate(s, lr),
    }


def _lemma_check(lr, sigma_1, beta):
    lr = finite_float(lr, "lr", positive=True)
    sigma_1 = finite_float(sigma_1, "sigma_1", positive=True)
    beta = finite_float(beta, "beta", positive=True)
    if not beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    if lr > beta / (8 * sigma_1):
        raise ValueError(f"the lemma needs lr <= beta / (8 sigma_1) = {beta / (8 * sigma_1):.4g}, got lr = {lr:g}")
    return lr, sigma_1, beta


def lemma_3_2_map(S, Sigma, lr: float) -> np.ndarray:
    """S' = (I + eta (Sigma - S)) S (I + eta (Sigma - S))  (Lemma 3.2)."""
    S, Sigma = np.asarray(S, dtype=np.float64), np.asarray(Sigma, dtype=np.float64)
    G = np.eye(S.shape[0]) + lr * (Sigma - S)
    return G @ S @ G


def lemma_3_2_bound(s: float, sigma_d: float, sigma_1: float, lr: float, beta: float = 0.5) -> float:
    """Lower bound on s' = sigma_d(S') given s = sigma_d(S) (Lemma 3.2):

        s' >= (1 + eta (sigma_d - s))^2 s - (8 + 6 beta) / (1 - beta) sigma_1^3 eta^2,

    for S, Sigma positive definite, sigma_1(S) <= 2 sigma_1, sigma_d(Sigma) >= sigma_d,
    sigma_1(Sigma) <= sigma_1, beta in (0, 1) and eta <= beta / (8 sigma_1).
    """
    lr, sigma_1, beta = _lemma_check(lr, sigma_1, beta)
    return (1 + lr * (sigma_d - s)) ** 2 * s - (8 + 6 * beta) / (1 - beta) * sigma_1**3 * lr**2


def lemma_3_3_map(P, Sigma, lr: float) -> np.ndarray:
    """P' = (I - eta (Sigma - P)) P (I - eta (Sigma - P))  (Lemma 3.3)."""
    P, Sigma = np.asarray(P, dtype=np.float64), np.asarray(Sigma, dtype=np.float64)
    G = np.eye(P.shape[0]) - lr * (Sigma - P)
    return G @ P @ G


def lemma_3_3_bound(p: float, sigma_d: float, sigma_1: float, lr: float, beta: float = 0.5) -> float:
    """Lower bound on p' = lambda_d(P') given p = lambda_d(P) (Lemma 3.3):

        p' >= (1 - eta sigma_d)^2 p - (8 + 6 beta) / (1 - beta) sigma_1^3 eta^2   if p < 0,
        p' >= 0                                                                  if p >= 0,

    for P symmetric with sigma_1(P) <= 2 sigma_1, sigma_d I <= Sigma <= sigma_1 I,
    beta in (0, 1) and eta <= beta / (8 sigma_1).
    """
    lr, sigma_1, beta = _lemma_check(lr, sigma_1, beta)
    if p >= 0:
        return 0.0
    return (1 - lr * sigma_d) ** 2 * p - (8 + 6 * beta) / (1 - beta) * sigma_1**3 * lr**2


def outside(options) -> list[str]:
    """What takes a GD run (resolved `fastmf.Options`) outside the assumptions of Ye and Du
    2021's theorems, which are about plain GD: constant step, simultaneous updates, no
    regularizer, no noise, from an iid Gaussian start. One phrase per departure; empty for
    plain GD from a Gaussian (or given) start. The stage tests (T1, T0) and the recorded
    quantities stay defined; the theorems' bounds and rates need not hold."""
    found = []
    if not hasattr(options, "lr"):  # a gradient flow (`fastmf.FlowOptions`): only its start can depart
        return [f"a {options.init} start (the theorems draw U0 and V0 independently)"] * (options.init != "gaussian")
    if callable(options.lr):
        found.append("a step-size schedule (the theorems take a constant step)")
    if options.balance > 0:
        found.append(f"the balancing regularizer (balance={options.balance:g})")
    if options.update != "simultaneous":
        found.append("alternating updates")
    if options.precondition is not None:
        found.append(f"preconditioned steps (precondition={options.precondition:g})")
    if options.noise > 0:
        found.append(f"noise added each step (noise={options.noise:g})")
    if options.init != "gaussian":
        found.append(f"a {options.init} start (the theorems draw U0 and V0 independently)")
    return found
