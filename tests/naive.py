"""Plain NumPy versions of the equations, written for clarity, never for speed.

Everything here works in the original basis with dense m x n matrices (Ye and Du 2021, eqs 2-3),
so it shares no code and no algebra with fastmf's split, compressed kernels.
"""

import numpy as np


def gd(Sigma, U0, V0, lr, n_steps):
    """Plain GD: R = Sigma - U V^T, U+ = U + lr R V, V+ = V + lr R^T U (float64).

    Returns the loss 1/2 ||R||_F^2 and the imbalance ||U^T U - V^T V||_F at t = 0..n_steps
    and the final U, V.
    """
    U = np.array(U0, dtype=np.float64)
    V = np.array(V0, dtype=np.float64)
    Sigma = np.asarray(Sigma, dtype=np.float64)
    losses, imbalances = [], []
    for t in range(n_steps + 1):
        R = Sigma - U @ V.T
        losses.append(0.5 * np.sum(R * R))
        imbalances.append(np.linalg.norm(U.T @ U - V.T @ V))
        if t == n_steps:
            break
        U, V = U + lr * R @ V, V + lr * R.T @ U
    return np.array(losses), np.array(imbalances), U, V


def gd_variant(Sigma, U0, V0, lr, n_steps, *, balance=0.0, alternating=False, precondition=None, noise=None):
    """The GD variants in the original basis (float64), each step, with R = Sigma - U V^T and
    Gu = U^T U, Gv = V^T V:

        U' = U + eta_t (R V - (balance/2) U (Gu - Gv)) (Gv + lam I)^-1
        V' = V + eta_t (R^T U' - (balance/2) V (Gv - Gu')) (Gu' + lam I)^-1   (alternating: R, Gu from U')
        V' = V + eta_t (R^T U - (balance/2) V (Gv - Gu)) (Gu + lam I)^-1      (simultaneous)

    the bracket being minus the gradient of 1/2 ||R||^2 + (balance/8) ||Gu - Gv||_F^2 and the
    factor (G + lam I)^-1 present only when precondition = lam is not None (ScaledGD). lr is a
    number or a callable t -> eta_t; noise is None or a callable t -> (Z_U, Z_V), added to U', V'
    after the whole step. Returns the plain loss 1/2 ||R||_F^2 and the imbalance ||Gu - Gv||_F
    at t = 0..n_steps and the final U, V. With every variant off it is `gd`, bit for bit.
    """
    U = np.array(U0, dtype=np.float64)
    V = np.array(V0, dtype=np.float64)
    Sigma = np.asarray(Sigma, dtype=np.float64)
    losses, imbalances = [], []
    for t in range(n_steps + 1):
        R = Sigma - U @ V.T
        losses.append(0.5 * np.sum(R * R))
        imbalances.append(np.linalg.norm(U.T @ U - V.T @ V))
        if t == n_steps:
            break
        eta = float(lr(t)) if callable(lr) else lr
        U_new = _variant_step(U, V, eta * R, eta, balance, precondition)
        if alternating:
            U_seen = U_new
            R = Sigma - U_new @ V.T
        else:
            U_seen = U
        V_new = _variant_step(V, U_seen, eta * R.T, eta, balance, precondition)
        if noise is not None:
            Z_U, Z_V = noise(t)
            U_new, V_new = U_new + Z_U, V_new + Z_V
        U, V = U_new, V_new
    return np.array(losses), np.array(imbalances), U, V


def _variant_step(A, B, eta_R, eta, balance, precondition):
    """One factor's step, A + (eta_R B - eta (balance/2) A (A^T A - B^T B)) (B^T B + lam I)^-1,
    with eta_R = eta R for A = U (B = V) and eta R^T for A = V (B = U)."""
    step = eta_R @ B
    if balance:
        step = step - eta * (balance / 2) * A @ (A.T @ A - B.T @ B)
    if precondition is not None:
        P = B.T @ B + precondition * np.eye(B.shape[1])  # symmetric: step P^-1 = (P^-1 step^T)^T
        step = np.linalg.solve(P, step.T).T
    return A + step


def low_rank(rng, m, n, s):
    """m x n matrix with singular values s in random orthonormal bases."""
    s = np.asarray(s, dtype=np.float64)
    Phi = np.linalg.qr(rng.standard_normal((m, s.size)))[0]
    Psi = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    return (Phi * s) @ Psi.T


def flow(Sigma, U0, V0, t, rtol=1e-12):
    """Gradient flow dU/dt = R V, dV/dt = R^T U in the original basis (the gradient-flow paper, eqs 1-2),
    integrated by SciPy's solve_ivp on the flattened dense factors; returns U(t), V(t)."""
    from scipy.integrate import solve_ivp

    Sigma = np.asarray(Sigma, dtype=np.float64)
    m, k = U0.shape

    def rhs(_, y):
        U, V = y[: m * k].reshape(m, k), y[m * k :].reshape(-1, k)
        R = Sigma - U @ V.T
        return np.concatenate([(R @ V).ravel(), (R.T @ U).ravel()])

    y0 = np.concatenate([np.ravel(U0), np.ravel(V0)]).astype(np.float64)
    sol = solve_ivp(rhs, (0.0, t), y0, method="DOP853", rtol=rtol, atol=1e-3 * rtol * np.max(np.abs(y0)))
    y = sol.y[:, -1]
    return y[: m * k].reshape(m, k), y[m * k :].reshape(-1, k)
