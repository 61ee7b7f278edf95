"""`GradientDescentMF`: fastmf's GD as a scikit-learn estimator (scikit-learn is an optional extra).

``fit(X)`` runs `fastmf.solve` on X (n_samples x n_features) with width n_components;
``fit_transform(X)`` returns U, ``components_`` holds V^T, so X ~ U V^T as in
`sklearn.decomposition.NMF` (without the sign constraint).
"""

from __future__ import annotations

import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
except ImportError:
    raise ImportError(
        "fastmf.sklearn needs scikit-learn >= 1.6: pip install scikit-learn (or the fastmf-gd[sklearn] extra)"
    ) from None

from .problem import Problem
from .solver import solve


class GradientDescentMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Matrix factorization X ~ U V^T by constant-step gradient descent from a small random start.

    Minimizes 1/2 ||X - U V^T||_F^2 exactly as `fastmf.solve` does (seed 001, eqs 2-3, run
    in the singular basis of X). With n_components = rank(X) and enough steps U V^T = X;
    with fewer, GD from a small random start converges to the best rank-n_components
    approximation.

    Parameters
    ----------
    n_components : int or None
        Width k of U and V; default min(n_samples, n_features).
    lr : float or None
        Step size; default 0.25 / sigma_1(X), within GD's stable range lr <= 1 / (3 sigma_1).
    max_iter : int
        Most steps to take.
    tol : float
        Stop once the loss is at most tol * 1/2 ||X||_F^2 (relative).
    init_scale : float or None
        Standard deviation of the Gaussian start (see `fastmf.solve`).
    random_state : int, RandomState instance or None
        Seed of the start: an int is passed to `fastmf.solve` as its seed.
    record_every : int
        Stride of the recorded history (`history_`).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        V^T.
    n_components_ : int
    reconstruction_err_ : float
        ||X - U V^T||_F at the end of fit.
    n_iter_ : int
        Steps taken.
    history_ : dict of ndarray
        The run's recorded diagnostics (`fastmf.SolveResult.history`).
    stages_ : fastmf.stages.Stages
        T1, T0, T_delta and the linear rate of the run.
    status_ : str
        How the run ended ("converged", "max_iter", "diverged", ...).
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when X has string column names)
    """

    def __init__(
        self,
        n_components=None,
        *,
        lr=None,
        max_iter=10_000,
        tol=1e-16,
        init_scale=None,
        random_state=None,
        record_every=10,
    ):
        self.n_components = n_components
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.random_state = random_state
        self.record_every = record_every

    def fit(self, X, y=None):
        """Fit U, V to X; returns self."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit U, V to X and return U (n_samples x n_components)."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        k = min(X.shape) if self.n_components is None else self.n_components
        if isinstance(k, numbers.Integral) and k > min(X.shape):
            raise ValueError(
                f"n_components={k} must be at most min(n_samples, n_features) = {min(X.shape)} for X of shape {X.shape}"
            )
        norm2 = float(np.sum(np.square(X, dtype=np.float64)))
        if norm2 == 0:
            raise ValueError("X is all zeros: there is nothing to factorize")
        problem = Problem(X)
        lr = 0.25 / problem.sigma_1 if self.lr is None else self.lr
        seed = self.random_state
        if seed is None or not isinstance(seed, numbers.Integral):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
        result = solve(
            problem, k, lr, self.max_iter, init_scale=self.init_scale, seed=seed, tol=self.tol * 0.5 * norm2,
            record_every=self.record_every, spectral_every=0,
        )  # fmt: skip
        U, V = result.U, result.V
        self.components_ = np.ascontiguousarray(V.T)
        self.n_components_ = k
        self.reconstruction_err_ = float(np.sqrt(2.0 * max(result.loss, 0.0)))
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.stages_ = result.stages
        self.status_ = result.status
        return U

    def transform(self, X):
        """The least-squares U for fixed V: argmin_U ||X - U V^T||_F (minimum norm)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        V = self.components_.T.astype(X.dtype, copy=False)
        return np.linalg.lstsq(V, X.T, rcond=None)[0].T

    def inverse_transform(self, X):
        """U V^T for a given U (n_samples x n_components)."""
        check_is_fitted(self)
        return np.asarray(X) @ self.components_

    @property
    def _n_features_out(self):
        return self.components_.shape[0]
