"""The certified extreme eigenvalues of the diagnostics (`fastmf._kernels.spectral.extreme_eig`)."""

import numpy as np
import pytest

from fastmf._kernels.spectral import extreme_eig


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("want_max", [False, True])
@pytest.mark.parametrize("move", [1e-4, 1e-9])
def test_certified_eigenvalue_from_lapack_then_from_the_tracked_vector(n, want_max, move):
    # first call: no tracked vector, so LAPACK's dsyev gives the value and the vector; second call,
    # on a nearby matrix, the tracked vector's certificate, after Rayleigh iteration where the matrix
    # moved by 1e-4 (the old vector's quotient is ~1e-8 off), as it is where it moved by 1e-9
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n))
    M = 1e-150 * (A + A.T)  # far from 1: the power-of-two scaling
    v, valid, work = np.zeros(n), np.zeros(1, np.int64), [np.zeros((n, n)) for _ in range(3)]
    for step in range(2):
        M = M + step * move * 1e-150 * np.diag(np.arange(n))
        value = extreme_eig(M, n, want_max, 0.0, v, valid, 0, *work)
        exact = np.linalg.eigvalsh(M)[-1 if want_max else 0]
        assert abs(value - exact) <= 1e-12 * n * np.max(np.abs(M))
        assert valid[0] == 1
        np.testing.assert_allclose(M @ v, exact * v, atol=1e-7 * np.max(np.abs(M)))
