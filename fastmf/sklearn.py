"""`GradientDescentMF`: fastmf's GD as a scikit-learn estimator (scikit-learn is an optional extra).

``fit(X)`` runs `fastmf.solve` on X (n_samples x n_features) with width n_components on the
direct path (no SVD of X: each step streams X once), ``record_every`` steps at a time, until
the loss stops improving; ``components_`` holds V^T and ``fit_transform(X)`` returns U, so
X ~ U V^T as in `sklearn.decomposition.NMF` (without the sign constraint).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.validation import check_array, check_is_fitted, check_random_state, validate_data
except ImportError:
    raise ImportError(
        "fastmf.sklearn needs scikit-learn >= 1.6: pip install scikit-learn (or the fastmf-gd[sklearn] extra)"
    ) from None

from . import _kernels as K
from . import options as settings
from ._validate import check_fits
from .direct import top_singular_value
from .options import INITS, UPDATES, Options, default_init_scale, default_lr
from .recorder import lr_power
from .scaling import Scale
from .solver import solve

# The default start is this many times fastmf's (`fastmf.options.DEFAULTS`): 0.1 sqrt(sigma_1 / (m + n)),
# so that ||U0 V0^T||_op is about 1e-2 sigma_1: small enough for the theory's picture, large enough
# to skip most of the warm-up.
_START = 100.0
# Elements of X per row block when a residual is summed (2 MiB of float64).
_BLOCK_ELEMS = 1 << 18
_FLOATS = [np.float64, np.float32]


class GradientDescentMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Matrix factorization X ~ U V^T by constant-step gradient descent from a small random start.

    Minimizes 1/2 ||X - U V^T||_F^2 by GD exactly as ``fastmf.solve(X, ..., method="direct")``
    does (Ye and Du 2021, arXiv:2106.14289, eqs 2-3), which streams X once per step and needs
    no SVD of X. GD from a small random start converges to the best rank-n_components
    approximation of X (to X itself when n_components >= rank(X)).

    The fit runs ``record_every`` steps at a time and stops, as scikit-learn's NMF does, at
    the first check where the loss improved by less than ``tol * loss_0`` over the last
    ``record_every`` steps (loss_0: the loss at the random start). From a small start the
    loss barely moves for a while before it drops (the first stage of the analysis), so the
    test only applies once some stretch of ``record_every`` steps has improved the loss by at
    least ``tol * loss_0``; a rise of the loss never counts as convergence. The run depends
    on the number of steps only, never on time: the same ``random_state`` gives the same
    result however fast the machine is. On a spectrum whose weaker components lie far below sigma_1, GD
    learns them one after the other with plateaus in between; a smaller ``tol`` carries the
    fit across longer plateaus.

    A ConvergenceWarning says when the fit reached ``max_iter`` without meeting ``tol``, and
    when GD diverged (with the stable range of ``lr``).

    Parameters
    ----------
    n_components : int or None
        Width k of U and V; default min(n_samples, n_features).
    lr : float or None
        Step size; default fastmf's, 0.3 / sigma_1(X) (`fastmf.options.DEFAULTS`), inside
        GD's stable range lr <= 1 / (3 sigma_1) from a small start (sigma_1 estimated from
        below, to a few per cent, by ten power iterations).
    max_iter : int or None
        Most steps to take; default fastmf's, 10000.
    tol : float
        Stop once the loss improves by less than tol * loss_0 over ``record_every`` steps
        (see above); 0 runs all ``max_iter`` steps unless the loss reaches exactly 0.
    init_scale : float or None
        Standard deviation of the Gaussian start (see `fastmf.solve`); default 100 times
        fastmf's, 0.1 * sqrt(sigma_1(X) / (n_samples + n_features)).
    random_state : int, RandomState instance or None
        Seed of the start: an int is passed to `fastmf.solve` as its seed.
    record_every : int
        Steps between two checks of the loss (the entries of `history_`).
    balance, update, precondition, noise : optional
        The GD variants, as in `fastmf.Options` (defaults: plain GD). With noise > 0 each
        stretch of ``record_every`` steps draws its noise from its own seed, derived from
        ``random_state``.
    init : {"gaussian", "balanced", "symmetric"}
        The law of the random start, as in `fastmf.Options` ("symmetric" needs a square X).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        V^T.
    n_components_ : int
    reconstruction_err_ : float
        ||X - U V^T||_F for the U that fit_transform returns, so that score(X) is
        -reconstruction_err_.
    n_iter_ : int
        Steps taken.
    lr_, init_scale_ : float
        The step size and the scale of the start that the fit used.
    history_ : dict of ndarray
        "step" and "loss" (1/2 ||X - U V^T||_F^2) at the start and at every check.
    status_ : str
        How the fit ended: "converged" (tol met, or loss 0), "max_iter" or "diverged".
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when X has string column names)

    Notes
    -----
    A step costs 4 n_samples n_features n_components flops, one pass over X. On noisy
    3000 x 1000 matrices with n_components=10 the defaults stop after 120-180 steps, within
    0.04% of the optimal error; `sklearn.decomposition.TruncatedSVD` does about a tenth of
    that work.

    Sparse X is accepted and densified for the fit (the direct path streams a dense X; a
    MemoryError says so when it cannot fit in memory); `transform` and `score` take it
    without densifying all of it.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "lr": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "init_scale": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "record_every": [Interval(numbers.Integral, 1, None, closed="left")],
        "balance": [Interval(numbers.Real, 0, None, closed="left")],
        "update": [StrOptions(set(UPDATES))],
        "precondition": [Interval(numbers.Real, 0, None, closed="left"), None],
        "noise": [Interval(numbers.Real, 0, None, closed="left")],
        "init": [StrOptions(set(INITS))],
    }

    def __init__(
        self,
        n_components=None,
        *,
        lr=None,
        max_iter=None,
        tol=1e-4,
        init_scale=None,
        random_state=None,
        record_every=10,
        balance=0.0,
        update="simultaneous",
        precondition=None,
        noise=0.0,
        init="gaussian",
    ):
        self.n_components = n_components
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.random_state = random_state
        self.record_every = record_every
        self.balance = balance
        self.update = update
        self.precondition = precondition
        self.noise = noise
        self.init = init

    def fit(self, X, y=None):
        """Fit U, V to X (dense or sparse); returns self."""
        self.fit_transform(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit V to X (dense or sparse) and return U = transform(X) (n_samples x n_components): the
        least-squares U for the fitted V, the U that GD's own U tends to (they differ by what the
        steps after the stop would still change)."""
        X = validate_data(self, X, accept_sparse="csr", dtype=_FLOATS)
        m, n = X.shape
        k = min(m, n) if self.n_components is None else self.n_components
        if k > min(m, n):
            raise ValueError(
                f"n_components={k} must be at most min(n_samples, n_features) = {min(m, n)} for X of shape {X.shape}"
            )
        if (X.count_nonzero() if scipy.sparse.issparse(X) else np.count_nonzero(X)) == 0:
            raise ValueError("X is all zeros: there is nothing to factorize")
        # at a scale of X far from 1 (beyond 2^+-128), the fit runs on X / c, c a power of 4 (exact,
        # fastmf.scaling), so that the losses its stopping rule compares stay in range
        scale = Scale.of(K.absmax(_dense(X[:1]) if scipy.sparse.issparse(X) else X))
        scale = scale if abs(scale.e) >= 64 else Scale(0)
        S = scale.inward(_dense(X), 1)
        sigma_1 = _sigma_1_estimate(S)
        # ScaledGD's lr is scale-free (`recorder.lr_power`); its lam scales as a Gram, noise as U
        power = lr_power(self)
        if self.lr is None:
            lr = settings.DEFAULTS.lr if self.precondition is not None else default_lr(sigma_1)
        else:
            lr = scale.inward(self.lr, power)
        precondition = None if self.precondition is None else scale.inward(self.precondition, 1)
        init_scale = _START * default_init_scale(sigma_1, m, n)
        if self.init_scale is not None:
            init_scale = scale.inward(self.init_scale, 0.5)
        seed = self.random_state
        if not isinstance(seed, numbers.Integral):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
        self.lr_, self.init_scale_ = scale.outward(float(lr), power), scale.outward(float(init_scale), 0.5)
        self.max_iter_ = settings.DEFAULTS.max_iter if self.max_iter is None else self.max_iter
        options = Options(k=k, lr=float(lr), method="direct", balance=self.balance, update=self.update,
                          precondition=precondition, noise=scale.inward(self.noise, 0.5))  # fmt: skip
        start = {"init_scale": float(init_scale), "seed": seed, "init": self.init}
        run, history, self.status_ = self._descend(S, options, start, seed)
        self.history_ = scale.history_outward(history)
        self.n_iter_ = int(history["step"][-1])
        self.components_ = np.ascontiguousarray(scale.outward(run.V.T, 0.5))
        self.n_components_ = k
        U = self._transform(X)
        self.reconstruction_err_ = _residual_norm(X, U, self.components_)
        if self.status_ != "converged":
            self._warn(self.lr_, scale.outward(top_singular_value(S), 1), history["loss"], options.plain)
        return U

    def _descend(self, S, options, start, seed):
        """GD with `options` from `start` (init_scale, seed and init) in runs of record_every steps, each
        from the last one's state: the numbers of one long run (with noise, the noise of run i from the
        seed [seed, i]). Stops by the rule of the class docstring; returns the last run, the history and
        the status."""
        steps, losses, armed = [0], [], False
        while steps[-1] < self.max_iter_:
            stride = min(self.record_every, self.max_iter_ - steps[-1])
            with warnings.catch_warnings():
                if len(steps) > 1:  # solve's warnings about lr were given by the first run
                    warnings.filterwarnings("ignore", "lr = ", RuntimeWarning)
                run = solve(S, max_iter=stride, record_every=stride, options=options, progress=False, **start)
            if run.status == "interrupted":  # solve keeps the state on Ctrl-C; a fit stops
                raise KeyboardInterrupt
            start = {"U0": run.U, "V0": run.V, "seed": [seed, len(steps)] if options.noise > 0 else None}
            losses = losses or [run.history["loss"][0]]
            steps.append(steps[-1] + run.n_iter)
            if run.status == "diverged":  # run.loss: the loss of the last finite state, the one returned
                return run, _history(steps, losses + [run.loss]), "diverged"
            losses.append(run.loss)
            gain = (losses[-2] - losses[-1]) / losses[0]
            if run.status == "converged" or (armed and 0 <= gain < self.tol):  # converged: the loss is 0
                return run, _history(steps, losses), "converged"
            armed = armed or gain >= self.tol
        return run, _history(steps, losses), "max_iter"

    def _warn(self, lr, sigma_1, losses, plain):
        """ConvergenceWarning for a fit that diverged or ran out of steps; advice on lr only where lr
        is outside plain GD's stable range."""
        bound = 1.0 / (3.0 * sigma_1)
        stable = f"GD's stable range from a small start, lr <= 1 / (3 sigma_1(X)) = {bound:.4g}"
        if not plain:
            advice = "; with the GD variant chosen (balance, update, precondition, noise), try a smaller lr"
            advice += ", or precondition > 0" if self.precondition == 0 else ""
        elif lr > bound:
            default = f"{settings.DEFAULTS.lr:g} / sigma_1(X)"
            advice = f"; lr = {lr:.4g} exceeds {stable}: pass a smaller lr, or lr=None for {default}"
        elif self.status_ == "diverged":
            advice = f"; lr = {lr:.4g} is within {stable}, so the start was too large: pass a smaller init_scale"
        else:
            advice = ""
        if self.status_ == "diverged":
            message = f"GradientDescentMF: GD diverged at step {self.n_iter_ + 1}{advice}"
        elif np.any(-np.diff(losses) >= self.tol * losses[0]):  # the rule was armed: still improving
            message = (
                f"GradientDescentMF: stopped at max_iter={self.max_iter_} before the loss improved by less than "
                f"tol={self.tol:g} of its initial value over record_every={self.record_every} steps: raise max_iter "
                f"or tol{advice}"
            )
        else:
            message = (
                f"GradientDescentMF: in max_iter={self.max_iter_} steps the loss never improved by tol={self.tol:g} "
                f"of its initial value over record_every={self.record_every} steps: lower tol or raise "
                f"max_iter{advice}"
            )
        warnings.warn(message, ConvergenceWarning, stacklevel=2)

    def transform(self, X):
        """The least-squares U for fixed V: argmin_U ||X - U V^T||_F (minimum norm), X dense or sparse."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=_FLOATS, reset=False)
        return self._transform(X)

    def _transform(self, X):
        return np.asarray(X @ np.linalg.pinv(self.components_).astype(X.dtype, copy=False))

    def inverse_transform(self, X):
        """U V^T for a given dense U (n_samples x n_components)."""
        check_is_fitted(self)
        return check_array(X, dtype=_FLOATS) @ self.components_

    def score(self, X, y=None):
        """Negative reconstruction error, -||X - transform(X) V^T||_F (higher is better), X dense or sparse."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=_FLOATS, reset=False)
        return -_residual_norm(X, self._transform(X), self.components_)

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _history(steps, losses) -> dict:
    return {"step": np.array(steps), "loss": np.array(losses)}


def _dense(X) -> np.ndarray:
    """X as a C-ordered dense array, the form the direct path streams; MemoryError for a sparse X
    whose dense form is larger than the machine's memory."""
    if not scipy.sparse.issparse(X):
        return np.ascontiguousarray(X)
    check_fits(
        X.shape,
        X.dtype,
        f"GradientDescentMF: the fit streams X as a dense array, which for this sparse {X.shape[0]} x {X.shape[1]} X",
        "use sklearn.decomposition.TruncatedSVD, or fastmf.solve(fastmf.Problem(X), ...) if X is of low rank",
    )
    return X.toarray()


def _sigma_1_estimate(S: np.ndarray) -> float:
    """sigma_1 of a dense S to a few per cent, from below: exact for small S, else ten power
    iterations on S^T S from a fixed start (20 passes over S, a fraction of what Lanczos takes
    on a flat spectrum). Enough to scale the default lr and init_scale."""
    if min(S.shape) <= 128:
        return top_singular_value(S)
    v = np.random.default_rng(0).standard_normal(S.shape[1]).astype(S.dtype)
    for _ in range(10):  # normalized after each product, with BLAS's scaled norm: any finite scale of S works
        u = S @ v
        u /= scipy.linalg.norm(u)
        v = S.T @ u
        v /= scipy.linalg.norm(v)
    return float(scipy.linalg.norm(S @ v))


def _residual_norm(X, U, H) -> float:
    """||X - U H||_F in float64 over row blocks of X (dense or CSR), no m x n temporary; BLAS's scaled
    norm of each block, so that no scale of X overflows or underflows."""
    m, n = X.shape
    rows = max(1, _BLOCK_ELEMS // n)
    total = 0.0
    for lo in range(0, m, rows):
        block = X[lo : lo + rows]
        block = block.toarray() if scipy.sparse.issparse(block) else block
        residual = (block - U[lo : lo + rows] @ H).astype(np.float64, copy=False)
        total = float(np.hypot(total, scipy.linalg.norm(residual.ravel())))
    return total
