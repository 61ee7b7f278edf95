"""`sweep`: a grid of GD studies run on Dask, one table row per run.

A grid point is a spectrum problem, Sigma = diag(s) of size m x n with d singular values
from kappa sigma_d down to sigma_d, and the settings of its runs (k, init_scale, lr,
max_iter, tol, delta, record_every, spectral_every, the GD variants balance, update,
precondition, noise and the law of the start init: named, checked and defaulted as
`fastmf.options.Options` does for `solve`; lr may be a built-in schedule, held in the table
as its NAME:ARGS text in the schedule column, with lr NaN); each seed is one run. The runs of a point
are split into tasks of at most `batch` seeds, each one `solve_batch` call on a Dask
worker, and each finished task's rows are appended to the table at once
(`fastmf.table`): a sweep killed at any moment loses only the tasks in flight, a worker
that dies has its tasks run again elsewhere by Dask, and ``resume=True`` runs exactly
the runs that the table lacks.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import invariants, schedules
from ._validate import finite_float, positive_int
from .batch import solve_batch
from .monitor import Monitor
from .options import Options
from .problem import Problem
from .result import to_frame
from .status import success
from .table import open_table

# The grid's parameters: name -> (column type, default), the spectrum's (None: required, or for
# n, m) and then the settings of its runs, which `Options` checks and resolves; a setting that
# stays None (delta without tol: no T_delta; record_every: the doubling stride; spectral_every: the
# batch's default) is NaN in the table.
_SPECTRUM = {
    "m": ("int", None),
    "n": ("int", None),
    "d": ("int", None),
    "kappa": ("float", 1.0),
    "sigma_d": ("float", 1.0),
    "spacing": ("str", "linear"),
}
_SETTINGS = {"k": "int", "init_scale": "float", "lr": "float", "max_iter": "int", "tol": "float", "delta": "float",
             "record_every": "float", "spectral_every": "float", "balance": "float", "update": "str",
             "precondition": "float", "noise": "float", "init": "str"}  # fmt: skip
PARAMETERS = {name: kind for name, (kind, _) in _SPECTRUM.items()} | _SETTINGS
_RESULTS = {"sigma_1": "float", "n_iter": "int", "status": "str", "final_loss": "float", "T1": "float",
            "T0": "float", "T_delta": "float"}  # fmt: skip
# then the per-run extremes of what the proofs bound (`fastmf.invariants`), the held flags as bools
_RESULTS |= {name: "bool" if name in invariants.FLAGS else "float" for name in invariants.COLUMNS}
# The table: what fixes a run (the parameters, the schedule and the seed), then what it gave. An lr
# schedule's row has lr NaN and the schedule's NAME:ARGS text (`fastmf.schedules.Schedule.spec`),
# which `fastmf.schedules.parse` reads back; a constant lr's has schedule "".
COLUMNS = PARAMETERS | {"schedule": "str", "seed": "int"} | _RESULTS
_KEY = (*PARAMETERS, "schedule", "seed")

_ONE_KERNEL = threading.Lock()  # one batch at a time per worker: each already uses the worker's threads


@dataclass(frozen=True)
class SweepResult:
    """What `sweep` did.

    Attributes
    ----------
    output : str
        The table (``pandas.read_parquet(output)`` or ``pandas.read_csv(output)``).
    status : str
        "done" (every run of the grid is in the table), "interrupted" (Ctrl-C) or
        "failed" (some tasks raised; the other runs are in the table).
    message : str
        The status in a sentence, with what to do next.
    runs, ran, skipped, failed : int
        Runs in the grid; written by this call; already in the table; in tasks that raised.
    """

    output: str
    status: str
    message: str
    runs: int
    ran: int
    skipped: int
    failed: int

    def table(self) -> dict[str, np.ndarray]:
        """The whole table (every run written so far, this call's and earlier ones), as columns."""
        return open_table(self.output, COLUMNS, resume=True).read()

    @property
    def success(self) -> bool:
        """Whether every run of the grid is in the table (status "done")."""
        return success(self.status)

    def to_frame(self):
        """`table` as a pandas DataFrame (pandas is an optional extra)."""
        return to_frame(self.table())


def sweep(grid, output, *, resume: bool = False, client=None, workers: int | None = None, batch: int = 64,
          progress: bool | None = None) -> SweepResult:  # fmt: skip
    """Run every point and seed of `grid` on Dask and write one table row per run.

    Run (point, seed) is ``fastmf.solve_batch(Problem.from_spectrum(s, m, n), k, lr,
    max_iter, seeds=[seed], init_scale=init_scale, tol=tol, record_every=record_every,
    spectral_every=spectral_every, delta=delta, balance=balance, update=update,
    precondition=precondition, noise=noise, init=init)``, with s the d values from kappa
    sigma_d down to sigma_d; its row holds the parameters (resolved by `Options.resolve`:
    defaults and "theory" filled in), the schedule, the seed, sigma_1 and the run's n_iter,
    status, final_loss, T1, T0 and T_delta (NaN if not reached), then its per-run extremes
    and held flags (`fastmf.invariants.COLUMNS`, as `fastmf.BatchResult.invariants`). The
    numbers do not depend on the batch, the workers or the order in which runs finish.

    Parameters
    ----------
    grid : dict or list of dict
        Parameter name -> one value or a list of values; every combination is a point (a
        list of dicts: the union of their grids, as scikit-learn's ParameterGrid).
        Required: m, d and seeds (a count, for seeds 0, 1, ..., or a list of integers).
        Optional: n (default m), kappa (sigma_1 / sigma_d, default 1), sigma_d (default
        1), spacing ("linear" or "geometric"), and the settings k, init_scale, lr, max_iter,
        tol, delta, record_every, spectral_every, balance, update, precondition, noise and
        init, as `fastmf.solve_batch` takes them (the same defaults, NaN in the table where a
        default follows the step; init_scale and lr may be "theory"). lr
        may also be a schedule: a built-in one (`fastmf.schedules`), its NAME:ARGS text
        ("inverse_sqrt:0.1,100") or its ``to_dict`` mapping; its rows then have lr NaN and
        the NAME:ARGS text in the schedule column ("" for a constant lr). A plain callable
        is refused: a table cannot hold it.
    output : str or os.PathLike
        The table: ``*.parquet`` (a folder of Parquet files; needs pyarrow) or ``*.csv``.
        Rows are appended as tasks finish.
    resume : bool
        Continue the sweep that wrote `output`: run only the (point, seed) pairs it lacks.
        Without it an existing `output` is an error.
    client : distributed.Client, str or None
        Where to run: a Client, a scheduler address ("tcp://host:8786"), or None for a
        LocalCluster of `workers` processes with one thread each, started and closed here.
    workers : int, optional
        Processes of the LocalCluster (default: the cores this process may use).
    batch : int
        Runs per task at most: one task is one `solve_batch` call, so larger batches run
        faster and a killed sweep loses more.
    progress : bool or None
        A tqdm bar over runs (None: when stderr is a terminal and the sweep takes > 1 s).

    Returns
    -------
    SweepResult
        With `status` and `message`; on a failure a RuntimeWarning repeats the message.
    """
    points = grid_points(grid)
    batch = positive_int(batch, "batch")
    if workers is not None and client is not None:
        raise ValueError("workers sets the size of the LocalCluster; with a client, its cluster's workers are used")
    workers = None if workers is None else positive_int(workers, "workers")
    distributed = _distributed()
    if client is not None and not isinstance(client, (str, distributed.Client)):
        raise TypeError(f"client must be a distributed.Client, an address or None, got {type(client).__name__}")
    table = open_table(output, COLUMNS, resume=resume)
    tasks, skipped = _pending(points, table.read(), batch)
    runs = sum(len(seeds) for _, seeds in points)
    failures, status = [], "done"
    monitor = Monitor(progress, None, None, runs - skipped, "run")
    if tasks:
        try:
            with _connect(distributed, client, workers) as dask_client:
                failures, status = _run_tasks(distributed, dask_client, tasks, table, monitor)
        finally:
            monitor.close()
    missing = sum(len(seeds) for _, seeds in _pending(points, table.read(), batch)[0]) if tasks else 0
    ran = runs - skipped - missing  # counted from the table: an interrupt may land between a write and a count
    failed = sum(size for size, _ in failures)
    if failures and status == "done":
        status = "failed"
    output = os.fspath(output)
    message = _message(status, output, runs, ran, skipped, failed, failures)
    if status == "failed":
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return SweepResult(output, status, message, runs, ran, skipped, failed)


def _run_tasks(distributed, client, tasks, table, monitor) -> tuple[list, str]:
    """Submit the tasks and append each one's rows as it finishes: (failures as (runs,
    exception), status "done" or "interrupted")."""
    sizes = {client.submit(run_task, *task, pure=False): len(task[1]) for task in tasks}
    ran, failures = 0, []
    try:
        for future in distributed.as_completed(list(sizes)):
            size = sizes.pop(future)
            try:
                rows = future.result()
            except Exception as exc:  # the task raised, or Dask gave up on it (KilledWorker)
                failures.append((size, exc))
                continue
            table.append(rows)
            ran += size
            monitor.update(ran, {}, None, None)
    except KeyboardInterrupt:
        client.cancel(list(sizes))
        return failures, "interrupted"
    return failures, "done"


def run_task(point: dict, seeds: list[int]) -> dict[str, list]:
    """The table rows of one grid point's runs for these seeds: one `solve_batch` call,
    with as many Numba threads as the Dask worker running it has."""
    problem = Problem.from_spectrum(spectrum(point), point["m"], point["n"])
    lr = schedules.parse(point["schedule"]) if point["schedule"] else point["lr"]
    with _ONE_KERNEL:
        _use_worker_threads()
        result = solve_batch(problem, point["k"], lr, point["max_iter"], seeds=seeds,
                             init_scale=point["init_scale"], tol=point["tol"],
                             record_every=_none(point["record_every"]),
                             spectral_every=_none(point["spectral_every"]), delta=_none(point["delta"]),
                             balance=point["balance"], update=point["update"],
                             precondition=_none(point["precondition"]), noise=point["noise"],
                             init=point["init"])  # fmt: skip
    found = result.table()
    rows = {name: [value] * len(seeds) for name, value in point.items()}
    return (
        rows
        | {"seed": list(seeds), "sigma_1": [problem.sigma_1] * len(seeds)}
        | {name: found[name].tolist() for name in _RESULTS if name != "sigma_1"}
    )


def _pending(points, written: dict, batch: int) -> tuple[list[tuple[dict, list[int]]], int]:
    """The tasks (point, at most `batch` seeds) of the runs not in the `written` table, and
    how many runs of the grid are in it."""
    done = {_key(row) for row in zip(*(written[name].tolist() for name in _KEY), strict=True)}
    tasks, skipped = [], 0
    for point, seeds in points:
        missing = [seed for seed in seeds if _key([*point.values(), seed]) not in done]
        skipped += len(seeds) - len(missing)
        tasks += [(point, missing[i : i + batch]) for i in range(0, len(missing), batch)]
    return tasks, skipped


def spectrum(point: dict) -> np.ndarray:
    """The d singular values from kappa sigma_d down to sigma_d, evenly or geometrically spaced."""
    space = np.linspace if point["spacing"] == "linear" else np.geomspace
    return space(point["kappa"] * point["sigma_d"], point["sigma_d"], point["d"])


def grid_points(grid) -> list[tuple[dict, list[int]]]:
    """(point, seeds) for every point of the grid, each point with every parameter resolved;
    raises on an unknown or bad parameter and on a run listed twice."""
    grids = [grid] if isinstance(grid, Mapping) else list(grid) if isinstance(grid, (list, tuple)) else None
    if not grids or not all(isinstance(g, Mapping) for g in grids):
        raise TypeError("grid must be a dict of parameter -> value(s), or a non-empty list of such dicts")
    points, seen = [], set()
    for g in grids:
        unknown = sorted(set(g) - set(PARAMETERS) - {"seeds"})
        if unknown:
            raise ValueError(f"unknown grid parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}, seeds")
        if "seeds" not in g:
            raise ValueError("the grid must give seeds: a count (seeds=100 runs seeds 0 to 99) or a list of integers")
        seeds = _seeds(g["seeds"])
        names = [name for name in PARAMETERS if name in g]
        for values in itertools.product(*(_values(g[name], name) for name in names)):
            point = _point(dict(zip(names, values, strict=True)))
            key = _key(point.values())
            if key in seen:
                raise ValueError(f"the grid lists the point {point} twice; remove the repeated value")
            seen.add(key)
            points.append((point, seeds))
    return points


def _point(given: dict) -> dict:
    """Every parameter of one grid point, checked, with defaults and "theory" resolved."""
    p = {name: given.get(name, default) for name, (_, default) in _SPECTRUM.items()}
    missing = [name for name in ("m", "d") if p[name] is None]
    if missing:
        raise ValueError(f"the grid must give {', '.join(missing)} (required: m, d, seeds)")
    m = p["m"] = positive_int(p["m"], "m")
    n = p["n"] = m if p["n"] is None else positive_int(p["n"], "n")
    d = p["d"] = positive_int(p["d"], "d")
    if d > min(m, n):
        raise ValueError(f"d must be at most min(m, n) = {min(m, n)}, got {d}")
    p["kappa"] = finite_float(p["kappa"], "kappa")
    if p["kappa"] < 1 or (d == 1 and p["kappa"] != 1):
        raise ValueError(f"kappa = sigma_1 / sigma_d must be >= 1 (and 1 when d = 1), got {p['kappa']}")
    p["sigma_d"] = finite_float(p["sigma_d"], "sigma_d", positive=True)
    if p["spacing"] not in ("linear", "geometric"):
        raise ValueError(f"spacing must be 'linear' or 'geometric', got {p['spacing']!r}")
    s = spectrum(p)
    settings = {name: given[name] for name in _SETTINGS if name in given}
    if "lr" in settings:
        settings["lr"] = _step_size(settings["lr"])
    options = Options(**settings).resolve((m, n), s[0], s)
    cells = {name: float("nan") if getattr(options, name) is None else getattr(options, name) for name in _SETTINGS}
    if callable(options.lr):
        return p | cells | {"lr": float("nan"), "schedule": options.lr.spec()}
    return p | cells | {"schedule": ""}


def _step_size(value):
    """A grid's lr as `Options` takes it, with a schedule's NAME:ARGS text or mapping made the
    built-in schedule (`fastmf.schedules.parse`); a callable that is not one is refused."""
    if isinstance(value, (str, Mapping)) and value != "theory":
        if isinstance(value, str) and value.partition(":")[0] not in schedules.KINDS:
            raise ValueError(
                f"lr must be a positive number, 'theory' or a schedule NAME:ARGS with NAME one of "
                f"{', '.join(schedules.KINDS)} (e.g. 'inverse_sqrt:0.1,100'), got {value!r}"
            )
        try:
            return schedules.parse(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"lr: {exc}") from None
    if callable(value) and (not isinstance(value, schedules.Schedule) or isinstance(value, schedules.Custom)):
        raise TypeError(
            f"a sweep's lr must be a number, 'theory' or a built-in schedule (fastmf.schedules, e.g. "
            f"InverseSqrt(0.1, 100) or 'inverse_sqrt:0.1,100'), got {value!r}: a table cannot hold a plain callable"
        )
    return value


def _values(value, name) -> list:
    if isinstance(value, (list, tuple, range, np.ndarray)):
        if len(value) == 0:
            raise ValueError(f"grid parameter {name} has no values; give one value or a non-empty list")
        return list(value)
    return [value]


def _seeds(value) -> list[int]:
    if isinstance(value, (list, tuple, range, np.ndarray)):
        seeds = [positive_int(seed, "each seed", minimum=0) for seed in value]
    else:
        seeds = list(range(positive_int(value, "seeds")))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be a count or a non-empty list of distinct integers >= 0")
    return seeds


def _key(values) -> tuple:
    """A run's identity (NaN, which equals nothing, becomes None)."""
    return tuple(_none(v) for v in values)


def _none(value):
    """None for NaN (a setting left to the engine, or a key that must equal itself)."""
    return None if isinstance(value, float) and value != value else value


def _use_worker_threads() -> None:
    """On a Dask worker, give Numba that worker's thread count (it is per calling thread)."""
    import numba
    from distributed import get_worker

    try:
        threads = get_worker().state.nthreads
    except ValueError:  # not running on a worker: leave Numba as it is
        return
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "sweep runs on Dask: pip install 'dask[distributed]' (or the fastmf-gd[dask] extra)"
        ) from None
    return distributed


@contextlib.contextmanager
def _connect(distributed, client, workers):
    """The Client to submit to: the one given, one to the address given, or a LocalCluster's."""
    if isinstance(client, distributed.Client):
        yield client
    elif isinstance(client, str):
        with distributed.Client(client) as connected:
            yield connected
    else:
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        with (
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
            distributed.Client(cluster) as connected,
        ):
            yield connected


def _message(status, output, runs, ran, skipped, failed, failures) -> str:
    done = f"{ran} runs written to {output} ({skipped} of the grid's {runs} were there already)"
    if status == "done":
        return f"sweep done: {done}"
    missing = runs - ran - skipped
    rerun = "sweep(..., resume=True) (fastmf sweep --resume) runs only those"
    if status == "interrupted":
        return f"sweep interrupted: {done}; {missing} runs still missing: {rerun}"
    return (f"sweep failed: {failed} runs in {len(failures)} tasks raised, the first {failures[0][1]!r}; "
            f"{done}; {missing} runs still missing: {rerun}")  # fmt: skip
