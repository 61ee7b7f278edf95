"""Step-size schedules: lr as a function of the step, t -> eta_t.

GD with a schedule runs U+ = U + eta_t R V, V+ = V + eta_t R^T U at step t (the step from
the state at t to the one at t + 1). A schedule is evaluated on arrays of steps, one chunk
of the run at a time (never on max_iter values up front), so any callable that maps an
integer array t to an array of positive step sizes of the same shape serves; the classes
here are the ones the literature compares (Du, Hu and Lee 2018, cited by Ye and Du 2021
section 1.1, use decaying steps) and can be saved with a run and rebuilt from it
(`to_dict`, `from_dict`). A plain callable is saved as the values it gave at the recorded
steps; `fastmf.resume` then needs it again and checks it against them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._validate import finite_float, positive_int


class Schedule:
    """Base of the built-in schedules, each a frozen dataclass whose ``schedule(t)`` gives the
    step sizes at an integer array t >= 0; this class holds what they share: their description."""

    def to_dict(self) -> dict:
        """{"kind": name, parameter: value, ...}: what `from_dict` rebuilds it from."""
        return {"kind": _NAME[type(self)]} | dataclasses.asdict(self)

    def spec(self) -> str:
        """NAME:ARGS, every parameter in order, exactly: the text `parse` reads back
        (e.g. "inverse_sqrt:0.1,100")."""
        return f"{_NAME[type(self)]}:" + ",".join(repr(v).removesuffix(".0") for v in dataclasses.astuple(self))


@dataclass(frozen=True)
class Constant(Schedule):
    """eta_t = lr."""

    lr: float

    def __post_init__(self):
        object.__setattr__(self, "lr", finite_float(self.lr, "lr", positive=True))

    def __call__(self, t):
        return np.full(np.shape(t), self.lr)


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """eta_t = lr / sqrt(1 + t / t0)."""

    lr: float
    t0: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "lr", finite_float(self.lr, "lr", positive=True))
        object.__setattr__(self, "t0", finite_float(self.t0, "t0", positive=True))

    def __call__(self, t):
        return self.lr / np.sqrt(1.0 + np.asarray(t, dtype=np.float64) / self.t0)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """eta_t = lr * factor ** (t // every)."""

    lr: float
    factor: float = 0.5
    every: int = 1000

    def __post_init__(self):
        object.__setattr__(self, "lr", finite_float(self.lr, "lr", positive=True))
        object.__setattr__(self, "factor", finite_float(self.factor, "factor", positive=True))
        object.__setattr__(self, "every", positive_int(self.every, "every"))

    def __call__(self, t):
        return self.lr * self.factor ** (np.asarray(t, dtype=np.int64) // self.every).astype(np.float64)


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up: eta_t = lr * min(1, (t + 1) / steps)."""

    lr: float
    steps: int = 100

    def __post_init__(self):
        object.__setattr__(self, "lr", finite_float(self.lr, "lr", positive=True))
        object.__setattr__(self, "steps", positive_int(self.steps, "steps"))

    def __call__(self, t):
        return self.lr * np.minimum(1.0, (np.asarray(t, dtype=np.float64) + 1.0) / self.steps)


_NAME = {Constant: "constant", InverseSqrt: "inverse_sqrt", StepDecay: "step_decay", Warmup: "warmup"}
KINDS = {name: cls for cls, name in _NAME.items()}


def from_dict(spec: dict) -> Schedule:
    """The schedule `Schedule.to_dict` described."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; one of {', '.join(KINDS)}")
    return KINDS[kind](**spec)


def parse(spec) -> Schedule:
    """A schedule from the command line's form NAME:ARG,ARG,... (e.g. "inverse_sqrt:0.1,100"),
    the positional arguments of its class, or from a mapping as `Schedule.to_dict` writes it
    (a TOML table: kind = "inverse_sqrt", lr = 0.1, t0 = 100)."""
    if isinstance(spec, Mapping):
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown schedule kind {kind!r}; give kind = one of {', '.join(KINDS)}")
        fields = dataclasses.fields(KINDS[kind])
        names = [f.name for f in fields]
        required = [f.name for f in fields if f.default is dataclasses.MISSING]
        if not set(required) <= set(spec) <= {"kind", *names}:
            keys = ", ".join(k for k in spec if k != "kind") or "none"
            raise ValueError(f"a {kind} schedule takes {', '.join(names)} ({', '.join(required)} required), got {keys}")
        return from_dict(spec)
    name, _, args = spec.partition(":")
    if name not in KINDS:
        raise ValueError(f"unknown schedule {name!r}; write NAME:ARGS with NAME one of {', '.join(KINDS)}")
    try:
        values = [float(a) for a in args.split(",") if a.strip()]
    except ValueError:
        raise ValueError(f"schedule arguments must be numbers, got {args!r}") from None
    fields = dataclasses.fields(KINDS[name])
    if not values or len(values) > len(fields):
        raise ValueError(f"{name} takes 1 to {len(fields)} numbers ({', '.join(f.name for f in fields)}), got {args!r}")
    kwargs = {}
    for f, v in zip(fields, values, strict=False):
        if f.type == "int":
            if not v.is_integer():
                raise ValueError(f"{name}'s {f.name} must be an integer, got {v:g}")
            v = int(v)
        kwargs[f.name] = v
    return KINDS[name](**kwargs)


def values(schedule, t: np.ndarray) -> np.ndarray:
    """schedule(t) as float64, checked: the shape of t, finite and > 0, with a message
    naming the first bad step."""
    try:
        out = np.asarray(schedule(t))
    except Exception as exc:
        raise TypeError(
            f"the lr schedule failed on an array of steps ({type(exc).__name__}: {exc}); a schedule maps an "
            "integer array t to an array of step sizes, e.g. lambda t: 0.1 / np.sqrt(1 + t)"
        ) from exc
    if out.dtype.kind not in "iuf":
        raise TypeError(f"the lr schedule must return real numbers, got an array of dtype {out.dtype}")
    out = out.astype(np.float64)
    if out.shape != np.shape(t):
        if out.ndim == 0:
            out = np.full(np.shape(t), float(out))
        else:
            raise ValueError(
                f"the lr schedule must return one step size per step: shape {np.shape(t)}, got {out.shape}"
            )
    bad = ~(np.isfinite(out) & (out > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"the lr schedule gave {out[i]!r} at step {int(t[i])}: every step size must be finite and > 0")
    return out


@dataclass(frozen=True)
class Custom(Schedule):
    """A saved run's callable schedule, which a file cannot hold: `fastmf.resume` needs it again."""

    name: str

    def __call__(self, t):
        raise ValueError(
            f"this run used its own lr schedule ({self.name}), which a file cannot hold: pass it again, "
            "e.g. fastmf.resume(path, lr=my_schedule)"
        )


def to_json(lr):
    """lr as JSON: a number or None as it is, a built-in schedule as its `to_dict`, any other
    callable as {"kind": "custom", "name": its repr} (`Custom`)."""
    if isinstance(lr, Schedule) and not isinstance(lr, Custom):
        return lr.to_dict()
    if callable(lr):
        return {"kind": "custom", "name": lr.name if isinstance(lr, Custom) else repr(lr)}
    return lr


def from_json(saved):
    """The inverse of `to_json` (a custom schedule comes back as `Custom`)."""
    if isinstance(saved, dict):
        return Custom(saved["name"]) if saved.get("kind") == "custom" else from_dict(saved)
    return saved


def again(saved, lr, steps, taken):
    """The schedule a saved run goes on with (`fastmf.resume`): its own when the file holds
    it; for a `Custom` one, `lr` given again, checked against the step sizes `taken` at
    `steps` that the file recorded."""
    if not isinstance(saved, Custom):
        if lr is None or lr is saved:  # (a result in memory holds the callable itself)
            return saved
        raise ValueError(
            f"this run's lr ({to_json(saved)}) is saved in the file: drop lr (only a run with its own "
            "callable schedule needs it again)"
        )
    if lr is None:
        raise ValueError(
            f"this run used its own lr schedule ({saved.name}), which a file cannot hold: pass it again, "
            "fastmf.resume(path, lr=my_schedule)"
        )
    if not callable(lr):
        raise TypeError(f"lr must be the run's schedule (a callable t -> step size), got {type(lr).__name__}")
    steps = np.asarray(steps, np.int64)
    given = values(lr, steps)
    differ = ~np.isclose(given, taken, rtol=1e-12, atol=0)
    if differ.any():
        i = int(np.argmax(differ))
        raise ValueError(
            f"lr is not the schedule this run was saved with: it gives {given[i]:.17g} at step {steps[i]}, the saved "
            f"run took {taken[i]:.17g}; pass the run's own schedule"
        )
    return lr
