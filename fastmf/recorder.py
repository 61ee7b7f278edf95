"""The part every single-run GD engine shares: the history and bookkeeping of a compiled loop
advanced in chunks (`fastmf.split.SplitRun`, `fastmf.direct.DirectRun`), and the engine
operations `fastmf.driver` calls on it.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _kernels as K
from . import options
from ._kernels.fpmode import flushing
from .scaling import Scale
from .status import from_kernel

# History rows allocated up front; more as the run goes (Recorder._reserve).
_FIRST_RESERVE = 4096


class Recorder:
    """The history and bookkeeping of one GD run's compiled loop.

    Subclasses hold the state and implement ``_call(t_stop, t_final)``, which runs their
    kernel with the conventions of `blocks.run_blocks` (the state at step t is recorded when
    t % record_every == 0 and t < t_stop, or t == t_final), ``keys`` (the history's columns),
    ``bookkeeping()`` and ``result(status)``.
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
        self.rec = np.zeros((0, K.N_KEYS))
        self.final_bookkeeping = None  # the bookkeeping before the final record, once finished
        self._reserve(min(max_iter, _FIRST_RESERVE))

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
        t_stop = min(self.step + n, self.max_iter)
        if self.auto:
            t_stop = min(t_stop, options.DEFAULTS.max_records * self.record_every)
        self._reserve(t_stop - self.step)
        with flushing():
            self._call(t_stop, -1)
        if self.auto and options.record_stride(self.step) != self.record_every:
            self._thin(options.record_stride(self.step))

    def _thin(self, stride: int) -> None:
        """Keep the records on the new, doubled stride (their steps are its multiples)."""
        j = self.n_records
        kept = np.flatnonzero(self.steps[:j] % stride == 0)
        self.steps[: kept.size] = self.steps[kept]
        self.rec[: kept.size] = self.rec[kept]
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
        row = dict(zip(K.KEYS, self.rec[j].tolist(), strict=True))
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
            with flushing():
                self._call(self.step, self.step)
            if diverged:
                self.info[[K.STATUS, K.T1, K.T0]] = kept[[K.STATUS, K.T1, K.T0]]
        return from_kernel(self.info[K.STATUS], "max_iter" if status == "done" else status)

    # ------------------------------------------------------------------ history

    @property
    def n_records(self) -> int:
        return int(self.info[K.N_RECORDS])

    def history(self) -> dict:
        """The recorded columns, in the user's units."""
        j = self.n_records
        history = {"step": self.steps[:j].copy()} | {key: self.rec[:j, c].copy() for c, key in enumerate(self.keys)}
        return self.scale.history_outward(history)

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
        for c, key in enumerate(K.KEYS):
            if key in history:
                self.rec[:j, c] = history[key][:j]
        if loss is not None:
            self.rec[:j, 0] = loss[:j]

    def _reserve(self, n_steps: int) -> None:
        """Room in the history for n_steps more steps and a final record (grown by doubling,
        so a long max_iter costs memory only as the run gets there)."""
        need = self.n_records + n_steps // self.record_every + 2
        have = min(self.steps.size, self.rec.shape[0])  # an interrupt may land between the two
        if need > have:
            size = max(need, 2 * have)
            steps = np.zeros(size, np.int64)
            rec = np.full((size, K.N_KEYS), np.nan)
            steps[:have] = self.steps[:have]
            rec[:have] = self.rec[:have]
            self.steps, self.rec = steps, rec


def internal_lr(scale: Scale, lr: float, sigma_1, dtype):
    """lr in a run's internal units and dtype; warns when it is too small to move the state
    in that precision (1 - lr sigma_1 rounds to 1: GD would not move)."""
    with np.errstate(over="ignore"):
        inner = dtype.type(scale.inward(lr, -1))
    if not np.isfinite(inner):
        raise ValueError(f"lr = {lr:g} is beyond the range of {dtype.name} for this Sigma; use a smaller lr")
    if dtype.type(1) - inner * dtype.type(sigma_1) == 1:
        warnings.warn(
            f"lr = {lr:g} is so small that 1 - lr sigma_1 rounds to 1 in {dtype.name}: GD will not move; "
            "use a larger lr" + (" or float64 data" if dtype == np.float32 else ""),
            RuntimeWarning,
            stacklevel=5,
        )
    return inner
