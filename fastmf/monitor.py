"""What happens between chunks of a run: the progress bar, the user's callback, the time limit.

`fastmf.driver` runs every engine in chunks of about 0.05 s; after each, `Monitor.update`
shows progress, calls the callback and checks the wall clock. None of this touches the
numbers of the run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from . import stages
from ._validate import finite_float

# A progress bar appears only for runs that last longer than this (seconds).
_PROGRESS_AFTER = 1.0


@dataclass(frozen=True)
class RunState:
    """What a callback sees after each chunk of a run.

    Attributes
    ----------
    step : int or None
        The GD step t of the current state (None for gradient flow).
    t : float or None
        The time of the current state (gradient flow; None for GD).
    elapsed : float
        Wall-clock seconds since the run started.
    diagnostics : dict of float
        The latest recorded row of the history (its "step" or "t" may lag behind `step`/`t`
        by up to the recording stride), e.g. ``state.diagnostics["loss"]``.
    stage : str
        "warm-up", "alignment" or "linear" (`fastmf.stages.name`), from the stage times found so far.
    T1, T0 : float or None
        The stage boundaries found so far.
    """

    step: int | None
    t: float | None
    elapsed: float
    diagnostics: dict
    stage: str
    T1: float | None
    T0: float | None

    @property
    def loss(self) -> float:
        """The latest recorded loss."""
        return self.diagnostics.get("loss", float("nan"))


class Monitor:
    """Progress bar, callback and time limit for one run; `update` after every chunk.

    Parameters
    ----------
    progress : bool or None
        True: always show a tqdm bar; False: never; None: show one on stderr once the run
        has taken a second, if stderr is a terminal and tqdm is installed.
    callback : callable or None
        ``callback(state: RunState) -> bool``; a true return value stops the run.
    time_limit : float or None
        Stop once this many wall-clock seconds have passed.
    total : float
        The step count or final time the run aims at (the bar's length).
    unit : {"step", "t", "run"}
        What `total` counts ("run": runs of a sweep, with an empty `row`).
    """

    def __init__(self, progress, callback, time_limit, total: float, unit: str):
        if progress not in (None, True, False):
            raise TypeError(f"progress must be True, False or None (automatic), got {progress!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(state) -> bool, got {type(callback).__name__}")
        self.time_limit = None if time_limit is None else finite_float(time_limit, "time_limit", positive=True)
        if progress:
            _tqdm()  # fail now, with the fix, rather than a second into the run
        self.progress, self.callback, self.total, self.unit = progress, callback, total, unit
        self.bar = None
        self.start = time.perf_counter()

    def update(self, position: float, row: dict, T1, T0) -> str | None:
        """Report the run at `position` (step or time); return "stopped" (the callback asked),
        "time_limit" or None (go on)."""
        elapsed = time.perf_counter() - self.start
        where = stages.name(position, T1, T0)
        if self.bar is None and self._wants_bar(elapsed):
            self.bar = _tqdm()(total=self.total, unit=self.unit, desc="fastmf", dynamic_ncols=True, leave=True)
        if self.bar is not None:
            self.bar.update(position - self.bar.n)
            if row:
                self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.3e}", stage=where, refresh=False)
        if self.callback is not None:
            state = RunState(
                step=int(position) if self.unit == "step" else None,
                t=float(position) if self.unit == "t" else None,
                elapsed=elapsed, diagnostics=row, stage=where, T1=T1, T0=T0,
            )  # fmt: skip
            if self.callback(state):
                return "stopped"
        if self.time_limit is not None and elapsed >= self.time_limit:
            return "time_limit"
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _wants_bar(self, elapsed: float) -> bool:
        if self.progress is None:
            return elapsed >= _PROGRESS_AFTER and sys.stderr.isatty() and _has_tqdm()
        return self.progress


def _has_tqdm() -> bool:
    try:
        _tqdm()
    except ImportError:
        return False
    return True


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True needs tqdm: pip install tqdm (or the fastmf-gd[cli] extra), or pass progress=None"
        ) from None
    return tqdm
