"""The settings of a run, in one place: every default, every "theory" value and every check.

`Options` (gradient descent) and `FlowOptions` (gradient flow) are frozen dataclasses.
`solve`, `resume`, `solve_batch`, `gradient_flow`, `sweep`, the command line (whose flags
and TOML keys are generated from the fields) and the estimator all build one and resolve
it once against the problem (`Options.resolve`), which fills in every default and
"theory" value; the resolved copy is what a run uses, keeps (`result.options`) and saves.
The defaults that depend on the problem are the fields of `DEFAULTS`: changing one there
changes it for every entry point.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import theory
from ._validate import finite_float, positive_int


@dataclass(frozen=True)
class Defaults:
    """The defaults that depend on the problem (Sigma of shape m x n, largest singular value sigma_1).

    Attributes
    ----------
    lr : float
        lr = lr / sigma_1: inside GD's stable range lr <= 1 / (3 sigma_1) from a small start.
    init_scale : float
        init_scale = init_scale * sqrt(sigma_1 / (m + n)): ||U0||_op is then about
        init_scale * sqrt(sigma_1) whatever the size (the theory's eps also scales as
        1 / sqrt(m + n)).
    max_iter : int
        Steps of a GD run.
    max_records : int
        With the default record_every, a run records every step up to this many steps; then
        its stride doubles each time the step reaches max_records times the stride, the
        history kept so far thinned to the new stride, so that it never holds more than
        about max_records records (nor do its checkpoints), however long the run. A power
        of 2, so that each new stride divides the step where it starts.
    """

    lr: float = 0.3
    init_scale: float = 1e-3
    max_iter: int = 10_000
    max_records: int = 2**17


DEFAULTS = Defaults()


def default_lr(sigma_1: float) -> float:
    """The default step size, DEFAULTS.lr / sigma_1."""
    return DEFAULTS.lr / sigma_1


def default_init_scale(sigma_1: float, m: int, n: int) -> float:
    """The default init_scale, DEFAULTS.init_scale * sqrt(sigma_1 / (m + n))."""
    return DEFAULTS.init_scale * np.sqrt(sigma_1 / (m + n))


def record_stride(step: int) -> int:
    """The default record_every in effect at `step`: 1 below DEFAULTS.max_records steps, then
    doubled each time the step reaches DEFAULTS.max_records times the stride (`Defaults`).
    A function of the step alone, so that chunks, checkpoints and resumes never change it."""
    stride = 1
    while step >= DEFAULTS.max_records * stride:
        stride *= 2
    return stride


def spectral_factor(r: int, k: int) -> int:
    """The default spectral_every in records: every record when the rank r of Sigma is at most
    the width k; when r > k, every ceil((r / k)^2) records, since a spectral record costs
    O(r^3) and a step O((r + k) k^2): the spectral diagnostics then cost about what the steps cost."""
    return 1 if r <= k else -(-(r * r) // (k * k))


def setting(kind: str, help_: str, default=None):
    """A field: its default, and for the command line its kind of value and help (`fastmf.cli`)."""
    return field(default=default, metadata={"kind": kind, "help": help_})


@dataclass(frozen=True)
class _Start:
    """The settings shared by GD and the flow: the width and the random start."""

    k: int | None = setting("int>=1", "width k of the factors (default: the rank r of Sigma)")
    init_scale: float | str | None = setting(
        "number|theory",
        "std of the Gaussian start, or 'theory' (Theorem 1.1's eps); default "
        f"{DEFAULTS.init_scale:g} sqrt(sigma_1 / (m + n))",
    )
    seed: object = setting("seed", "seed of the start (default: fresh entropy, kept in the result)")
    complement: str = setting(
        "compressed|full", "complement engine: 'compressed' (k x k) or 'full' (m x k)", "compressed"
    )
    init: str = setting(
        "gaussian|balanced|symmetric",
        "law of the random start: iid Gaussian U0, V0; 'balanced' (V0 rescaled so that V0^T V0 = U0^T U0); "
        "'symmetric' (V0 = U0, square Sigma)",
        "gaussian",
    )

    def _check_start(self) -> None:
        for f in dataclasses.fields(self):  # None asks for the default, also where that is not None
            if getattr(self, f.name) is None and f.default is not None:
                _set(self, f.name, f.default)
        if self.k is not None:
            _set(self, "k", positive_int(self.k, "k"))
        _set(self, "init_scale", _number_or_theory(self.init_scale, "init_scale"))
        _check_seed(self.seed)
        _choice(self.complement, "complement", ("compressed", "full"))
        _choice(self.init, "init", INITS)

    def _resolve_start(self, shape, s, sigma_1, U0) -> dict:
        """k, init_scale and seed filled in (s: the singular values, None on the direct path);
        with U0 given, k defaults to its width and init_scale and seed are None."""
        m, n = shape
        k = self.k
        if k is None and U0 is not None and np.ndim(U0) == 2:
            k = int(np.shape(U0)[1])
        if k is None:
            if s is None:
                raise ValueError("k (the width of the factors) is required on the direct path; pass k")
            k = int(np.size(s))
        if k > min(m, n):
            raise ValueError(f"k must be at most min(m, n) = {min(m, n)} for Sigma of shape {m} x {n}, got {k}")
        if self.init == "symmetric" and m != n:
            raise ValueError(f"init='symmetric' (V0 = U0) needs a square Sigma, got {m} x {n}; use init='gaussian'")
        seed = np.random.SeedSequence().entropy if self.seed is None else self.seed
        if U0 is not None:  # the seed of a given start feeds only perturbed GD's noise (`fastmf.noise`)
            return {"k": k, "init_scale": None, "seed": seed if getattr(self, "noise", 0) > 0 else None}
        init_scale = self.init_scale
        if init_scale is None:
            init_scale = default_init_scale(sigma_1, m, n)
        elif init_scale == "theory":
            init_scale = theory.init_scale(_needs_spectrum(s, "init_scale"), m, n)
        return {"k": k, "init_scale": finite_float(init_scale, "init_scale", positive=True), "seed": seed}


@dataclass(frozen=True)
class Options(_Start):
    """What fixes a GD run besides Sigma and, when given, U0 and V0 (`fastmf.solve`).

    None means "the default", filled in by `resolve`. Each field is checked when the
    object is built, with a message that names it.

    Attributes
    ----------
    k : int or None
        Width of the factors, 1 <= k <= min(m, n); may differ from the rank r of Sigma.
        Default r.
    lr : float, "theory", schedule or None
        Step size; default DEFAULTS.lr / sigma_1 (DEFAULTS.lr with `precondition`, whose
        step is scale-free). "theory": Theorem 1.1's
        eta = sigma_d eps^2 / (d sigma_1^3) (`fastmf.theory.step_size`). A schedule: a
        `fastmf.schedules.Schedule` or any callable t -> eta_t on integer arrays of steps.
    max_iter : int or None
        Steps; default DEFAULTS.max_iter.
    init_scale : float, "theory" or None
        Std of the iid Gaussian entries of U0 and V0; default
        DEFAULTS.init_scale * sqrt(sigma_1 / (m + n)). "theory": Theorem 1.1's
        eps = sigma_d / sqrt(d^3 sigma_1 (m + n)).
    seed : int, sequence of int, SeedSequence or None
        Seed of the start (`fastmf.init.seed_streams`); None draws fresh entropy, kept.
    tol : float
        Stop ("converged") at the first recorded loss <= tol that is also within 1e-4 of
        the best loss of width k (`fastmf.stages.converged_level`); 0: no early stop.
    record_every : int or None
        Steps between records; None (default): every step, the stride doubling past
        DEFAULTS.max_records steps so that the history stays bounded (`record_stride`).
    spectral_every : int or None
        Stride of the spectral diagnostics (0: never); None (default): every record, or
        every `spectral_factor` records when the rank of Sigma exceeds k.
    delta : float or None
        The loss level whose first recorded step is T_delta; default tol when tol > 0.
    complement : {"compressed", "full"}
        How the split engine keeps the complement.
    method : {"auto", "split", "direct"}
        The engine (see `fastmf.solve`).
    init : {"gaussian", "balanced", "symmetric"}
        The law of the random start (`fastmf.init`).
    balance : float
        lam >= 0 of the balancing regularizer: GD on
        1/2 ||U V^T - Sigma||_F^2 + (lam / 8) ||U^T U - V^T V||_F^2 (0: plain GD). The
        recorded loss stays the plain loss.
    update : {"simultaneous", "alternating"}
        "alternating": U steps first, then V from the new U.
    precondition : float or None
        lam >= 0 of ScaledGD: each factor's step times (G + lam I)^-1, G the other
        factor's Gram (None: plain GD; lam > 0 is the damped form, for small starts).
    noise : float
        nu >= 0 of perturbed GD: iid N(0, nu^2) added to every entry of U and V after each
        step, from the run's seed (exact in law on the compressed complement, path by path
        on the full one and the direct path).
    """

    lr: float | str | None = setting(
        "number|theory",
        f"step size, or 'theory' (Theorem 1.1); default {DEFAULTS.lr:g} / sigma_1, or {DEFAULTS.lr:g} with "
        "precondition (ScaledGD's step is scale-free)",
    )
    max_iter: int | None = setting("int>=0", f"number of steps (default {DEFAULTS.max_iter})")
    tol: float = setting("float>=0", "stop once the loss is <= this and near the best of width k (0: never)", 0.0)
    record_every: int | None = setting(
        "int>=1",
        "steps between records (default: every step, doubling so that at most about "
        f"{DEFAULTS.max_records} records are kept)",
    )
    spectral_every: int | None = setting(
        "int>=0", "spectral diagnostics stride (default: every record, or every (r/k)^2 when r > k; 0 off)"
    )
    delta: float | None = setting("float>0", "loss level whose first step is T_delta (default: tol, if > 0)")
    method: str = setting("auto|split|direct", "engine: 'split' (singular basis), 'direct' or 'auto'", "auto")
    balance: float = setting("float>=0", "lam of the balancing regularizer (lam/8)||U^T U - V^T V||_F^2", 0.0)
    update: str = setting("simultaneous|alternating", "update U and V together, or U first then V", "simultaneous")
    precondition: float | None = setting("float>=0", "ScaledGD: steps times (V^T V + lam I)^-1 (default: none)")
    noise: float = setting("float>=0", "perturbed GD: std of the Gaussian noise added to U and V each step", 0.0)

    def __post_init__(self):
        self._check_start()
        _set(self, "lr", self.lr if _is_schedule(self.lr) else _number_or_theory(self.lr, "lr"))
        if self.max_iter is not None:
            _set(self, "max_iter", positive_int(self.max_iter, "max_iter", minimum=0))
        _set(self, "tol", finite_float(self.tol, "tol"))
        if self.record_every is not None:
            _set(self, "record_every", positive_int(self.record_every, "record_every"))
        if self.spectral_every is not None:
            _set(self, "spectral_every", positive_int(self.spectral_every, "spectral_every", minimum=0))
        if self.delta is not None:
            _set(self, "delta", finite_float(self.delta, "delta", positive=True))
        _choice(self.method, "method", ("auto", "split", "direct"))
        _set(self, "balance", finite_float(self.balance, "balance"))
        _choice(self.update, "update", UPDATES)
        if self.precondition is not None:
            _set(self, "precondition", finite_float(self.precondition, "precondition"))
        _set(self, "noise", finite_float(self.noise, "noise"))

    @property
    def plain(self) -> bool:
        """Is this plain constant-step GD (no variant), the algorithm the theorems are about?"""
        return (not _is_schedule(self.lr) and self.balance == 0 and self.update == "simultaneous"
                and self.precondition is None and self.noise == 0)  # fmt: skip

    def resolve(self, shape, sigma_1: float, s=None, U0=None) -> Options:
        """A copy with every default and "theory" value filled in (record_every and
        spectral_every stay None where they follow the step: `record_stride`), for a Sigma of this shape
        and largest singular value; `s` (its nonzero singular values) is None on the direct
        path, which never computes them; `U0`: the given start, if any (k then defaults to
        its width, and init_scale and seed are None; a "theory" lr takes the init_scale a
        random start would have)."""
        start = self._resolve_start(shape, s, sigma_1, U0)
        lr = self.lr
        if lr is None:  # ScaledGD's step is scale-free: its (G + lam I)^-1 carries the 1 / sigma
            lr = DEFAULTS.lr if self.precondition is not None else default_lr(sigma_1)
        elif _is_schedule(lr):
            pass
        elif lr == "theory":
            s = _needs_spectrum(s, "lr")
            lr = theory.step_size(s, start["init_scale"] or self._resolve_start(shape, s, sigma_1, None)["init_scale"])
        if not _is_schedule(lr):
            lr = finite_float(lr, "lr", positive=True)
        max_iter = DEFAULTS.max_iter if self.max_iter is None else self.max_iter
        spectral_every = 0 if s is None else self.spectral_every  # None: the engine's default
        delta = (self.tol if self.tol > 0 else None) if self.delta is None else self.delta
        return dataclasses.replace(
            self, **start, lr=lr, max_iter=max_iter, spectral_every=spectral_every, delta=delta
        )  # fmt: skip


@dataclass(frozen=True)
class FlowOptions(_Start):
    """What fixes a gradient-flow run besides Sigma and, when given, U0 and V0 (`fastmf.gradient_flow`).

    Attributes
    ----------
    k, init_scale, seed, complement
        As in `Options`.
    t_max : float
        Integrate over [0, t_max].
    target_loss : float
        Stop where the loss reaches this (or the converged level of `Options.tol`, if
        lower); 0: never.
    rtol, atol : float
        Tolerances of the ODE solver; atol default 1e-3 rtol times the largest entry of the
        start.
    ode_method : str
        The SciPy ODE solver, one of `ODE_METHODS`.
    n_times : int
        Evenly spaced recorded times in [0, t_max] when no t_eval is given.
    """

    t_max: float | None = setting("float>0", "integrate over [0, T_MAX] (required)")
    target_loss: float = setting("float>=0", "stop when the loss reaches this (0: never)", 0.0)
    rtol: float = setting("float>0", "relative tolerance of the ODE solver", 1e-10)
    atol: float | None = setting("float>0", "absolute tolerance (default: 1e-3 rtol times the start's size)")
    ode_method: str = setting("LSODA|DOP853|RK45|RK23|Radau|BDF", "SciPy ODE solver", "LSODA")
    n_times: int = setting("int>=2", "evenly spaced recorded times", 1001)

    def __post_init__(self):
        self._check_start()
        if self.t_max is None:
            raise ValueError("t_max is required: the end of the time interval, e.g. t_max=100")
        _set(self, "t_max", finite_float(self.t_max, "t_max", positive=True))
        _set(self, "target_loss", finite_float(self.target_loss, "target_loss"))
        _set(self, "rtol", finite_float(self.rtol, "rtol", positive=True))
        if self.atol is not None:
            _set(self, "atol", finite_float(self.atol, "atol", positive=True))
        _choice(self.ode_method, "ode_method", ODE_METHODS)
        _set(self, "n_times", positive_int(self.n_times, "n_times", minimum=2))

    def resolve(self, shape, sigma_1: float, s, U0=None) -> FlowOptions:
        """A copy with k, init_scale and seed filled in (`Options.resolve`)."""
        return dataclasses.replace(self, **self._resolve_start(shape, s, sigma_1, U0))


# Near the minimum the flow is stiff (decay rates up to 2 sigma_1, zero modes along the balanced
# minima): an explicit Runge-Kutta method then runs at its stability limit and its error control
# leaves the loss hovering near (rtol sigma_1)^2, while LSODA switches to BDF and keeps it
# decaying, in fewer right-hand sides. So LSODA is the default.
ODE_METHODS = ("LSODA", "DOP853", "RK45", "RK23", "Radau", "BDF")
INITS = ("gaussian", "balanced", "symmetric")
UPDATES = ("simultaneous", "alternating")


def merged(kind, options, given: dict):
    """`options` (a `kind`: Options or FlowOptions; None for the defaults) with the arguments
    `given` that are not None replacing its fields: how every entry point builds its settings."""
    given = {name: value for name, value in given.items() if value is not None}
    if options is None:
        return kind(**given)
    if not isinstance(options, kind):
        raise TypeError(f"options must be a fastmf.{kind.__name__}, got {type(options).__name__}")
    return dataclasses.replace(options, **given)


def _check_seed(seed) -> None:
    """A seed is None, an integer >= 0, a non-empty sequence of them, or a SeedSequence."""
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return
    values = seed if isinstance(seed, (list, tuple, np.ndarray)) else [seed]
    ok = len(values) > 0 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v >= 0 for v in np.ravel(values)
    )
    if not ok:
        raise TypeError(
            "seed must be None, an integer >= 0, a sequence of them or a numpy.random.SeedSequence (so that each "
            f"stream can be re-derived), got {seed!r}; e.g. seed=rng.integers(2**63) for a Generator rng"
        )


def _set(obj, name, value) -> None:
    object.__setattr__(obj, name, value)  # the frozen dataclass's own checked value


def _is_schedule(value) -> bool:
    """A step-size schedule: a callable (`fastmf.schedules`)."""
    return callable(value)


def _number_or_theory(value, name):
    if value is None or value == "theory":
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} must be a positive number, None or 'theory', got {value!r}")
    return finite_float(value, name, positive=True)


def _choice(value, name, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _needs_spectrum(s, name):
    if s is None:
        raise ValueError(
            f"{name}='theory' needs the singular values of Sigma, which the direct path never computes: "
            "use method='split', or give a number"
        )
    return s
