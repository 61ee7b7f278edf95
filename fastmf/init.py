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

The law of the start (`Options.init`): "gaussian" as above; "balanced" draws the same U0, V0
and right-multiplies V0 by Gv^-1/2 Gu^1/2 (Gu = U0^T U0, Gv = V0^T V0), so that
V0^T V0 = U0^T U0 (in the split state a k x k factor of [Vp; L_V], so any size works);
"symmetric" sets V0 = U0 (square Sigma; a spectrum problem's right factor is its left one,
W seed included). A start given in split coordinates (`SplitStart`) takes the complement
frames W of the Gaussian start of the run's seed (for a spectrum problem a Haar frame drawn
only if someone asks for U), so its U0, V0 are U0 = Phi Up + W_U L_U, V0 = Psi Vp + W_V L_V.
"""

from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True)
class SplitStart:
    """A start given in split coordinates: U0 = Phi Up + W_U L_U, V0 = Psi Vp + W_V L_V.

    Phi, Psi are the problem's principal bases (`Problem.left`, `Problem.right`; coordinate
    vectors for a spectrum problem) and W_U, W_V orthonormal frames of their complements,
    drawn from the run's seed (`fastmf.init`), so a start at m = n = 10**9 costs O(k^2).
    Only W's span matters to the loss and the small state (result.Up, result.L_U, ...).

    Parameters
    ----------
    Up, Vp : array_like
        Principal coordinates, r x k (r the rank of Sigma, k the width).
    L_U, L_V : array_like
        Complement coordinates, k'_U x k and k'_V x k with k'_U <= min(k, m - r) and
        k'_V <= min(k, n - r) (0 rows: no complement part).
    """

    Up: np.ndarray
    Vp: np.ndarray
    L_U: np.ndarray
    L_V: np.ndarray

    def __post_init__(self):
        Up = real_array(self.Up, "SplitStart.Up", 2, dtype=np.float64)
        k = Up.shape[1]
        object.__setattr__(self, "Up", Up)
        for name in ("Vp", "L_U", "L_V"):
            value = _block(getattr(self, name), f"SplitStart.{name}", allow_empty=name != "Vp")
            if value.shape[1] != k:
                raise ValueError(f"SplitStart.{name} must have k = {k} columns (as Up), got shape {value.shape}")
            object.__setattr__(self, name, value)
        if self.Vp.shape != Up.shape:
            raise ValueError(f"SplitStart.Vp must have the shape of Up, {Up.shape} (r x k), got {self.Vp.shape}")

    @property
    def k(self) -> int:
        """The width of the factors."""
        return self.Up.shape[1]


def _block(x, name, allow_empty) -> np.ndarray:
    """A 2-D finite float64 array (with no rows if `allow_empty`)."""
    arr = np.asarray(x) if allow_empty else None
    if arr is not None and arr.ndim == 2 and arr.shape[0] == 0:
        return arr.astype(np.float64)
    return real_array(x, name, 2, dtype=np.float64)


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


def initial_factors(problem, k, init_scale, seed, U0, V0, complement, init="gaussian") -> tuple[Factor, Factor]:
    """The two factors at t = 0: from U0, V0 (float64, validated by `start`) or a `SplitStart`
    in U0 if given, else drawn with std init_scale by the law `init` (see the module docstring)."""
    dtype = problem.dtype
    if isinstance(U0, SplitStart):
        return from_split(problem, U0, complement, seed)
    if U0 is not None:
        return split(problem.left, U0, complement, dtype), split(problem.right, V0, complement, dtype)
    init_stream, wu, wv = seed_streams(seed)
    rng = np.random.default_rng(init_stream)
    if problem.kind != "spectrum":
        U0, V0 = gaussian(rng, *problem.shape, k, init_scale, init)
        return split(problem.left, U0, complement, dtype), split(problem.right, V0, complement, dtype)
    left = sample_spectrum_factor(rng, problem.left, k, init_scale, wu, complement, np.float64)
    if init == "symmetric":  # the same principal rows, L and W seed: U = V
        return _cast(left, dtype), _cast(left, dtype)
    right = sample_spectrum_factor(rng, problem.right, k, init_scale, wv, complement, np.float64)
    if init == "balanced":
        T = balancing([left.principal, left.L], [right.principal, right.L])
        right = Factor(right.principal @ T, right.L @ T, right.W)
    return _cast(left, dtype), _cast(right, dtype)


def gaussian(rng: np.random.Generator, m: int, n: int, k: int, init_scale: float, init: str = "gaussian"):
    """U0 (m x k), then V0 (n x k), iid N(0, init_scale^2) from `rng` (the initialization stream),
    then V0 made U0 (init="symmetric": V0 is not drawn) or right-multiplied by `balancing`
    (init="balanced")."""
    U0 = init_scale * rng.standard_normal((m, k))
    if init == "symmetric":
        return U0, U0.copy()
    V0 = init_scale * rng.standard_normal((n, k))
    if init == "balanced":
        V0 = V0 @ balancing([U0], [V0])
    return U0, V0


def balancing(U_blocks, V_blocks) -> np.ndarray:
    """T = Gv^-1/2 Gu^1/2 (k x k, float64), Gu and Gv the Grams of the row blocks of U and of V,
    so that (V T)^T (V T) = U^T U; symmetric square roots by eigh. The blocks are scaled by a
    common power of 2 first (T does not change), so that no Gram of a tiny start underflows."""
    blocks = [np.asarray(b, dtype=np.float64) for b in (*U_blocks, *V_blocks)]
    c = 2.0 ** -np.frexp(max(float(np.max(np.abs(b), initial=0.0)) for b in blocks))[1]
    Gu, Gv = (sum((c * b).T @ (c * b) for b in side) for side in (blocks[: len(U_blocks)], blocks[len(U_blocks) :]))
    wu, Qu = np.linalg.eigh(Gu)
    wv, Qv = np.linalg.eigh(Gv)
    if wv[0] <= 0:
        raise ValueError("init='balanced' needs V0 of full column rank k; use init='gaussian' or a smaller k")
    return (Qv / np.sqrt(wv)) @ Qv.T @ (Qu * np.sqrt(np.maximum(wu, 0.0))) @ Qu.T


def _cast(f: Factor, dtype) -> Factor:
    W = f.W.astype(dtype) if isinstance(f.W, np.ndarray) else f.W
    return Factor(f.principal.astype(dtype), f.L.astype(dtype), W)


def frames(problem, k, seed) -> tuple:
    """The complement frames (W_U, W_V: each an array or a seed) of the compressed Gaussian
    start of `seed`: what a `SplitStart` of that run's seed uses."""
    left, right = initial_factors(problem, k, 1.0, seed, None, None, "compressed")
    return left.W, right.W


def from_split(problem, given: SplitStart, complement, seed) -> tuple[Factor, Factor]:
    """The two factors of a `SplitStart` (checked against the problem), with the complement
    frames of the run's seed (`frames`); the complement dim x k itself when full."""
    m, n = problem.shape
    r, k = problem.rank, given.k
    if given.Up.shape[0] != r:
        raise ValueError(f"SplitStart.Up must have r = {r} rows (the rank of Sigma), got shape {given.Up.shape}")
    if k > min(m, n):
        raise ValueError(f"SplitStart's k = {k} must be at most min(m, n) = {min(m, n)}")
    factors = []
    for basis, P, L, W, name in zip((problem.left, problem.right), (given.Up, given.Vp), (given.L_U, given.L_V),
                                    frames(problem, k, seed), ("L_U", "L_V"), strict=True):  # fmt: skip
        p = min(k, basis.dim - r)  # the frame's columns
        if L.shape[0] > p:
            side = "m" if name == "L_U" else "n"
            raise ValueError(f"SplitStart.{name} must have at most min(k, {side} - r) = {p} rows, got shape {L.shape}")
        full = np.zeros((p, k))
        full[: L.shape[0]] = L  # a frame's first k' columns: k' < p rows are padded with zeros
        f = Factor(P, full, W)
        if complement == "full":
            f = Factor(P, complement_matrix(basis, f, np.float64) @ full, None)
        factors.append(_cast(f, problem.dtype))
    return factors[0], factors[1]


def dense(basis, factor: Factor) -> np.ndarray:
    """The dim x k factor basis.lift(principal) + W L, in float64."""
    out = basis.lift(factor.principal.astype(np.float64))
    return out + (factor.L if factor.W is None else complement_matrix(basis, factor, np.float64) @ factor.L)


def start(problem: Problem, options, U0=None, V0=None) -> tuple[Factor, Factor]:
    """The two factors at t = 0 for resolved `options` (`fastmf.Options.resolve`): U0 and V0
    split if given (float64, validated by `checked_start`; U0 may be a `SplitStart`), else
    drawn by the law options.init with std options.init_scale from options.seed (`seed_streams`)."""
    m, n = problem.shape
    if options.complement == "full":
        check_fits(
            (m + n, options.k),
            problem.dtype,
            "the full complement",
            "use complement='compressed', which never forms an m x k matrix",
        )
    return initial_factors(
        problem, options.k, options.init_scale, options.seed, U0, V0, options.complement, options.init
    )


def given_start(Sigma, options, U0, V0, split_start):
    """(Sigma, options, U0, V0) for an engine (`fastmf.solve`, `fastmf.gradient_flow`) from the
    start the user gave: U0, V0 as they are, or a `SplitStart` passed on as U0 (V0 None) with
    Sigma's Problem and options.k its width; on the direct path (method="direct") the SplitStart
    made dense with the frames of options.seed. Refuses a random-start law with a given start."""
    if split_start is None:
        if (U0 is not None or V0 is not None) and options.init != "gaussian":
            raise ValueError(f"init={options.init!r} is a law of the random start; with U0, V0 given, drop init")
        return Sigma, options, U0, V0
    if not isinstance(split_start, SplitStart):
        raise TypeError(f"start must be a fastmf.SplitStart, got {type(split_start).__name__}")
    if U0 is not None or V0 is not None:
        raise ValueError("give the start as U0, V0 or as start=fastmf.SplitStart(...), not both")
    if options.init != "gaussian":
        raise ValueError(f"init={options.init!r} is a law of the random start; with start= given, drop init")
    if options.k is not None and options.k != split_start.k:
        raise ValueError(f"k = {options.k} but the SplitStart has k = {split_start.k} columns; drop k")
    options = dataclasses.replace(options, k=split_start.k)
    problem = Sigma if isinstance(Sigma, Problem) else Problem(Sigma)
    if getattr(options, "method", "split") != "direct":
        return problem, options, split_start, None
    left, right = from_split(problem, split_start, "compressed", options.seed)
    return problem, options, dense(problem.left, left), dense(problem.right, right)


def checked_start(shape, k, U0, V0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validated (U0, V0) for Sigma of this shape and the width k (float64 arrays, or None; a
    `SplitStart` in U0 is passed on: `from_split` checks it against the problem)."""
    if isinstance(U0, SplitStart):
        return U0, None
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
