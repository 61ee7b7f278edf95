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
