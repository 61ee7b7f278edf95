"""Initial states in the split form U = Phi Up + W L (docs/maths.md sections 2-3).

Each factor is held as its principal coordinates Up = Phi^T U (r x k) and its complement
CU = U - Phi Up written as W @ L, where W has orthonormal columns orthogonal to range(Phi):

* compressed, with CU known: W, L from a thin QR of CU (k' = k columns), or W a basis of
  the whole complement when it has at most k dimensions;
* compressed, spectrum problem with no U0: L is init_scale times a Bartlett factor
  (the R of a Gaussian (m - r) x k matrix), sampled in O(k^2) whatever m is, and W is a
  Haar-distributed Stiefel matrix drawn only if someone asks for U (its own seed stream);
* full: W is the identity and L = CU itself (m x k, original coordinates).

Random streams: SeedSequence(seed).spawn(3) gives the initialization stream and one
stream per side for W. A dense, sparse, operator or factors problem samples
U0 = init_scale * N(m x k) and then V0 = init_scale * N(n x k) from the first stream,
so `solve(..., seed=s)` starts from the same U0, V0 whichever `complement` is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_fits, real_array
from .problem import Problem


@dataclass(frozen=True)
class Factor:
    """One factor in split form: U = basis.lift(principal) + W @ L.

    W is an ndarray (dim x p, orthonormal, orthogonal to the principal subspace), None
    (full complement: L is CU itself, dim x k) or a SeedSequence from which a Haar W is
    drawn on demand (`complement_matrix`).
    """

    principal: np.ndarray
    L: np.ndarray
    W: np.ndarray | np.random.SeedSequence | None


def seed_streams(seed) -> tuple[np.random.SeedSequence, np.random.SeedSequence, np.random.SeedSequence]:
    """(init, W_U, W_V) streams from an int, a sequence of ints, None or a SeedSequence (checked
    by `fastmf.Options`)."""
    if isinstance(seed, np.random.SeedSequence):  # a copy: spawn() would advance the caller's object
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    else:
        seed = np.random.SeedSequence(seed)
    init, wu, wv = seed.spawn(3)
    return init, wu, wv


def bartlett(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    """R of the thin QR of a rows x k standard Gaussian matrix (rows > k), in O(k^2).

    Upper triangular with R_ii = sqrt(chi^2_{rows - i}) (i = 0..k-1) and N(0, 1) above the
    diagonal (Bartlett decomposition of the Wishart matrix G^T G).
    """
    R = np.triu(rng.standard_normal((k, k)), 1)
    R[np.diag_indices(k)] = np.sqrt(rng.chisquare(rows - np.arange(k)))
    return R


def haar_stiefel(seq: np.random.SeedSequence, basis, p: int, dtype) -> np.ndarray:
    """W (dim x p): orthonormal, uniform on the complement of a coordinate basis, from `seq`."""
    rows = basis.complement_rows()
    check_fits(
        (basis.dim, p),
        dtype,
        "the complement basis W",
        "use the small state (result.Up, result.L_U, ...) instead of U and V",
    )
    G = np.random.default_rng(seq).standard_normal((rows.size, p))
    Q, R = np.linalg.qr(G, mode="reduced")
    Q *= np.sign(np.diag(R))  # sign fix makes Q exactly Haar and equal to G R^{-1}
    W = np.zeros((basis.dim, p), dtype=dtype)
    W[rows] = Q
    return W


def complement_matrix(basis, factor: Factor, dtype) -> np.ndarray:
    """The m x p matrix W of `factor` (drawn now if it was left to a seed)."""
    if isinstance(factor.W, np.random.SeedSequence):
        return haar_stiefel(factor.W, basis, factor.L.shape[0], dtype)
    return factor.W


def split(basis, U: np.ndarray, complement: str, dtype) -> Factor:
    """Exact split of an explicit factor U (dim x k) into principal and complement parts."""
    principal = basis.coords(U)
    CU = U - basis.lift(principal)
    if complement == "full":
        return Factor(principal.astype(dtype), CU.astype(dtype), None)
    k = U.shape[1]
    if basis.dim - basis.rank <= k:
        W = basis.complement_basis()
        return Factor(principal.astype(dtype), (W.T @ CU).astype(dtype), W.astype(dtype))
    W, L = np.linalg.qr(CU, mode="reduced")
    return Factor(principal.astype(dtype), L.astype(dtype), W.astype(dtype))


def sample_spectrum_factor(rng, basis, k, init_scale, w_seed, complement, dtype) -> Factor:
    """Gaussian factor for a spectrum problem without forming dim x k (unless full)."""
    r, rest = basis.rank, basis.dim - basis.rank
    principal = init_scale * rng.standard_normal((r, k))
    if rest <= k:
        W = basis.complement_basis()
        L = init_scale * rng.standard_normal((rest, k))
        if complement == "full":
            return Factor(principal.astype(dtype), (W @ L).astype(dtype), None)
        return Factor(principal.astype(dtype), L.astype(dtype), W.astype(dtype))
    L = init_scale * bartlett(rng, rest, k)
    if complement == "full":  # start() has checked that dim x k fits
        return Factor(principal.astype(dtype), (haar_stiefel(w_seed, basis, k, np.float64) @ L).astype(dtype), None)
    return Factor(principal.astype(dtype), L.astype(dtype), w_seed)


def initial_factors(problem, k, init_scale, seed, U0, V0, complement) -> tuple[Factor, Factor]:
    """The two factors at t = 0: from U0, V0 (float64, validated by `start`) if given, else
    Gaussian with std init_scale."""
    dtype = problem.dtype
    if U0 is not None:
        return split(problem.left, U0, complement, dtype), split(problem.right, V0, complement, dtype)
    init, wu, wv = seed_streams(seed)
    rng = np.random.default_rng(init)
    if problem.kind == "spectrum":
        return (
            sample_spectrum_factor(rng, problem.left, k, init_scale, wu, complement, dtype),
            sample_spectrum_factor(rng, problem.right, k, init_scale, wv, complement, dtype),
        )
    U0, V0 = gaussian(rng, *problem.shape, k, init_scale)
    return split(problem.left, U0, complement, dtype), split(problem.right, V0, complement, dtype)


def gaussian(rng: np.random.Generator, m: int, n: int, k: int, init_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """U0 (m x k), then V0 (n x k), iid N(0, init_scale^2) from `rng` (the initialization stream)."""
    return init_scale * rng.standard_normal((m, k)), init_scale * rng.standard_normal((n, k))


def start(problem: Problem, options, U0=None, V0=None) -> tuple[Factor, Factor]:
    """The two factors at t = 0 for resolved `options` (`fastmf.Options.resolve`): U0 and V0
    split if given (float64, validated by `checked_start`), else Gaussian with std
    options.init_scale from options.seed (`seed_streams`)."""
    m, n = problem.shape
    if options.complement == "full":
        check_fits(
            (m + n, options.k),
            problem.dtype,
            "the full complement",
            "use complement='compressed', which never forms an m x k matrix",
        )
    return initial_factors(problem, options.k, options.init_scale, options.seed, U0, V0, options.complement)


def checked_start(shape, k, U0, V0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validated (U0, V0) for Sigma of this shape and the width k (float64 arrays, or None)."""
    if (U0 is None) != (V0 is None):
        raise ValueError("give both U0 and V0 or neither")
    if U0 is not None:
        U0, V0 = _given(U0, "U0", (shape[0], k)), _given(V0, "V0", (shape[1], k))
    return U0, V0


def _given(U, name, shape) -> np.ndarray:
    U = real_array(U, name, 2, dtype=np.float64)
    if U.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (rows of Sigma's side x k), got {U.shape}")
    return U


def stack(f: Factor) -> np.ndarray:
    """The kernels' stacked form [principal; L] of a factor (docs/maths.md section 3)."""
    return np.ascontiguousarray(np.vstack([f.principal, f.L]))
