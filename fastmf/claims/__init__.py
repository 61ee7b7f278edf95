"""Every claim of the papers fastmf follows, reproduced by one command each.

`reproduce(name)` (``fastmf reproduce NAME``) runs the experiment behind one claim, writes
its table (``NAME.csv``) and figure (``NAME.png``, with matplotlib), and returns a
`Verdict`: what was measured, next to what the paper states, and whether the two agree.
`claims()` lists them. Each claim runs at two sizes: the default (minutes at most on 2
cores, the size of the gallery's figures) and ``quick=True`` (seconds, the size the test
suite checks). Every run is seeded, so a claim gives the same numbers each time.

The claims live in the modules of this package, one per theme, each registered with
`claim`; docs/gallery.md shows every figure with what it measures.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# the modules that define claims, in the order `claims()` lists them
_MODULES = ("flow", "stages", "beyond", "whp")


@dataclass(frozen=True)
class Outcome:
    """What one run of a claim's experiment found.

    Attributes
    ----------
    table : dict of str to 1-D arrays
        The measurements, as columns of equal length (written as NAME.csv).
    measured : str
        The measured value(s) in one phrase, e.g. "T1 < T0 < T_delta in 100 of 100 runs".
    holds : bool
        Whether the measurement agrees with the paper's statement.
    values : dict of str to float
        The numbers the verdict rests on, by name (for tests and scripts).
    draw : callable or None
        ``draw(fig)`` draws the figure on an empty matplotlib Figure.
    """

    table: dict
    measured: str
    holds: bool
    values: dict = field(default_factory=dict)
    draw: Callable | None = None


@dataclass(frozen=True)
class Claim:
    """One statement of a paper and the experiment that checks it.

    Attributes
    ----------
    name : str
        The command's name, e.g. "stage-order".
    source : str
        Where it is stated, e.g. "Ye and Du 2021, Theorem 3.1".
    statement : str
        What the paper states, in one sentence.
    run : callable
        ``run(quick: bool) -> Outcome``.
    """

    name: str
    source: str
    statement: str
    run: Callable = field(repr=False)


@dataclass(frozen=True)
class Verdict:
    """The outcome of `reproduce`: the claim, what was measured, and the files written."""

    claim: Claim
    outcome: Outcome
    csv: str
    png: str | None
    seconds: float

    @property
    def holds(self) -> bool:
        return self.outcome.holds

    @property
    def values(self) -> dict:
        return self.outcome.values

    @property
    def line(self) -> str:
        """The verdict in one line: the claim, agrees or differs, measured against stated."""
        word = "agrees" if self.holds else "DIFFERS"
        found = self.claim
        return f"{found.name}: {word}: measured {self.outcome.measured}; {found.source}: {found.statement}"

    def __str__(self) -> str:
        return self.line


_REGISTRY: dict[str, Claim] = {}


def claim(name: str, source: str, statement: str):
    """Register ``run(quick) -> Outcome`` as the experiment of a claim (a decorator)."""

    def register(run):
        if name in _REGISTRY:
            raise RuntimeError(f"claim {name!r} is defined twice")
        _REGISTRY[name] = Claim(name, source, statement, run)
        return run

    return register


def claims() -> list[Claim]:
    """Every claim, in the gallery's order."""
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return list(_REGISTRY.values())


def reproduce(name: str, *, quick: bool = False, output: str | os.PathLike = ".", figure: bool = True) -> Verdict:
    """Run the experiment of claim `name`; write NAME.csv (and NAME.png) in `output`.

    Parameters
    ----------
    name : str
        A claim's name (`claims()`; ``fastmf reproduce --list``).
    quick : bool
        Run at a size that takes seconds (the default size takes minutes at most on 2 cores).
    output : path
        The folder for the table and the figure (made if missing).
    figure : bool
        Draw the figure (needs matplotlib, the ``plot`` extra; without it none is drawn, and
        a NAME.png left by an earlier call is removed, so that it cannot pass for this one's).

    Returns
    -------
    Verdict
        ``verdict.line`` says what was measured against what the paper states.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (or SIGTERM) during the experiment: nothing is written, since runs cut
        short would give a verdict on other numbers than the claim's.
    """
    known = {c.name: c for c in claims()}
    if name not in known:
        raise ValueError(f"no claim named {name!r}; the claims are: {', '.join(known)} (fastmf reproduce --list)")
    found = known[name]
    folder = os.fspath(output)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"output must be a folder, and {folder!r} is a file: give another folder")
    csv_path, png = (os.path.join(folder, f"{name}.{ext}") for ext in ("csv", "png"))
    for path in (csv_path, png):
        if os.path.isdir(path):
            raise ValueError(f"{path!r} is a folder, where reproduce writes a file: remove it or give another output")
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    with _stopping_on_signals():
        outcome = found.run(quick)
    seconds = time.perf_counter() - started
    write_csv(csv_path, outcome.table)
    if figure and outcome.draw is not None and _have_matplotlib():
        _draw(outcome.draw, png)
    else:
        if os.path.exists(png):
            os.remove(png)
        png = None
    return Verdict(found, outcome, csv_path, png, seconds)


class _Stop(BaseException):
    """Ctrl-C or SIGTERM during a claim's experiment. Not a KeyboardInterrupt, which a run
    catches to return what it has: a claim must stop, not go on with runs cut short."""


@contextlib.contextmanager
def _stopping_on_signals():
    """Turn SIGINT and SIGTERM into `_Stop` while the block runs (main thread only; elsewhere
    signals are not delivered to Python code), and `_Stop` into KeyboardInterrupt after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stop as exc:
        raise KeyboardInterrupt(f"the claim's experiment was stopped by signal {exc.args[0]}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def write_csv(path, table: dict) -> None:
    """Write 1-D columns of equal length as a CSV file with a header row."""
    columns = {key: np.asarray(value) for key, value in table.items()}
    flat = [key for key, value in columns.items() if value.ndim != 1]
    if flat:
        raise ValueError(f"the table's columns must be 1-D; not so: {', '.join(flat)}")
    lengths = {value.size for value in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"the table's columns differ in length: { ({k: v.size for k, v in columns.items()}) }")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow([_text(x) for x in row])


def first_below(steps, losses, levels) -> np.ndarray:
    """For each run (a row of `losses`, NaN past its end) the first recorded step with loss <= each
    level: runs x levels, NaN where never (`steps`: the recorded steps, `BatchResult.steps`)."""
    below = np.asarray(losses)[:, :, None] <= np.asarray(levels)[None, None, :]
    return np.where(below.any(axis=1), np.asarray(steps)[np.argmax(below, axis=1)], np.nan)


def loglog_slope(x, y) -> float:
    """The least-squares slope of ln y against ln x: the exponent of a power law y ~ x^p."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _text(x) -> str:
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return str(x)


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _draw(draw, path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no window, whatever the backend

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    draw(fig)
    fig.savefig(path, dpi=110)
