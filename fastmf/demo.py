"""A first run on an embedded example: ``python -m fastmf.demo``.

Sigma is a 400 x 300 matrix of rank 5 with singular values 4, 3, 2, 1.5, 1 in random
orthonormal bases (fixed seed). GD of width 5 from a small Gaussian start goes through
the slow warm-up of stage one (Ye and Du 2021), then converges linearly.
"""

import numpy as np

from . import solve


def embedded_sigma() -> np.ndarray:
    rng = np.random.default_rng(20261123)
    m, n, s = 400, 300, np.array([4.0, 3.0, 2.0, 1.5, 1.0])
    Phi = np.linalg.qr(rng.standard_normal((m, s.size)))[0]
    Psi = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    return (Phi * s) @ Psi.T


def main() -> None:
    Sigma = embedded_sigma()
    result = solve(Sigma, k=5, lr=0.1, max_iter=5000, init_scale=1e-4, seed=0, tol=1e-24, record_every=50)
    print(f"Sigma: {Sigma.shape[0]} x {Sigma.shape[1]}, rank 5, lr = 0.1, init_scale = 1e-4")
    print(f"{'step':>6}  {'loss':>12}  {'imbalance':>10}")
    h = result.history
    for j in np.unique(np.linspace(0, h["step"].size - 1, 12).astype(int)):
        print(f"{h['step'][j]:>6}  {h['loss'][j]:12.4e}  {h['imbalance'][j]:10.3e}")
    print(f"status: {result.status}")
    print(result.message)
    dense_loss = 0.5 * np.sum((Sigma - result.U @ result.V.T) ** 2)
    print(f"check: 1/2 ||Sigma - U V^T||_F^2 from the rebuilt U, V = {dense_loss:.3e}")


if __name__ == "__main__":
    main()
