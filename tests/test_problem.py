import tracemalloc

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


def _counting(monkeypatch, cls, calls):
    """Record the width of every product with Sigma (negative: with Sigma^T) that cls makes."""
    for name, sign in (("_matmat", 1), ("_rmatmat", -1)):
        real = getattr(cls, name)
        monkeypatch.setattr(
            cls, name, lambda self, X, real=real, sign=sign: calls.append(sign * X.shape[1]) or real(self, X)
        )


@pytest.mark.parametrize("kind", ["dense", "operator"])
def test_an_exactly_low_rank_basis_takes_two_products(monkeypatch, kind):
    """Sigma [Omega, W] (sketch and residual probes at once), then Sigma^T Q: nothing else."""
    rng = np.random.default_rng(10)
    Sigma = low_rank(rng, 600, 500, np.geomspace(10.0, 1.0, 7))
    calls = []
    if kind == "dense":
        _counting(monkeypatch, fastmf.problem._DenseOperator, calls)
        p = Problem(Sigma)
    else:
        op = scipy.sparse.linalg.LinearOperator((600, 500), matvec=lambda x: Sigma @ x, rmatvec=lambda y: Sigma.T @ y,
                                                matmat=lambda X: Sigma @ X, rmatmat=lambda Y: Sigma.T @ Y)  # fmt: skip
        _counting(monkeypatch, type(op), calls)
        p = Problem(op)
    assert calls == [32 + 8, -32]
    assert p.rank == 7 and p.basis_residual < 1e-12
    _check_basis(p, Sigma)


def test_a_basis_that_fails_its_check_gets_the_subspace_iteration(monkeypatch):
    rng = np.random.default_rng(11)
    Sigma = low_rank(rng, 600, 500, np.geomspace(10.0, 1.0, 7))
    real, calls, checks = fastmf.problem._residual, [], []

    def fails_first(*args):
        checks.append(real(*args))
        return np.inf if len(checks) == 1 else checks[-1]

    monkeypatch.setattr(fastmf.problem, "_residual", fails_first)
    _counting(monkeypatch, fastmf.problem._DenseOperator, calls)
    p = Problem(Sigma)  # no warning: the sharpened basis passes
    assert calls == [32 + 8, -32, 32, -32] and len(checks) == 2
    assert p.rank == 7 and p.basis_residual == checks[-1] < 1e-12
    _check_basis(p, Sigma)


def test_a_thin_sketch_of_a_slowly_decaying_spectrum_is_sharpened():
    """29 singular values 0.8^i above rtol fill 29 of the sketch's 32 columns: too few to spare, so
    the basis gets the subspace iteration, and its singular values are as accurate as those of a
    plainly written range finder with one (Halko, Martinsson & Tropp 2011, algorithm 4.4)."""
    Sigma = low_rank(np.random.default_rng(12), 400, 400, 0.8 ** np.arange(200))
    rtol = 0.8**28.5
    exact = np.linalg.svd(Sigma, compute_uv=False)[:29]
    errors = []
    for seed in range(8):
        Y = Sigma @ np.random.default_rng(seed).standard_normal((400, 32))
        Q = np.linalg.qr(Sigma @ np.linalg.qr(Sigma.T @ np.linalg.qr(Y)[0])[0])[0]
        errors.append(np.max(np.abs(np.linalg.svd(Q.T @ Sigma, compute_uv=False)[:29] - exact)))
    p = Problem(Sigma, rtol=rtol)
    assert p.rank == 29
    assert np.max(np.abs(p.s - exact)) <= 4 * np.median(errors)


def test_float32_basis_is_as_accurate_as_a_float64_svd():
    """A float32 Sigma's basis, rounded to float32, leaves at most twice the residual of NumPy's
    float64 SVD of it rounded to float32 (products in float32 would leave about ten times)."""
    Sigma = low_rank(np.random.default_rng(13), 600, 500, np.geomspace(10.0, 1.0, 7)).astype(np.float32)
    S = Sigma.astype(np.float64)
    p = Problem(Sigma)
    assert p.dtype == np.float32 and p.rank == 7
    U, s, Vt = np.linalg.svd(S)
    ref = [U[:, :7].astype(np.float32), s[:7].astype(np.float32), Vt[:7].T.astype(np.float32)]
    eye = np.eye(7, dtype=np.float32)
    got = [p.left.lift(eye), p.s, p.right.lift(eye)]
    residual = [np.linalg.norm(S - (Phi.astype(float) * s) @ Psi.astype(float).T) for Phi, s, Psi in (got, ref)]
    assert residual[0] <= 2 * residual[1]


def test_a_large_float64_sigma_is_neither_copied_nor_swept():
    """No float64 copy of Sigma and no entry-by-entry pass (np.isfinite's boolean array is an
    eighth of Sigma): what Problem allocates stays below a tenth of Sigma's size."""
    Sigma = low_rank(np.random.default_rng(14), 3000, 3000, np.geomspace(10.0, 1.0, 7))
    tracemalloc.start()
    try:
        Problem(Sigma)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < Sigma.nbytes / 10


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_a_large_dense_sigma_is_named(bad):
    """A matrix past the dense-SVD size gets no entry-by-entry check: the first product shows it."""
    Sigma = low_rank(np.random.default_rng(15), 300, 200, [3.0, 2.0])
    Sigma[123, 45] = bad
    with pytest.raises(ValueError, match="Sigma contains NaN or Inf; remove or replace"):
        Problem(Sigma)
    with pytest.raises(ValueError, match="Sigma contains NaN or Inf; remove or replace"):
        Problem.if_low_rank(Sigma, 64)
