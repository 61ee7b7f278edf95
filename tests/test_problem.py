import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

import fastmf.problem
from fastmf import Problem
from naive import low_rank


def _check_basis(p, Sigma, rtol=1e-12):
    """Phi, Psi orthonormal and Phi diag(s) Psi^T == Sigma; s equal to numpy's singular values."""
    ref = np.linalg.svd(np.asarray(Sigma, dtype=np.float64), compute_uv=False)
    np.testing.assert_allclose(p.s, ref[: p.rank], rtol=rtol)
    eye = np.eye(p.rank)
    Phi, Psi = p.left.lift(eye), p.right.lift(eye)
    np.testing.assert_allclose(Phi.T @ Phi, eye, atol=1e-12)
    np.testing.assert_allclose(Psi.T @ Psi, eye, atol=1e-12)
    assert np.linalg.norm(p.dense() - Sigma) <= rtol * np.linalg.norm(Sigma)


@pytest.mark.parametrize("m, n, r", [(40, 30, 3), (30, 45, 1), (600, 500, 7), (500, 700, 20)])
def test_dense_rank_and_basis(m, n, r):
    rng = np.random.default_rng(m + n)
    Sigma = low_rank(rng, m, n, np.geomspace(10.0, 1.0, r))
    p = Problem(Sigma)
    assert p.kind == "dense" and p.rank == r and p.shape == (m, n)
    assert p.basis_residual < 1e-12
    _check_basis(p, Sigma)


def test_large_low_rank_never_runs_a_full_svd(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("full SVD called")

    monkeypatch.setattr(fastmf.problem, "_full_svd", forbidden)
    rng = np.random.default_rng(1)
    Sigma = low_rank(rng, 1200, 1000, np.linspace(5.0, 1.0, 16))
    p = Problem(Sigma)
    assert p.rank == 16
    np.testing.assert_allclose(p.s, np.linspace(5.0, 1.0, 16), rtol=1e-12)


def test_full_rank_square_uses_whole_spectrum():
    rng = np.random.default_rng(2)
    Sigma = rng.standard_normal((150, 150))
    p = Problem(Sigma)
    assert p.rank == 150
    _check_basis(p, Sigma, rtol=1e-11)


def test_float32_keeps_dtype_and_rank():
    rng = np.random.default_rng(3)
    Sigma = low_rank(rng, 60, 50, [3.0, 2.0, 1.0]).astype(np.float32)
    p = Problem(Sigma)
    assert p.dtype == np.float32 and p.s.dtype == np.float32 and p.rank == 3
    assert p.left.lift(np.eye(3, dtype=np.float32)).dtype == np.float32


def test_rtol_sets_the_numerical_rank():
    rng = np.random.default_rng(4)
    Sigma = low_rank(rng, 50, 40, [1.0, 1e-3, 1e-9])
    assert Problem(Sigma).rank == 3
    assert Problem(Sigma, rtol=1e-6).rank == 2


def test_from_factors_matches_dense():
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((70, 4)), rng.standard_normal((55, 4))
    A[:, 3] = A[:, 0] + A[:, 1]  # Sigma has rank 3, not 4
    p = Problem.from_factors(A, B)
    assert p.kind == "factors" and p.rank == 3
    _check_basis(p, A @ B.T)


def test_from_spectrum_unsorted_with_zeros():
    s = np.array([1.0, 0.0, 3.0, 2.0])
    p = Problem.from_spectrum(s, 7, 5)
    assert p.rank == 3
    np.testing.assert_array_equal(p.s, [3.0, 2.0, 1.0])
    D = np.zeros((7, 5))
    D[np.arange(4), np.arange(4)] = s
    np.testing.assert_array_equal(p.dense(), D)


def test_from_spectrum_huge_dimensions_store_nothing_large():
    p = Problem.from_spectrum(np.linspace(2.0, 1.0, 8), 10**9, 10**9)
    assert p.shape == (10**9, 10**9) and p.rank == 8
    assert p.left.index.nbytes < 1000


def test_sparse_and_operator_match_dense():
    A = scipy.sparse.random(300, 3, density=0.3, random_state=7, format="csr")
    B = scipy.sparse.random(250, 3, density=0.3, random_state=8, format="csr")
    S = (A @ B.T).tocsr()
    dense = S.toarray()
    r = np.linalg.matrix_rank(dense)
    for Sigma, kind in [(S, "sparse"), (scipy.sparse.linalg.aslinearoperator(dense), "operator")]:
        p = Problem(Sigma)
        assert p.kind == kind and p.rank == r
        _check_basis(p, dense, rtol=1e-11)


def test_inconsistent_operator_warns_and_falls_back_to_full_spectrum():
    rng = np.random.default_rng(9)
    M1 = low_rank(rng, 200, 180, [3.0, 2.0])
    M2 = low_rank(rng, 200, 180, [3.0, 2.0])
    # matvec applies M1 but rmatvec applies M2^T: no rank-2 basis can reproduce "Sigma"
    op = scipy.sparse.linalg.LinearOperator(
        (200, 180),
        matvec=lambda x: M1 @ x,
        rmatvec=lambda y: M2.T @ y,
        matmat=lambda X: M1 @ X,
        rmatmat=lambda Y: M2.T @ Y,
        dtype=np.float64,
    )
    with pytest.warns(RuntimeWarning, match="full spectrum"):
        p = Problem(op)
    assert p.basis_residual < 1e-12  # the fallback reproduces what matvec applies
    np.testing.assert_allclose(p.dense(), M1, atol=1e-12)


@pytest.mark.parametrize(
    "Sigma, exc, match",
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN or Inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "NaN or Inf"),
        (np.ones(3), ValueError, "2-D"),
        (np.ones((2, 2, 2)), ValueError, "2-D"),
        (np.ones((2, 2)) * 1j, TypeError, "complex"),
        (np.array([["a", "b"]]), TypeError, "numeric"),
        (np.zeros((0, 3)), ValueError, "empty"),
        (np.zeros((3, 4)), ValueError, "no nonzero singular value"),
        (scipy.sparse.csr_matrix(np.array([[np.nan, 1.0]])), ValueError, "NaN or Inf"),
        (scipy.sparse.csr_matrix(np.ones((2, 2)) * 1j), TypeError, "real"),
    ],
)
def test_bad_sigma(Sigma, exc, match):
    with pytest.raises(exc, match=match):
        Problem(Sigma)


def test_bad_arguments():
    with pytest.raises(TypeError, match="already a Problem"):
        Problem(Problem(np.eye(2)))
    with pytest.raises(TypeError, match="dtype"):
        Problem(np.eye(2), dtype=np.float16)
    with pytest.raises(ValueError, match="nonnegative"):
        Problem.from_spectrum([1.0, -1.0], 3, 3)
    with pytest.raises(ValueError, match="at most 2"):
        Problem.from_spectrum([1.0, 2.0, 3.0], 2, 5)
    with pytest.raises(TypeError, match="m must be an integer"):
        Problem.from_spectrum([1.0], 2.5, 3)
    with pytest.raises(ValueError, match="same number of columns"):
        Problem.from_factors(np.ones((3, 2)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="rtol must be >= 0"):
        Problem(np.eye(3), rtol=-1.0)
