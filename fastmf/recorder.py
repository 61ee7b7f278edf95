"""The part every single-run GD engine shares: the history and bookkeeping of a compiled loop
advanced in chunks (`fastmf.split.SplitRun`, `fastmf.direct.DirectRun`), the engine
operations `fastmf.driver` calls on it, and what each chunk of a GD variant needs: its step
sizes (a schedule is evaluated chunk by chunk) and its noise (drawn chunk by chunk, in step
order, so that a run's numbers do not depend on how it was cut into chunks).
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from . import _kernels as K
from . import options, schedules
from ._kernels.fpmode import flushing
from ._kernels.layout import ALTERNATING, BALANCE, N_VARIANT, PRECONDITION
from .noise import NoiseStream
from .scaling import Scale
from .status import from_kernel

# History rows allocated up front; more as the run goes (Recorder._reserve).
_FIRST_RESERVE = 4096
# At most about this many noise numbers are drawn per chunk (perturbed GD), by every GD engine.
NOISE_PER_CHUNK = 2**22


class Recorder:
    """The history and bookkeeping of one GD run's compiled loop.

    Subclasses hold the state, call `variants` once it is built, and implement
    ``_call(t_stop, t_final)``, which runs their kernel with the conventions of
    `blocks.run_blocks` (the state at step t is recorded when t % record_every == 0 and
    t < t_stop, or t == t_final) with `lrs`, `variant` and `noise`, ``keys`` (the
    history's columns, the first ones of `fastmf._kernels.layout.KEYS`: a record row holds
    only those; set before ``__init__``) and ``result(status)``.
    """

    keys: tuple = ()

    def __init__(self, max_iter: int, record_every: int | None, scale: Scale):
        self.max_iter = max_iter
        self.auto = record_every is None  # the stride follows the step (`options.record_stride`)
        self.record_every = options.record_stride(0) if self.auto else record_every
        self.scale = scale
        self.info = np.zeros(K.N_INFO, np.int64)
        self.info[K.T1] = self.info[K.T0] = -1
        self.steps = np.zeros(0, np.int64)
        self.rec = np.zeros((0, len(self.keys)))
        self.lr_rec = np.zeros(0)  # a schedule's step size at each recorded step, in the user's units
        self.final_bookkeeping = None  # the bookkeeping before the final record, once finished
        self._reserve(min(max_iter, _FIRST_RESERVE))

    def variants(self, opts, sigma_1: float, dtype, sides) -> None:
        """Set up the GD variant of the resolved `opts` for a state of `dtype` (sigma_1 in
        internal units, for `internal_lr`): `lrs` (a schedule's are set chunk by chunk),
        `variant` (the kernels' float64 slots, in internal units; None for plain GD's update)
        and the noise stream with `sides`, the (rows, k, rest) of each side's draws
        (`fastmf.noise.NoiseStream.draw`); `noise` is set chunk by chunk (None without noise)."""
        self.dtype = dtype
        self.schedule = opts.lr if callable(opts.lr) else None
        self.lr_power = lr_power(opts)
        if self.schedule is None:
            size = 1.0 if opts.precondition is not None else sigma_1
            self.lrs = np.array([internal_lr(self.scale, opts.lr, size, dtype, self.lr_power)], dtype)
        self.balance = opts.balance
        self.variant = None if plain_update(opts) else variant_array(opts, self.scale)  # None: plain code only
        self.stream = NoiseStream(opts.seed) if opts.noise > 0 else None
        self.nu, self.sides = self.scale.inward(opts.noise, 0.5), sides
        self.noise = None
        self.noise_steps = noise_steps(sides)

    def noise_arrays(self, draws) -> tuple:
        """The kernel's noise (ZX, BX, ZY, BY) from `NoiseStream.draw`'s, in the state's dtype."""
        return tuple(np.ascontiguousarray(a, self.dtype) for Z, B in draws for a in (Z, B))

    # ------------------------------------------------------------------ the engine operations

    @property
    def step(self) -> int:
        return int(self.info[K.STEP])

    work = position = step

    @property
    def running(self) -> bool:
        return self.info[K.STATUS] == K.RUNNING

    @property
    def done(self) -> bool:
        return not self.running or self.step >= self.max_iter

    def advance(self, n: int) -> None:
        """Run at most n steps (or to a stop), recording on the stride; the state reached is
        left unrecorded, so the next call starts exactly where an unbroken loop would be.
        With the default stride, a call ends where the stride doubles (`options.record_stride`)."""
        if self.stream is not None:
            n = min(n, self.noise_steps)
        t_stop = min(self.step + n, self.max_iter)
        if self.auto:
            t_stop = min(t_stop, options.DEFAULTS.max_records * self.record_every)
        self._reserve(t_stop - self.step)
        self._run(t_stop, -1)
        if self.auto and options.record_stride(self.step) != self.record_every:
            self._thin(options.record_stride(self.step))

    def _run(self, t_stop: int, t_final: int) -> None:
        """One kernel call from the current step to t_stop, with the step sizes and the noise
        of those steps (a schedule's values are recorded beside the records)."""
        t0, j0 = self.step, self.n_records
        if self.schedule is not None:
            user, self.lrs = scheduled(self.schedule, t0, t_stop, self.scale, self.lr_power, self.dtype)
        if self.stream is not None:
            self.noise = self.noise_arrays(self.stream.draw(t_stop - t0, self.nu, self.sides))
        with flushing():
            self._call(t_stop, t_final)
        if self.schedule is not None:
            j1 = self.n_records
            self.lr_rec[j0:j1] = user[self.steps[j0:j1] - t0]

    def _thin(self, stride: int) -> None:
        """Keep the records on the new, doubled stride (their steps are its multiples)."""
        j = self.n_records
        kept = np.flatnonzero(self.steps[:j] % stride == 0)
        self.steps[: kept.size] = self.steps[kept]
        self.rec[: kept.size] = self.rec[kept]
        self.lr_rec[: kept.size] = self.lr_rec[kept]
        self.info[K.N_RECORDS] = kept.size
        self.record_every = stride

    def stage_positions(self) -> tuple[int | None, int | None]:
        """(T1, T0) found so far."""
        return tuple(int(self.info[i]) if self.info[i] >= 0 else None for i in (K.T1, K.T0))

    def latest(self) -> dict:
        """The last recorded row, as {"step": t, key: value}, in the user's units."""
        j = self.n_records - 1
        if j < 0:
            return {}
        row = dict(zip(self.keys, self.rec[j].tolist(), strict=True))
        return self.scale.history_outward({"step": int(self.steps[j])} | row)

    def finish(self, status: str) -> str:
        """Record the current state if it is not recorded yet (after a divergence, the last
        finite state, which is the one returned: its loss, but no stage, since a state about
        to overflow makes the stage tests meaningless); return the final status."""
        self.final_bookkeeping = self.bookkeeping()
        j = self.n_records
        if not (j and self.steps[j - 1] == self.step):
            diverged = self.info[K.STATUS] == K.DIVERGED
            kept = self.info.copy()
            if diverged:
                self.info[K.STATUS] = K.RUNNING
            self._reserve(0)
            self._run(self.step, self.step)
            if diverged:
                self.info[[K.STATUS, K.T1, K.T0]] = kept[[K.STATUS, K.T1, K.T0]]
        return from_kernel(self.info[K.STATUS], "max_iter" if status == "done" else status)

    # ------------------------------------------------------------------ history

    @property
    def n_records(self) -> int:
        return int(self.info[K.N_RECORDS])

    def history(self) -> dict:
        """The recorded columns, in the user's units; with a schedule also "lr" (the step
        size at each recorded step), with the balancing regularizer also "regularizer"
        ((balance / 8) imbalance^2; the loss stays the plain loss)."""
        j = self.n_records
        history = {"step": self.steps[:j].copy()} | {key: self.rec[:j, c].copy() for c, key in enumerate(self.keys)}
        history = self.scale.history_outward(history)
        if self.schedule is not None:
            history["lr"] = self.lr_rec[:j].copy()
        if self.balance > 0:
            history["regularizer"] = self.balance / 8 * history["imbalance"] ** 2
        return history

    def bookkeeping(self) -> dict:
        """What `restore` needs beyond the state and the history (copies): the kernel's info,
        the losses in internal units and, with noise, the stream's state (a JSON string)."""
        kept = {"info": self.info.copy(), "loss": self.internal_loss()}
        if self.stream is not None:
            kept["noise"] = np.array(json.dumps(self.stream.state()))
        return kept

    def restore(self, history: dict, bookkeeping: dict) -> None:
        """Continue a run saved as (history, bookkeeping): the inverse of `history` + `bookkeeping`."""
        self.info[:] = bookkeeping["info"]
        if self.stream is not None:
            self.stream.set_state(json.loads(str(bookkeeping["noise"])))
        self.restore_history(history, bookkeeping.get("loss"))

    def internal_loss(self) -> np.ndarray:
        """The recorded losses in the run's internal units (`fastmf.scaling`)."""
        return self.rec[: self.n_records, 0].copy()

    def restore_history(self, history: dict, loss: np.ndarray | None) -> None:
        """Put back the records of a saved run (`info` restored first); `loss`: the losses in
        internal units, exact where the user's units over- or underflow."""
        j = self.n_records
        if self.auto:
            self.record_every = options.record_stride(self.step)
        self._reserve(0)
        history = self.scale.history_inward(history)
        self.steps[:j] = history["step"][:j]
        for c, key in enumerate(self.keys):
            if key in history:
                self.rec[:j, c] = history[key][:j]
        if loss is not None:
            self.rec[:j, 0] = loss[:j]
        if "lr" in history:
            self.lr_rec[:j] = history["lr"][:j]

    def _reserve(self, n_steps: int) -> None:
        """Room in the history for n_steps more steps and a final record (grown by doubling,
        so a long max_iter costs memory only as the run gets there)."""
        need = self.n_records + n_steps // self.record_every + 2
        have = min(self.steps.size, self.rec.shape[0], self.lr_rec.size)  # an interrupt may land between them
        if need > have:
            size = max(need, 2 * have)
            steps = np.zeros(size, np.int64)
            rec = np.full((size, len(self.keys)), np.nan)
            lr_rec = np.full(size, np.nan)
            steps[:have] = self.steps[:have]
            rec[:have] = self.rec[:have]
            lr_rec[:have] = self.lr_rec[:have]
            self.steps, self.rec, self.lr_rec = steps, rec, lr_rec


def lr_power(opts) -> int:
    """How lr scales with Sigma (as c^power, `fastmf.scaling`): -1, but 0 for ScaledGD, whose
    step is scale-free (its (G + lam I)^-1 carries the 1 / sigma)."""
    return 0 if opts.precondition is not None else -1


def plain_update(opts) -> bool:
    """Is the update of the resolved `opts` plain GD's (no balance, simultaneous, no
    preconditioner; the step sizes and the noise aside)?"""
    return opts.balance == 0 and opts.update == "simultaneous" and opts.precondition is None


def variant_array(opts, scale: Scale) -> np.ndarray:
    """The kernels' `variant` slots (`_kernels.layout`) of the resolved `opts`, in internal units."""
    variant = np.zeros(N_VARIANT)
    variant[BALANCE] = opts.balance
    variant[ALTERNATING] = opts.update == "alternating"
    variant[PRECONDITION] = -1.0 if opts.precondition is None else scale.inward(opts.precondition, 1)
    return variant


def scheduled(schedule, t0: int, t_stop: int, scale: Scale, power: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A schedule's step sizes at steps t0..t_stop (checked: `schedules.values`), in the
    user's units and in internal units (`internal_lr`)."""
    user = schedules.values(schedule, np.arange(t0, t_stop + 1))
    return user, internal_lr(scale, user, None, dtype, power)


def noise_steps(sides, runs: int = 1) -> int:
    """Steps per chunk of perturbed GD: the noise of `runs` runs with these sides ((rows, k,
    rest) of `NoiseStream.draw`) stays under about NOISE_PER_CHUNK numbers."""
    per_step = runs * sum((rows + min(rest or 0, k)) * k for rows, k, rest in sides)
    return max(1, NOISE_PER_CHUNK // max(per_step, 1))


def plain_variant(dtype, lr: float) -> tuple:
    """The kernels' (lrs, variant) of plain GD with the constant step lr (internal units)."""
    return np.full(1, lr, dtype), None


def internal_lr(scale: Scale, lr, sigma_1, dtype, power=-1):
    """lr (a number, or an array of a schedule's values; scaling as c^power) in a run's internal
    units and dtype; for a number, warns when it is too small to move the state in that
    precision (1 - lr sigma_1 rounds to 1: GD would not move)."""
    with np.errstate(over="ignore"):
        inner = np.asarray(scale.inward(np.asarray(lr, np.float64), power)).astype(dtype)
    if not np.all(np.isfinite(inner)):
        raise ValueError(f"lr = {np.max(lr):g} is beyond the range of {dtype.name} for this Sigma; use a smaller lr")
    if inner.ndim:
        return inner
    inner = inner[()]
    if dtype.type(1) - inner * dtype.type(sigma_1) == 1:
        warnings.warn(
            f"lr = {lr:g} is so small that 1 - lr sigma_1 rounds to 1 in {dtype.name}: GD will not move; "
            "use a larger lr" + (" or float64 data" if dtype == np.float32 else ""),
            RuntimeWarning,
            stacklevel=5,
        )
    return inner
