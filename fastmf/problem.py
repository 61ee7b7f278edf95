"""The target matrix Sigma and its singular basis (docs/maths.md section 2).

GD on 1/2 ||U V^T - Sigma||_F^2 only ever sees Sigma through its thin SVD
Sigma = Phi diag(s) Psi^T over the r nonzero singular values, so a `Problem` holds
exactly that: `s`, and the two bases as objects that move a factor between the original
coordinates and the (principal, complement) split of Ye and Du 2021, eqs (6)-(9).

Dense linear algebra here goes through numpy.linalg, never scipy.linalg: SciPy ships its
own OpenBLAS, and alternating between two OpenBLAS thread pools makes each wait for the
other's spinning threads (a 0.06 ms product took 8 ms after a SciPy QR on 2 cores).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ._validate import check_fits, finite_float, is_dask_array, positive_int, real_array

# Below this min(m, n) a full dense SVD is cheaper than any truncated solver.
_FULL_SVD_MAX = 128
# Random probes used to estimate the relative residual ||Sigma - Phi S Psi^T||_F / ||Sigma||_F.
_N_PROBES = 8
# Columns a sketch needs beyond the rank it finds to skip the subspace iteration: with fewer, the
# last singular values of a numerically (not exactly) low-rank Sigma come out less accurate.
_OVERSAMPLING = 8


class DenseBasis:
    """Orthonormal columns Phi (dim x r): principal coordinates Phi^T U, lift Phi Up."""

    def __init__(self, Phi: np.ndarray):
        self.Phi = Phi
        self.dim, self.rank = Phi.shape

    def coords(self, U: np.ndarray) -> np.ndarray:
        return self.Phi.T @ U

    def lift(self, Up: np.ndarray) -> np.ndarray:
        return self.Phi @ Up

    def complement_basis(self) -> np.ndarray:
        """Orthonormal basis of range(Phi)^perp, dim x (dim - r); used only when dim - r is small."""
        Q = np.linalg.qr(self.Phi, mode="complete")[0]
        return np.ascontiguousarray(Q[:, self.rank :])


class CoordinateBasis:
    """Phi made of coordinate vectors e_index[j] (a diagonal Sigma): nothing m x r is stored."""

    def __init__(self, index: np.ndarray, dim: int):
        self.index = index
        self.dim, self.rank = dim, index.size

    def coords(self, U: np.ndarray) -> np.ndarray:
        return U[self.index]

    def lift(self, Up: np.ndarray) -> np.ndarray:
        out = np.zeros((self.dim, Up.shape[1]), dtype=Up.dtype)
        out[self.index] = Up
        return out

    def complement_rows(self) -> np.ndarray:
        """The coordinates outside the principal subspace, in increasing order."""
        mask = np.ones(self.dim, dtype=bool)
        mask[self.index] = False
        return np.flatnonzero(mask)

    def complement_basis(self) -> np.ndarray:
        rows = self.complement_rows()
        W = np.zeros((self.dim, rows.size))
        W[rows, np.arange(rows.size)] = 1.0
        return W


class Problem:
    """Sigma (m x n) given as a dense array, a scipy sparse matrix, a LinearOperator or a
    dask array.

    The basis is the thin SVD over the numerical rank r: singular values above
    ``rtol * s_1`` are kept (default ``rtol = max(m, n) * eps`` of Sigma's dtype, as
    ``numpy.linalg.matrix_rank``). Small matrices use a dense SVD; larger ones an adaptive
    randomized range finder (Halko, Martinsson & Tropp 2011) that grows its width until
    it holds a zero singular value, so a 4096 x 4096 matrix of rank 16 costs two passes,
    not a full SVD: Sigma times 32 random vectors and the 8 random probes of the residual
    check at once, then Sigma^T times the 32 orthonormalized results. The residual
    ||Sigma - Phi S Psi^T||_F / ||Sigma||_F is estimated from the probes
    (`basis_residual`); a basis that fails the check gets one subspace iteration (two more
    passes), and if the residual is still not near rounding error a RuntimeWarning says so
    and the full spectrum is used instead.

    A dask array (Sigma larger than memory, in chunks) gets its basis from Dask's own
    truncated SVD, ``dask.array.linalg.svd_compressed``, with the same doubling width and
    the same residual check; its chunks are streamed, never gathered into one array, and
    a basis that fails the check raises instead (the full spectrum would need all of it).

    Use `Problem.from_factors` for Sigma = A B^T and `Problem.from_spectrum` for a
    diagonal Sigma of any size (the papers' "without loss of generality").

    Parameters
    ----------
    Sigma : array_like, scipy.sparse matrix, scipy.sparse.linalg.LinearOperator or dask array
        The target, real and finite. Not copied or modified.
    rtol : float, optional
        Relative threshold below which singular values count as zero.
    dtype : {None, numpy.float32, numpy.float64}
        Precision of the basis and of every run on this problem; by default float32 for
        float32 input and float64 otherwise.

    Attributes
    ----------
    shape : (int, int)
    s : ndarray, shape (r,)
        The nonzero singular values, in decreasing order.
    rank : int
        r, the number of singular values kept.
    left, right : basis objects for Phi and Psi (``coords``, ``lift``).
    basis_residual : float
        Estimated relative residual of the basis (0 for factors and spectra).
    kind : str
        "dense", "sparse", "operator", "dask", "factors" or "spectrum".
    Sigma : the matrix as given (None for factors and spectra).
    """

    def __init__(self, Sigma, *, rtol: float | None = None, dtype=None):
        if isinstance(Sigma, Problem):
            raise TypeError("Sigma is already a Problem; pass it to solve() directly")
        if scipy.sparse.issparse(Sigma):
            kind, op = "sparse", _check_sparse(Sigma)
        elif isinstance(Sigma, scipy.sparse.linalg.LinearOperator):
            kind, op = "operator", Sigma
        elif is_dask_array(Sigma):
            kind, op = "dask", _check_dask(Sigma)
        else:
            kind, op = "dense", _dense_array(Sigma)
        if len(op.shape) != 2 or min(op.shape) < 1:
            raise ValueError(f"Sigma must be a 2-D matrix with at least one row and column, got shape {op.shape}")
        m, n = op.shape
        dtype = _dtype(op.dtype if dtype is None else dtype)
        tol = _rtol(rtol, m, n, dtype)
        self._fill(kind, (m, n), dtype, *_dense_bases(_basis(op, kind, tol), dtype), Sigma)

    @classmethod
    def if_low_rank(cls, Sigma, max_width: int) -> Problem | None:
        """The Problem of a dense Sigma if a sketch of at most max_width columns finds its
        exact basis (a few products with Sigma), else None: what ``method="auto"`` tries."""
        S = _dense_array(Sigma)
        m, n = S.shape
        dtype = _dtype(S.dtype)
        found = _basis(S, "dense", _rtol(None, m, n, dtype), max_width)
        if found is None:
            return None
        return cls.from_basis("dense", (m, n), dtype, *_dense_bases(found, dtype), Sigma)

    @classmethod
    def from_basis(cls, kind, shape, dtype, s, left, right, basis_residual=0.0, Sigma=None) -> Problem:
        """The Problem with this singular basis (the one constructor of every path but
        ``Problem(Sigma)``: factors, spectra, saved files, dense matrices found low rank)."""
        self = cls.__new__(cls)
        self._fill(kind, shape, dtype, s, left, right, basis_residual, Sigma)
        return self

    def _fill(self, kind, shape, dtype, s, left, right, basis_residual, Sigma):
        if s.size == 0:
            raise ValueError("Sigma has no nonzero singular value; GD on a zero target is trivial")
        self.kind = kind
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.s = np.ascontiguousarray(s, dtype=dtype)
        self.rank = int(s.size)
        self.left, self.right = left, right
        self.basis_residual = basis_residual
        self.Sigma = Sigma

    @classmethod
    def from_factors(cls, A, B, *, rtol: float | None = None, dtype=None) -> Problem:
        """Sigma = A B^T, never formed: QR of A and B, then the SVD of the small R_A R_B^T."""
        A = real_array(A, "A", 2)
        B = real_array(B, "B", 2)
        if A.shape[1] != B.shape[1]:
            raise ValueError(
                f"A and B must have the same number of columns (Sigma = A B^T), got A {A.shape} and B {B.shape}"
            )
        dtype = _dtype(np.result_type(A, B) if dtype is None else dtype)
        Qa, Ra = np.linalg.qr(A.astype(np.float64), mode="reduced")
        Qb, Rb = np.linalg.qr(B.astype(np.float64), mode="reduced")
        Uc, sc, Vct = np.linalg.svd(Ra @ Rb.T)
        r = _count_rank(sc, _rtol(rtol, A.shape[0], B.shape[0], dtype))
        Phi, Psi = Qa @ Uc[:, :r], Qb @ Vct[:r].T
        return cls.from_basis(
            "factors", (A.shape[0], B.shape[0]), dtype, sc[:r], DenseBasis(Phi.astype(dtype)),
            DenseBasis(Psi.astype(dtype)),
        )  # fmt: skip

    @classmethod
    def from_spectrum(cls, s, m: int, n: int, *, dtype=None) -> Problem:
        """Sigma = diag(s) padded with zeros to m x n; m and n may be 10**9.

        Entry i of `s` sits at position (i, i), so the principal coordinates are the rows
        and columns where s is nonzero; s may be in any order but must be nonnegative.
        """
        m = positive_int(m, "m")
        n = positive_int(n, "n")
        s = real_array(s, "s", 1, dtype=None)
        if np.any(s < 0):
            raise ValueError(
                "s must be nonnegative (singular values); for a diagonal with negative entries "
                "flip the signs of the matching columns of Psi, or pass the matrix to Problem()"
            )
        if s.size > min(m, n):
            raise ValueError(f"s has {s.size} entries but diag(s) must fit in {m} x {n}; give at most {min(m, n)}")
        dtype = _dtype(s.dtype if dtype is None else dtype)
        index = np.argsort(-s, kind="stable")
        index = index[s[index] > 0]
        return cls.from_basis("spectrum", (m, n), dtype, s[index], CoordinateBasis(index, m), CoordinateBasis(index, n))

    @property
    def sigma_1(self) -> float:
        return float(self.s[0])

    @property
    def sigma_d(self) -> float:
        """The smallest nonzero singular value (the papers' sigma_d)."""
        return float(self.s[-1])

    def dense(self) -> np.ndarray:
        """Sigma as an m x n array (Phi diag(s) Psi^T); for checks on small problems."""
        m, n = self.shape
        check_fits((m, n), self.dtype, "Sigma as a dense array", "keep working with the basis instead")
        Phi = self.left.lift(np.eye(self.rank, dtype=self.dtype))
        Psi = self.right.lift(np.eye(self.rank, dtype=self.dtype))
        return (Phi * self.s) @ Psi.T

    def __repr__(self) -> str:
        m, n = self.shape
        return (
            f"Problem({self.kind}, {m} x {n}, rank {self.rank}, sigma_1={self.sigma_1:.4g}, "
            f"sigma_d={self.sigma_d:.4g}, {self.dtype})"
        )


def _dense_bases(found, dtype):
    """(s, left, right, residual) from `_basis`'s (s, Phi, Psi, residual)."""
    s, Phi, Psi, residual = found
    return s, DenseBasis(Phi.astype(dtype)), DenseBasis(Psi.astype(dtype)), residual


def _check_sparse(Sigma):
    """Sigma, once its index arrays are checked in full (out of range, an indptr that is not
    monotone: SciPy's kernels would read out of bounds) and its values are finite."""
    if Sigma.dtype.kind not in "biuf":
        raise TypeError(f"Sigma must be a real sparse matrix, got dtype {Sigma.dtype}")
    try:
        if Sigma.format == "coo":
            if not Sigma.row.size == Sigma.col.size == Sigma.data.size:
                raise ValueError("row, col and data differ in length")
            for index, size, axis in ((Sigma.row, Sigma.shape[0], "row"), (Sigma.col, Sigma.shape[1], "column")):
                if index.size and (index.min() < 0 or index.max() >= size):
                    raise ValueError(f"a {axis} index is outside 0..{size - 1}")
            A = Sigma
        else:
            A = Sigma if Sigma.format in ("csr", "csc", "bsr") else Sigma.tocsr()
            # a new matrix on the same arrays: check_format may replace (never modify) them
            type(A)((A.data, A.indices, A.indptr), shape=A.shape).check_format(full_check=True)
    except ValueError as exc:
        raise ValueError(f"Sigma (sparse) is malformed: {exc}; rebuild it with scipy.sparse") from None
    if not np.all(np.isfinite(A.data)):
        raise ValueError("Sigma (sparse) contains NaN or Inf; remove or replace the non-finite entries")
    return Sigma


def _check_dask(Sigma):
    if Sigma.dtype.kind not in "biuf":
        raise TypeError(f"Sigma must be a real dask array, got dtype {Sigma.dtype}")
    if Sigma.ndim != 2 or any(np.isnan(Sigma.shape)):
        raise ValueError(
            f"Sigma must be a 2-D dask array of known shape, got shape {Sigma.shape}; call compute_chunk_sizes() first"
        )
    return Sigma


class _DaskOperator(scipy.sparse.linalg.LinearOperator):
    """Sigma X for a dask array Sigma, computed chunk by chunk (what the residual check needs)."""

    def __init__(self, A):
        super().__init__(np.float64, A.shape)
        self.A = A

    def _matmat(self, X):
        return (self.A @ X).compute()


class _DenseOperator(scipy.sparse.linalg.LinearOperator):
    """Products with a dense float64 Sigma; Sigma^T X is formed as (X^T Sigma)^T, which
    OpenBLAS runs about twice as fast as Sigma^T X for a C-ordered Sigma."""

    def __init__(self, A):
        super().__init__(np.float64, A.shape)
        self.A = A

    def _matmat(self, X):
        return self.A @ X

    def _rmatmat(self, X):
        return (X.T @ self.A).T


def _dense_array(Sigma) -> np.ndarray:
    """Sigma checked by `real_array`, except that a float32 or float64 matrix too large for a
    dense SVD skips its pass over every entry for NaN or Inf: the first product with Sigma
    shows them (`_basis` then names them)."""
    if isinstance(Sigma, np.ndarray) and Sigma.dtype in (np.float32, np.float64) and Sigma.ndim == 2:
        if min(Sigma.shape) > _FULL_SVD_MAX:
            return np.asarray(Sigma)  # an ndarray, not a subclass
    return real_array(Sigma, "Sigma", 2)


def _dtype(dtype) -> np.dtype:
    """float32 or float64; integer data computes in float64."""
    dtype = np.dtype(np.float64 if dtype is None else dtype)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype}")
    return dtype


def _rtol(rtol, m, n, dtype) -> float:
    if rtol is None:
        return max(m, n) * float(np.finfo(dtype).eps)
    return finite_float(rtol, "rtol")


def _count_rank(s: np.ndarray, rtol: float) -> int:
    return int(np.count_nonzero(s > rtol * s[0])) if s.size and s[0] > 0 else 0


def _basis(op, kind, rtol, max_width=None):
    """Thin SVD (s, Phi, Psi) over the numerical rank, and its estimated relative residual.

    With max_width, a sketch wider than that, or a basis that fails the residual check,
    returns None instead (no full SVD).
    """
    m, n = op.shape
    # no copy of a float64 Sigma; a float32 one gets one, its products as exact as before
    dense = np.asarray(op, dtype=np.float64) if kind == "dense" else None
    if kind == "operator":
        lin = op
    elif kind == "dask":
        lin = _DaskOperator(op)
    elif dense is not None:
        lin = _DenseOperator(dense)
    else:
        lin = scipy.sparse.linalg.aslinearoperator(op)
    rng = np.random.default_rng(0)  # the basis is a property of Sigma, not of a run's seed
    # what the discarded singular values (each below rtol * s_1) can leave, or rounding
    expected = 10.0 * np.sqrt(min(m, n)) * max(rtol, max(m, n) * np.finfo(np.float64).eps)
    if dense is not None and min(m, n) <= _FULL_SVD_MAX:
        s, Phi, Psi = _full_svd(dense, rtol)
        residual = _residual(s, Phi, Psi, *_probes(lin, rng))
    elif kind == "dask":
        s, Phi, Psi = _dask_svd(op, rtol)
        residual = _residual(s, Phi, Psi, *_probes(lin, rng))
    else:
        try:
            found = _randomized_svd(lin, dense, rtol, expected, rng, max_width)
        except ValueError:  # a product was not finite: name the cause a dense Sigma was not checked for
            if dense is not None and not np.all(np.isfinite(dense)):
                raise ValueError("Sigma contains NaN or Inf; remove or replace the non-finite entries") from None
            raise
        if found is None:
            return None
        s, Phi, Psi, residual = found
    if residual > expected and max_width is not None:
        return None
    if residual > expected and kind == "dask":
        raise ValueError(
            f"Problem: Dask's truncated SVD leaves a relative residual {residual:.2e} (expected below "
            f"{expected:.1e}), so Sigma is not of low rank to rtol={rtol:.1e}; the full spectrum would need "
            "Sigma in memory: pass a larger rtol, or Sigma.compute() if it fits"
        )
    if residual > expected:
        warnings.warn(
            f"Problem: the truncated SVD basis leaves a relative residual {residual:.2e} "
            f"(expected below {expected:.1e}); using the full spectrum instead",
            RuntimeWarning,
            stacklevel=3,
        )
        s, Phi, Psi = _full_svd(dense if dense is not None else lin.matmat(np.eye(n)), 0.0)
        residual = _residual(s, Phi, Psi, *_probes(lin, rng))
    return s, Phi, Psi, residual


def _full_svd(A, rtol):
    U, s, Vt = np.linalg.svd(np.asarray(A, dtype=np.float64), full_matrices=False)
    r = _count_rank(s, rtol) if rtol > 0 else int(np.count_nonzero(s > 0))
    return s[:r], U[:, :r], Vt[:r].T


def _randomized_svd(lin, dense, rtol, expected, rng, max_width=None):
    """Adaptive range finder (s, Phi, Psi, residual), its residual check built in.

    One product Sigma [Omega, W] gives the sketch Sigma Omega and the probes Sigma W of the
    check, one product Sigma^T Q the small matrix whose SVD is the basis: two passes over
    an exactly low-rank Sigma. Only a basis that fails the check, or that leaves fewer than
    `_OVERSAMPLING` columns of the sketch to spare, gets one subspace iteration (two more
    products), which sharpens a numerically, not exactly, low-rank spectrum. The width
    doubles until the sketch shows a zero singular value (None once the width would pass
    max_width).
    """
    m, n = lin.shape
    p = min(m, n)
    width = min(p, 32)
    while True:
        if max_width is not None and width > max_width:
            return None
        if dense is not None and 4 * width > p:  # a dense SVD is now the cheaper way
            s, Phi, Psi = _full_svd(dense, rtol)
            return s, Phi, Psi, _residual(s, Phi, Psi, *_probes(lin, rng))
        Omega = rng.standard_normal((n, width + _N_PROBES))
        Y = _checked(lin.matmat(Omega))
        W, SW = Omega[:, width:], Y[:, width:]
        Q = np.linalg.qr(Y[:, :width])[0]
        for sweep in range(2):
            B = _checked(lin.rmatmat(Q))  # Sigma^T Q = Ub diag(s) Vt, so Q Q^T Sigma = (Q Vt^T) diag(s) Ub^T
            Ub, s, Vt = np.linalg.svd(B, full_matrices=False)
            r = _count_rank(s, rtol)
            if r == width < p:
                break  # no zero singular value in the sketch: widen it
            s, Phi, Psi = s[:r], Q @ Vt[:r].T, Ub[:, :r]
            residual = _residual(s, Phi, Psi, W, SW)
            if sweep or residual <= expected and (r + _OVERSAMPLING <= width or width == p):
                return s, Phi, Psi, residual
            Q = np.linalg.qr(_checked(lin.matmat(np.linalg.qr(B)[0])))[0]  # the subspace iteration
        width = min(2 * width, p)


def _dask_svd(A, rtol):
    """`_randomized_svd` done by ``dask.array.linalg.svd_compressed`` (one power iteration)
    on the chunks of A: the width doubles until the sketch shows a zero singular value.
    ``compute=True`` makes each pass over A make its chunks again instead of holding all of
    them between passes (20,000 x 20,000: 330 MiB at the peak instead of 3.3 GiB)."""
    import dask
    import dask.array as da

    p = min(A.shape)
    A = A.astype(np.float64)
    width = min(p, 32)
    while True:
        try:
            Ub, s, Vt = dask.compute(*da.linalg.svd_compressed(A, k=width, n_power_iter=1, seed=0, compute=True))
        except np.linalg.LinAlgError:  # what NaN or Inf in a chunk usually ends in
            if not da.isfinite(A).all().compute():
                raise ValueError("Sigma (a dask array) contains NaN or Inf; replace the non-finite entries") from None
            raise
        r = _count_rank(_checked(s), rtol)
        if r < width or width == p:
            return s[:r], Ub[:, :r], Vt[:r].T
        width = min(2 * width, p)


def _checked(Y):
    Y = np.asarray(Y, dtype=np.float64)
    if not np.all(np.isfinite(Y)):
        raise ValueError("Sigma produced NaN or Inf in a product; check the operator's matvec and its data")
    return Y


def _probes(lin, rng):
    """Gaussian probes W (n x 8) and Sigma W, for `_residual`."""
    W = rng.standard_normal((lin.shape[1], _N_PROBES))
    return W, _checked(lin.matmat(W))


def _residual(s, Phi, Psi, W, SW) -> float:
    """||(Sigma - Phi S Psi^T) W||_F / ||Sigma W||_F for Gaussian probes W independent of the
    basis, both norms taken of the matrices divided by max |Sigma W| (no overflow or
    underflow at any scale)."""
    top = float(np.max(np.abs(SW)))
    if top == 0:
        return 0.0
    return float(np.linalg.norm((SW - (Phi * s) @ (Psi.T @ W)) / top) / np.linalg.norm(SW / top))
