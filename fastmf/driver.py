"""The one driver of every engine: chunks, progress, callbacks, time limits, Ctrl-C, checkpoints.

An engine (the split and direct GD runs, a batch of runs, the gradient flow) keeps
everything it carries from step to step in its own arrays and offers these operations:

    work            units of work done (GD steps; ODE solver steps for the flow)
    position        where the run is, for progress and callbacks (a step or a time)
    done            no work is left (the end, or the kernel stopped it)
    advance(n)      do at most n units of work (Ctrl-C is held until it returns)
    latest()        the last recorded diagnostics, {"loss": ...} in the user's units
    stage_positions()  (T1, T0) found so far, or None
    finish(status)  record the final state; the final status (the kernel's, if it stopped)
    result(status)  the result object for the run as it stands (it has `save`)

`drive` advances it in chunks of about 0.05 s; between chunks it writes checkpoints,
shows progress, calls the callback, checks the time limit and notices Ctrl-C. An
interrupt, a stop or an exception loses nothing: the result (or, for an exception, the
checkpoint) holds the state reached, and `fastmf.resume` continues it bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass

from ._validate import positive_int
from .monitor import Monitor
from .options import setting

# A chunk of work should take about this long: short enough to answer Ctrl-C promptly,
# long enough that the ~10 us of Python per chunk is noise.
_CHUNK_SECONDS = 0.05
_FIRST_CHUNK = 1  # then at most 4 times the last chunk: a costly step is never run 64 times blind


@dataclass(frozen=True)
class Control:
    """How a run is watched and saved; nothing here changes its numbers.

    Attributes
    ----------
    callback : callable or None
        ``callback(state: fastmf.RunState) -> bool``, between chunks; True stops the run.
    progress : bool or None
        A tqdm bar: True, False, or None (on a terminal, for runs longer than a second).
    time_limit : float or None
        Stop after this many wall-clock seconds (status "time_limit").
    checkpoint : str or None
        Save the run to this .npz file every `checkpoint_every` units of work and when it
        ends, however it ends.
    checkpoint_every : int or None
        Units of work (GD steps, ODE solver steps) between checkpoints; None: at the end only.
    """

    callback: object = None
    progress: bool | None = setting("bool", "progress bar (default: on a terminal, for runs longer than a second)")
    time_limit: float | None = setting(
        "float>0", "stop after this many seconds (exit code 3; --resume continues the run)"
    )
    checkpoint: str | None = setting("file", "save the run to FILE as it goes and when it ends, however it ends")
    checkpoint_every: int | None = setting(
        "int>=1", "GD or ODE solver steps between checkpoints (default: at the end only)"
    )

    def __post_init__(self):
        if self.checkpoint is None:
            if self.checkpoint_every is not None:
                raise ValueError("checkpoint_every needs a checkpoint file: pass checkpoint='run.npz'")
            return
        if not isinstance(self.checkpoint, (str, os.PathLike)):
            raise TypeError(
                f"checkpoint must be a file path (str or os.PathLike), got {type(self.checkpoint).__name__}"
            )
        path = os.fspath(self.checkpoint)
        folder = os.path.dirname(os.path.abspath(path))
        if not path or os.path.isdir(path):
            raise ValueError(f"checkpoint must name a file, got {path!r}; e.g. checkpoint='run.npz'")
        if not os.path.isdir(folder):
            raise ValueError(f"checkpoint: the folder {folder} does not exist; create it or choose another path")
        object.__setattr__(self, "checkpoint", path)
        if self.checkpoint_every is not None:
            object.__setattr__(self, "checkpoint_every", positive_int(self.checkpoint_every, "checkpoint_every"))

    def monitor(self, total: float, unit: str) -> Monitor:
        return Monitor(self.progress, self.callback, self.time_limit, total, unit)


@contextlib.contextmanager
def deferred_interrupts(deliver: bool = True):
    """Hold Ctrl-C (and SIGTERM, where its handler is Python's, as under the CLI) until the
    block ends, then deliver it: a KeyboardInterrupt never lands halfway through an engine's
    bookkeeping. Yields the list of the signals held, so that a block that can stop early
    does (the flow, between two steps of its ODE solver); with `deliver` False they are
    dropped. Signals reach only the main thread: elsewhere this holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received, previous = [], {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, lambda number, frame: received.append((number, frame)))
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number, frame in received[: 1 if deliver else 0]:
            previous[number](number, frame)


def drive(engine, control: Control, total: float, unit: str):
    """Run `engine` to its end under `control` and return its result (see the module docstring).

    total, unit: the length of the run and what counts it ("step" or "t"), for the progress bar.
    """
    monitor = control.monitor(total, unit)
    try:
        status = _loop(engine, control, monitor)
    except Exception:  # a callback, the kernel, the disk: save what the run has, then let it propagate
        if control.checkpoint is not None:
            with contextlib.suppress(Exception):
                _save(engine.result("running"), control)
        raise
    finally:
        monitor.close()
    with deferred_interrupts(deliver=False):  # the run has ended: a second Ctrl-C must not lose it
        result = engine.result(engine.finish(status))
        result.checkpoint_every = control.checkpoint_every
        if control.checkpoint is not None:
            _save(result, control)
    return result


def _save(result, control: Control) -> None:
    result.checkpoint_every = control.checkpoint_every  # so that resume goes on alike
    result.save(control.checkpoint)


def _loop(engine, control: Control, monitor: Monitor) -> str:
    """Advance chunk by chunk; returns "done", "stopped", "time_limit" or "interrupted"."""
    every = control.checkpoint_every
    chunk = _FIRST_CHUNK
    try:
        while not engine.done:
            n = chunk if every is None else min(chunk, every - engine.work % every)
            start, before = time.perf_counter(), engine.work
            with deferred_interrupts():  # the compiled call cannot be interrupted anyway
                engine.advance(n)
            elapsed, ran = time.perf_counter() - start, max(engine.work - before, 1)
            # the steps that take _CHUNK_SECONDS at the pace just seen, at most 4 times the last chunk
            chunk = int(min(ran * _CHUNK_SECONDS / max(elapsed, 1e-6), 4 * chunk, 2**40)) or 1
            if every is not None and engine.work % every == 0 and not engine.done:
                _save(engine.result("running"), control)
            stop = monitor.update(engine.position, engine.latest(), *engine.stage_positions())
            if stop is not None:
                return "done" if engine.done else stop  # a stop asked once the work is done is its end
    except KeyboardInterrupt:
        return "interrupted"
    return "done"
