"""The certified extreme eigenvalues of the diagnostics (`fastmf._kernels.spectral.extreme_eig`)."""

import numpy as np
import pytest

from fastmf._kernels.spectral import extreme_eig, posdef


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


def _cholesky_rows(M, n, c, sign):
    """Is c I + sign M[:n, :n] positive definite, and its Cholesky factor: plain Python floats, row by row,
    each sum in the order p = 0, 1, ... (the reference for `posdef`'s order of operations)."""
    L = [[0.0] * n for _ in range(n)]
    for j in range(n):
        d = c + sign * float(M[j, j])
        for p in range(j):
            d -= L[j][p] * L[j][p]
        if not d > 0.0:
            return False, None
        L[j][j] = d**0.5
        inv = 1.0 / L[j][j]
        for i in range(j + 1, n):
            v = sign * float(M[i, j])
            for p in range(j):
                v -= L[i][p] * L[j][p]
            L[i][j] = v * inv
    return True, np.array(L)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 15, 16])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_posdef_answers_and_factors_as_the_plain_cholesky(n, sign):
    # posdef forms the rows below a pivot two at a time (and the last one alone where their number is
    # odd): its answer and its factor must be the row-by-row factorization's to the last bit, and the
    # answer that of the eigenvalues where the shift is clear of the threshold
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n))
    M = sign * (A @ A.T / n + 0.1 * np.eye(n))  # sign M is positive definite
    low = np.linalg.eigvalsh(sign * M)[0]
    poisoned = M.copy()
    poisoned[n - 1, n // 2] = np.nan  # (read in the last row's sums)
    cases = ((M, -0.5 * low, True), (M, -1.5 * low, False), (M, -low * (1 - 1e-9), True), (M, np.nan, False),
             (poisoned, -0.5 * low, False))  # fmt: skip
    for A, c, expected in cases:
        L = np.full((n + 2, n + 3), np.nan)  # larger than n x n, nothing written: an entry read before written is NaN
        ok = posdef(A, n, c, sign, L)
        ref_ok, ref_L = _cholesky_rows(A, n, c, sign)
        assert ok == ref_ok == expected
        if ok:
            assert np.array_equal(np.where(np.tri(n, dtype=bool), L[:n, :n], 0.0), ref_L)
            np.testing.assert_allclose(ref_L @ ref_L.T, c * np.eye(n) + sign * A, rtol=1e-12, atol=1e-12)
