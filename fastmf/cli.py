"""The command line: ``fastmf run|flow|sweep|theory|plot|warmup|info`` (also ``python -m fastmf``).

The settings flags of ``run`` and ``flow`` (and the keys of their TOML configs) are made
from the fields of `fastmf.options.Options` and `FlowOptions` and of the run's control
(time limit, checkpoints, progress): the same names, help and checks. A flag left unset
is not passed, so the library's default applies.

Exit codes (`fastmf.status.exit_code`): 0 the run finished (converged, max_iter, t_max) or
the sweep is complete; 1 it diverged, the ODE solver failed or tasks of the sweep raised;
2 bad arguments or files (one line on stderr says why); 3 stopped by --time-limit
(``fastmf run --resume`` continues it); 130 Ctrl-C and 143 SIGTERM, after the result, the
checkpoint or the finished runs of a sweep are written (``fastmf sweep --resume`` runs the
rest).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import signal
import sys
import time
import zipfile
import zlib

import numpy as np

from . import schedules
from .driver import Control
from .options import DEFAULTS, FlowOptions, Options
from .status import EXIT_USAGE, exit_code

_EXAMPLES = {
    "run": """examples:
  fastmf run --spectrum 4,3,2,1.5,1 --shape 1000x800 --lr 0.05 --max-iter 3000 --init-scale 1e-5 -o run.npz
  fastmf run sigma.npy -k 8 --lr 0.01 --tol 1e-20 --checkpoint run.ckpt.npz --checkpoint-every 10000
  fastmf run --config experiment.toml
  fastmf run --resume run.ckpt.npz --max-iter 200000""",
    "flow": """examples:
  fastmf flow --spectrum 4,3,2,1.5,1 --shape 1000x800 --t-max 150 --init-scale 1e-5 -o flow.npz
  fastmf flow sigma.npz --key Sigma -k 8 --t-max 50 --target-loss 1e-20 --checkpoint flow.ckpt.npz
  fastmf flow --resume flow.ckpt.npz --t-max 100""",
    "sweep": """examples:
  fastmf sweep eta-sweep.toml -o eta-sweep.parquet
  fastmf sweep eta-sweep.toml -o eta-sweep.parquet --resume
  fastmf sweep eta-sweep.toml --scheduler tcp://10.0.0.5:8786

a config gives the grid as a [grid] table (or several [[grid]] tables), each parameter one
value or a list; every combination is run for every seed:
  output = "eta-sweep.parquet"
  [grid]
  m = 100000
  d = 5
  kappa = [1, 4]
  init_scale = 1e-6
  lr = [0.01, 0.02, 0.05, 0.1]
  max_iter = 100000
  delta = 1e-10
  seeds = 50
grid parameters: the spectrum's m, n (default m), d, kappa (default 1), sigma_d (default 1)
and spacing ("linear", the default, or "geometric"); the runs' k, init_scale, lr, max_iter,
tol, delta, record_every, balance, update, precondition, noise and init, as fastmf run's
flags of those names (the same defaults; init_scale and lr may be "theory", and lr a schedule,
"inverse_sqrt:0.1,100" or a table {kind = "inverse_sqrt", lr = 0.1, t0 = 100}, held in the
table's schedule column as its NAME:ARGS text, with lr NaN); seeds (a count, or a list of seeds)""",
    "theory": """examples:
  fastmf theory --spectrum 4,3,2,1 --shape 100000x100000 --delta 1e-6
  fastmf theory sigma.npy --delta 1e-8 --c-eps 0.1""",
    "plot": """examples:
  fastmf plot run.npz -o run.png
  fastmf plot run.npz --steps 0,800 -o stages.png
  fastmf plot seed0.npz seed1.npz seed2.npz -o seeds.png --key loss
  fastmf plot batch.npz -o batch.png --by lr
  fastmf plot eta-sweep.csv -o eta-sweep.png""",
    "warmup": """examples:
  fastmf warmup
  fastmf warmup --dtype float64""",
    "reproduce": """examples:
  fastmf reproduce --list
  fastmf reproduce stage-order --quick
  fastmf reproduce stage-order -o figures
  fastmf reproduce --all --quick -o figures""",
    "info": """examples:
  fastmf info""",
}

# The settings of each command are the fields of its options class, and the fields of the
# run's control (`fastmf.driver.Control`) that a command line sets, given here as (kind, help)
# as the options' metadata gives them (its callback is Python's).
_OPTIONS = {"run": Options, "flow": FlowOptions}
# The watch-and-save settings of `fastmf.driver.Control` (the callback has no flag).
_CONTROL = {
    f.name: (f.metadata["kind"], f.metadata["help"]) for f in dataclasses.fields(Control) if f.name != "callback"
}


class UsageError(Exception):
    """Bad arguments or files: exit code 2 with a one-line reason."""


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from ._kernels import blas

    if args.command != "info" and blas.error():  # info reports it; every other command needs the kernels
        print(f"fastmf {args.command}: error: {blas.error()}", file=sys.stderr)
        return EXIT_USAGE
    received = args.signals = []

    def on_sigterm(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # outside a run (a run catches its own and saves what it has)
        return exit_code("interrupted", _signal(args))
    except (UsageError, ValueError, TypeError, OSError, MemoryError, ImportError) as exc:
        print(f"fastmf {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- parsers


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but a bad flag or value is one line on stderr (exit 2), not the usage
    block: `fastmf COMMAND --help` shows that."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastmf",
        description="Gradient descent and gradient flow on min 1/2 ||U V^T - Sigma||_F^2, as the theory studies it.",
        epilog="Run 'fastmf COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"fastmf {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    formatter = argparse.RawDescriptionHelpFormatter

    def command(name, help_, handler):
        p = sub.add_parser(name, help=help_, description=help_, epilog=_EXAMPLES[name], formatter_class=formatter)
        p.set_defaults(handler=handler, parser=p)  # the parser: a --config value is checked as its flag's is
        return p

    for name, help_ in (
        ("run", "run gradient descent and save the result (.npz) and a JSON summary"),
        ("flow", "integrate the gradient flow and save the result and a JSON summary"),
    ):
        p = command(name, help_, _cmd_run)
        _problem_options(p)
        g = p.add_argument_group("gradient descent" if name == "run" else "gradient flow")
        fields = dataclasses.fields(_OPTIONS[name])
        _add_settings(g, [(f.name, f.metadata["kind"], f.metadata["help"], f.default) for f in fields])
        _output_options(p, f"fastmf-{name}.npz")
        g = p.add_argument_group("long runs")
        _add_settings(g, [(key, kind, help_, None) for key, (kind, help_) in _CONTROL.items()])
        g.add_argument(
            "--resume", type=_path, metavar="FILE",
            help="continue the run saved in FILE (a checkpoint or a result; give INPUT again for a direct-path run)",
        )  # fmt: skip

    sweep = command("sweep", "run a grid of GD runs on Dask, one table row per run, written as runs finish", _cmd_sweep)
    sweep.add_argument(
        "config", type=_path, metavar="CONFIG", help="TOML file: the [grid] and settings named as the flags"
    )
    sweep.add_argument(
        "-o", "--output", type=_path, help="the table, .parquet or .csv (default fastmf-sweep.parquet with pyarrow)"
    )
    sweep.add_argument("--resume", action="store_true", help="run only the runs the output table lacks")
    sweep.add_argument(
        "--scheduler", type=_text, metavar="ADDRESS", help="a running Dask scheduler (default: a local cluster)"
    )
    sweep.add_argument("--workers", type=_POSITIVE_INT, help="processes of the local cluster (default: the cores)")
    sweep.add_argument("--batch", type=_POSITIVE_INT, help="runs per task at most (default 64)")
    sweep.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: terminal)")
    sweep.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    sweep.set_defaults(grid=None)  # only a config gives the grid

    theory = command("theory", "print what Theorem 1.1, Theorem 3.1 and Corollary 1.2 prescribe", _cmd_theory)
    _problem_options(theory)
    theory.add_argument("--delta", type=_POSITIVE, default=1e-6, help="target loss (default 1e-6)")
    for name in ("c-eps", "c-eta", "c-T"):
        theory.add_argument(f"--{name}", type=_POSITIVE, default=1.0, help="the theorem's constant (default 1)")
    theory.add_argument("--json", action="store_true", help="print JSON instead of a table")

    plot = command("plot", "draw the stage page of a saved run, overlay several runs, or draw a sweep", _cmd_plot)
    plot.add_argument(
        "inputs", nargs="+", type=_path, metavar="RESULT",
        help="result files written by run or flow (a batch's are its runs), or one sweep table (.csv, .parquet)",
    )  # fmt: skip
    plot.add_argument("-o", "--output", type=_path, help="image file (.png, .pdf, .svg); default RESULT with .png")
    plot.add_argument(
        "--key", type=_text, default="loss", help="history key to overlay for several runs (default loss)"
    )
    plot.add_argument("--labels", type=_text, help="comma-separated labels for several runs (default: by --by)")
    plot.add_argument(
        "--by", type=_text, help="colour runs by this setting, or a sweep's x-axis: lr, init_scale, k, seed, ..."
    )
    plot.add_argument("--steps", type=_window, metavar="A,B", help="draw steps A to B (default: to the loss's floor)")
    plot.add_argument("--time", type=_window, metavar="A,B", help="draw times A to B (a flow, or with --time-axis)")
    plot.add_argument(
        "--time-axis", action="store_true", help="overlay GD runs against the time sum of step sizes (lr * step)"
    )

    warmup = command("warmup", "compile every kernel now and cache it on disk", _cmd_warmup)
    warmup.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")

    reproduce = command(
        "reproduce", "run the experiment behind a claim of the papers: table, figure, verdict", _cmd_reproduce
    )
    reproduce.add_argument("name", nargs="?", type=_text, metavar="NAME", help="the claim (see --list)")
    reproduce.add_argument("--list", action="store_true", help="list the claims and where the papers state them")
    reproduce.add_argument("--all", action="store_true", help="reproduce every claim")
    reproduce.add_argument("--quick", action="store_true", help="a size that takes seconds (default: the gallery's)")
    reproduce.add_argument("-o", "--output", type=_path, default=".", help="folder for NAME.csv and NAME.png")

    command("info", "versions, the BLAS library and its threads, the Numba cache", _cmd_info)
    return parser


def _problem_options(p) -> None:
    g = p.add_argument_group("the problem (a matrix file, a spectrum, or a TOML config)")
    g.add_argument(
        "input", nargs="?", type=_path, help="Sigma as .npy, .npz (one array, or --key) or a scipy.sparse .npz"
    )
    g.add_argument("--key", type=_text, help="the array's name inside an .npz file")
    g.add_argument("--spectrum", type=_spectrum, help="Sigma = diag(s), e.g. 4,3,2,1 (never formed, any size)")
    g.add_argument("--shape", type=_shape, help="M x N of a --spectrum problem, e.g. 100000x80000 (default: square)")
    g.add_argument("--dtype", type=_text, choices=("float32", "float64"), help="precision (default: the input's)")
    g.add_argument("--config", type=_path, metavar="FILE", help="TOML file of settings named as the flags (flags win)")


def _add_settings(group, settings) -> None:
    """A flag for each (name, kind, help, default) setting: --name-with-dashes (and -k for k),
    parsed as its kind says; unset, it is None and not passed, so the library's default applies."""
    for name, kind, help_, default in settings:
        flags = (["-k"] if name == "k" else []) + [f"--{name.replace('_', '-')}"]
        if default is not None:
            help_ += f" [default: {default:g}]" if isinstance(default, float) else f" [default: {default}]"
        if kind == "bool":
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, help=help_)
        elif name in _BY_NAME:
            parse, metavar, help_ = _BY_NAME[name]
            group.add_argument(*flags, dest=name, type=parse, metavar=metavar, help=help_)
        elif kind in _KINDS:
            group.add_argument(*flags, dest=name, type=_KINDS[kind], metavar=_METAVARS.get(kind), help=help_)
        else:  # a choice, "a|b|c"
            group.add_argument(*flags, dest=name, type=_text, choices=kind.split("|"), help=help_)


def _output_options(p, default) -> None:
    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", type=_path, help=f"result file (.npz; default {default})")
    g.add_argument("--summary", type=_path, help="JSON summary file (default: the output with .json)")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(default_output=default)


# ----------------------------------------------------------------------------- commands


def _cmd_run(args) -> int:
    """fastmf run and fastmf flow: `solve` or `gradient_flow`, or `resume` a saved run."""
    import fastmf

    _apply_config(args)
    output, summary = _outputs(args)
    _check_files(
        [("-o/--output", output), ("--summary", summary), ("--checkpoint", args.checkpoint)],
        [("INPUT", args.input), ("--config", args.config), ("--resume", args.resume)],
        allowed=[("--checkpoint", "--resume")],  # a resumed run goes on checkpointing to its file
    )
    options = _OPTIONS[args.command]
    settings = _given(args, [f.name for f in dataclasses.fields(options)])
    control = _given(args, _CONTROL)
    started = time.perf_counter()
    if args.resume:
        # what a resumed run may change (not lr: resume takes again only a Python callable schedule)
        again = set(inspect.signature(fastmf.resume).parameters) - {"lr"}
        dropped = [f"--{name.replace('_', '-')}" for name in (*_given(args, ["spectrum", "shape"]), *settings)
                   if name not in again]  # fmt: skip
        if dropped:
            raise UsageError(f"--resume continues the saved run with its own settings; drop {', '.join(dropped)}")
        saved = fastmf.load(args.resume)
        if isinstance(saved, fastmf.BatchResult) or (args.command == "flow") != isinstance(saved, fastmf.FlowResult):
            kind = {fastmf.BatchResult: "a batch of runs", fastmf.FlowResult: "a gradient flow"}.get(
                type(saved), "a GD run"
            )
            fix = "fastmf.resume(path) in Python" if isinstance(saved, fastmf.BatchResult) else "the other command"
            raise UsageError(f"{args.resume} holds {kind}, which fastmf {args.command} does not resume: use {fix}")
        if getattr(saved, "method", None) == "direct" and args.input is None:
            raise UsageError(f"{args.resume} is a direct-path run, whose file does not hold Sigma: give INPUT again")
        if getattr(saved, "method", "direct") != "direct" and args.input is not None:
            raise UsageError(f"{args.resume} holds Sigma's basis: drop INPUT")
        matrix = {} if args.input is None else {"Sigma": _target(args)}  # a direct-path run's, which it does not save
        result = fastmf.resume(args.resume, **settings, **matrix, **control)
    elif options is Options:
        result = fastmf.solve(_target(args), options=Options(**settings), **control)
    else:
        if "t_max" not in settings:
            raise UsageError("--t-max is required (the end of the time interval), e.g. --t-max 100")
        result = fastmf.gradient_flow(_target(args), options=FlowOptions(**settings), **control)
    return _finish(args, result, time.perf_counter() - started)


def _cmd_sweep(args) -> int:
    import warnings

    from .sweeps import sweep

    _apply_config(args, extra=("grid",))
    if args.grid is None:
        raise UsageError(f"{args.config} has no [grid] table (see fastmf sweep --help)")
    output = args.output or ("fastmf-sweep.parquet" if _has_module("pyarrow") else "fastmf-sweep.csv")
    _check_files([("-o/--output", output)], [("CONFIG", args.config)], table=True)
    with warnings.catch_warnings():  # a failure is printed below, and sets the exit code
        warnings.filterwarnings("ignore", "sweep failed", RuntimeWarning)
        result = sweep(
            args.grid, output, resume=args.resume, client=args.scheduler, workers=args.workers,
            progress=args.progress, **_given(args, ["batch"]),
        )  # fmt: skip
    if result.status == "done":
        if not args.quiet:
            print(result.message)
        return 0
    print(result.message, file=sys.stderr)  # "interrupted" or "failed"
    return exit_code(result.status, _signal(args))


def _cmd_theory(args) -> int:
    from . import theory

    _apply_config(args)
    problem = _problem(args)
    m, n = problem.shape
    found = theory.prescriptions(problem.s, m, n, args.delta, c_eps=args.c_eps, c_eta=args.c_eta, c_T=args.c_T)
    found = {"m": m, "n": n, "d": problem.rank, "sigma_1": problem.sigma_1, "sigma_d": problem.sigma_d,
             "delta": args.delta} | found  # fmt: skip
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    notes = {
        "init_scale": "eps = c_eps sigma_d / sqrt(d^3 sigma_1 (m + n))   (Theorem 1.1)",
        "lr": "eta = c_eta sigma_d eps^2 / (d sigma_1^3)   (Theorem 1.1)",
        "T0": "end of stage one, steps   (Theorem 3.1)",
        "T_total": "steps to loss <= delta   (Theorem 1.1)",
        "flow_time": "gradient-flow time to loss <= delta   (Corollary 1.2)",
        "linear_rate": "bound on the loss factor per step after T0, (1 - eta sigma_d / 2)^2   (section 3.3)",
    }
    for key, value in found.items():
        shown = f"1 - {1 - value:.6g}" if key == "linear_rate" else f"{value:.6g}"
        print(f"{key:>12} = {shown:<16} {notes.get(key, '')}")
    return 0


def _cmd_plot(args) -> int:
    import fastmf

    from . import plot

    output = args.output or os.path.splitext(args.inputs[0].rstrip("/" + os.sep))[0] + ".png"
    _check_files([("-o/--output", output)], [("RESULT", path) for path in args.inputs])
    tables = [path for path in args.inputs if path.rstrip("/" + os.sep).endswith((".csv", ".parquet"))]
    if tables and len(args.inputs) > 1:
        raise UsageError(f"a sweep table ({tables[0]}) is drawn on its own: give it as the only RESULT")
    window = {"steps": args.steps, "time": args.time}
    if tables:
        fig = plot.plot_runs(tables[0], by=args.by)
    else:
        loaded = [fastmf.load(path) for path in args.inputs]
        runs = [run for result in loaded for run in (result if isinstance(result, fastmf.BatchResult) else [result])]
        if len(runs) == 1:
            fig = plot.plot_run(runs[0], **window)
        else:
            labels = args.labels.split(",") if args.labels else None
            fig = plot.plot_runs(loaded, labels, key=args.key, by=args.by, time_axis=args.time_axis, **window)
    fig.savefig(output, dpi=110)
    print(f"wrote {output}")
    return 0


def _cmd_reproduce(args) -> int:
    from . import claims

    if args.list:
        for found in claims.claims():
            print(f"{found.name:<22} {found.source}: {found.statement}")
        return 0
    if args.all == (args.name is not None):
        raise UsageError("give one claim's NAME or --all (fastmf reproduce --list shows the names)")
    names = [found.name for found in claims.claims()] if args.all else [args.name]
    differ, failed = [], []
    for name in names:
        try:
            verdict = claims.reproduce(name, quick=args.quick, output=args.output)
        except (ValueError, OSError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:
            if not args.all:
                raise
            print(f"{name}: error: {exc}", file=sys.stderr)  # the other claims still run
            failed.append(name)
            continue
        print(verdict.line)
        written = [verdict.csv] + ([verdict.png] if verdict.png else ["no figure (matplotlib is not installed)"])
        print(f"  {verdict.seconds:.1f} s; wrote {', '.join(written)}")
        if not verdict.holds:
            differ.append(name)
    if len(names) > 1:
        print(f"{len(names) - len(differ) - len(failed)} of {len(names)} claims agree"
              + (f"; differ: {', '.join(differ)}" if differ else "")
              + (f"; failed: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if differ or failed else 0


def _cmd_warmup(args) -> int:
    import fastmf

    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    for name in dtypes:
        started = time.perf_counter()
        problem = fastmf.Problem.from_spectrum(np.array([2.0, 1.0]), 6, 5, dtype=name)
        for complement in ("compressed", "full"):
            fastmf.solve(problem, k=2, lr=0.1, max_iter=3, seed=0, complement=complement)
        fastmf.solve(problem.dense(), k=2, lr=0.1, max_iter=3, seed=0, method="direct")
        fastmf.solve_batch(problem, k=2, lr=0.1, max_iter=3, seeds=[0])
        fastmf.gradient_flow(problem, k=2, t_max=0.1, seed=0, t_eval=[0.0, 0.1])
        print(f"{name}: kernels ready in {time.perf_counter() - started:.1f} s")
    print(f"cache: {_cache_dir()}")
    return 0


def _cmd_info(args) -> int:
    import numba
    import scipy

    import fastmf

    print(f"fastmf   {_version()}")
    print(f"python   {sys.version.split()[0]} ({sys.executable})")
    print(f"numpy    {np.__version__}")
    print(f"scipy    {scipy.__version__}")
    print(f"numba    {numba.__version__} (threads: {numba.config.NUMBA_NUM_THREADS})")
    print(f"cache    {_cache_dir()}")
    kernels = fastmf.blas_info()
    if kernels["error"]:
        print(f"kernels  cannot run: {kernels['error']}")
    else:
        n = kernels["threads"]
        threads = f"{n} thread{'s' * (n != 1)}" if n else "threads unknown"
        print(f"kernels  FASTMF_BLAS={kernels['backend']}: {kernels['library'] or 'library unknown'}, {threads}")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        print("blas     (install threadpoolctl to see which BLAS library runs and how many threads)")
        return 0
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            core = f", {pool['architecture']} kernels" if pool.get("architecture") else ""
            print(
                f"blas     {pool['internal_api']} {pool['version']}{core}, {pool['num_threads']} threads "
                f"({pool['filepath']})"
            )
    return 0


# ----------------------------------------------------------------------------- helpers


def _outputs(args) -> tuple[str, str]:
    output = args.output or args.default_output
    return output, args.summary or os.path.splitext(output)[0] + ".json"


def _check_files(outputs, inputs, *, allowed=(), table=False) -> None:
    """Before any work, refuse an output (flag, path) that cannot be written, or that names
    the same file as an input or an earlier output: nothing of the user's is overwritten.

    `allowed` lists the (output, input) flags that may name one file; a `table` (a sweep's)
    may be a folder, which its own code checks."""
    seen = [(flag, path) for flag, path in inputs if path is not None]
    for flag, path in outputs:
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {path} ({flag}): the folder {folder} does not exist")
        if os.path.isdir(path) and not table:
            raise UsageError(f"{flag} {path} is a folder; give a file name")
        for other, named in seen:
            if (flag, other) not in allowed and _same_file(path, named):
                raise UsageError(f"{flag} and {other} both name {path}; choose another file for {flag}")
        seen.append((flag, path))


def _same_file(a, b) -> bool:
    """Whether two paths name one file: the same path once links are resolved, or (both
    existing) the same file on disk, as hard links and case-insensitive systems give."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _finish(args, result, elapsed: float) -> int:
    """Save the result and the summary, print it, and turn the status into the exit code."""
    output, summary_path = _outputs(args)
    result.save(output)
    summary = _summary(args.command, result, elapsed, output)
    with open(summary_path, "w") as f:
        json.dump(_strict_json(summary), f, indent=2, allow_nan=False)
        f.write("\n")
    if not args.quiet:
        print(result.message)
        st = result.stages
        shown = ("None" if v is None else f"{v:.6g}" for v in (st.T1, st.T0, st.T_delta))
        print("stages: T1 = {}, T0 = {}, T_delta = {}".format(*shown) + f"; {elapsed:.2f} s")
        print(f"wrote {output} and {summary_path}")
    return exit_code(result.status, _signal(args))


def _signal(args) -> int | None:
    """The signal that interrupted the command: SIGTERM (which main turns into KeyboardInterrupt),
    or None for Ctrl-C."""
    return args.signals[0] if args.signals else None


def _strict_json(value):
    """`value` with every non-finite float (a loss beyond the double range, say) as None: JSON has
    no Infinity or NaN, and strict parsers refuse them."""
    if isinstance(value, dict):
        return {key: _strict_json(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _summary(command, result, elapsed, output) -> dict:
    """The JSON summary: how the run ended, its resolved options, and the problem's spectrum
    (none on the direct path, which never computes it)."""
    from . import FlowResult
    from .checkpoint import options_to_json

    out = {
        "command": command, "status": result.status, "success": result.success, "message": result.message,
        "loss": result.loss, "n_iter": result.n_iter, "k": result.k,
        "stages": {k: (v if v is None or isinstance(v, int) else float(v)) for k, v in vars(result.stages).items()},
        "options": options_to_json(result.options),
    }  # fmt: skip
    if isinstance(result, FlowResult):
        out |= {"t": result.t, "nfev": result.nfev}
    else:
        out["method"] = result.method
    p = result.problem
    if p is not None:
        out["problem"] = {"kind": p.kind, "shape": list(p.shape), "rank": p.rank, "sigma_1": p.sigma_1,
                          "sigma_d": p.sigma_d, "dtype": p.dtype.name}  # fmt: skip
    return out | {"elapsed_s": elapsed, "output": os.path.abspath(output), "fastmf_version": _version()}


def _problem(args):
    """The Problem (Sigma in its singular basis) of a matrix file or of --spectrum/--shape."""
    from . import Problem

    target = _target(args)
    return target if isinstance(target, Problem) else Problem(target)


def _target(args):
    """Sigma as the library takes it: the Problem of --spectrum/--shape, or the matrix of a file
    (in --dtype, if given), which `solve` may run on directly."""
    from . import Problem

    if (args.input is None) == (args.spectrum is None):
        raise UsageError("give the problem as a matrix file (INPUT) or as --spectrum s1,s2,... (exactly one)")
    if args.spectrum is not None:
        if args.key is not None:
            raise UsageError("--key names an array inside a matrix file; a --spectrum problem has none, drop --key")
        m, n = args.shape or (args.spectrum.size, args.spectrum.size)
        return Problem.from_spectrum(args.spectrum, m, n, dtype=args.dtype)
    if args.shape is not None:
        raise UsageError("--shape is for --spectrum problems; a matrix file has its own shape")
    matrix = _load_matrix(args.input, args.key)
    return matrix if args.dtype is None else matrix.astype(args.dtype, copy=False)


def _load_matrix(path, key):
    if os.path.isdir(path):
        raise UsageError(f"INPUT {path} is a folder; give a .npy or .npz file")
    if not os.path.isfile(path):
        raise UsageError(f"no such matrix file: {path}")
    try:
        with open(path, "rb") as f:  # our own handle: np.load leaks its own when the zip is bad
            magic = f.read(6)
            if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
                raise UsageError(
                    f"{path} is neither a .npy nor an .npz file (save Sigma with numpy.save or numpy.savez)"
                )
            f.seek(0)
            data = np.load(f, allow_pickle=False)
            if isinstance(data, np.ndarray):
                if key is not None:
                    raise UsageError(f"--key is for .npz files; {path} holds a single array")
                return data
            names = data.files
            if {"format", "indptr", "indices", "data", "shape"} <= set(names):
                import scipy.sparse

                f.seek(0)
                return scipy.sparse.load_npz(f)
            if key is None:
                if len(names) != 1:
                    raise UsageError(f"{path} holds several arrays ({', '.join(names)}); choose one with --key")
                key = names[0]
            if key not in names:
                raise UsageError(f"{path} has no array named {key!r}; it has {', '.join(names)}")
            return data[key]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path} does not load as a .npy or .npz file (corrupt or truncated?): {reason}") from None


# ----------------------------------------------------------------------------- values
# One parser per kind of value: each is the `type` of its flags and also checks the same
# setting in a --config file, so it takes a string from the command line or a TOML value,
# and says what it wants in a message that argparse (or _apply_config) prefixes with the name.


def _integer(minimum: int):
    """The parser of integers >= minimum."""

    def parse(value) -> int:
        number = value
        if isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value!r}")
        return number

    return parse


def _real(positive: bool):
    """The parser of finite numbers > 0 (`positive`) or >= 0."""

    def parse(value) -> float:
        try:
            number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not np.isfinite(number) or number < 0 or (positive and number == 0):
            raise argparse.ArgumentTypeError(f"must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
        return number

    return parse


_POSITIVE_INT, _COUNT = _integer(1), _integer(0)
_POSITIVE, _NONNEGATIVE = _real(True), _real(False)


def _number_or_theory(value):
    if value == "theory":
        return value
    try:
        return _POSITIVE(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive number or 'theory', got {value!r}") from None


def _step_size(value):
    """lr: a positive number, 'theory', or a schedule, NAME:ARGS or a config's table of its
    `to_dict` form, as the JSON summary writes it (`fastmf.schedules.parse`)."""
    if isinstance(value, dict) or (isinstance(value, str) and value.partition(":")[0] in schedules.KINDS):
        try:
            return schedules.parse(value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        return _number_or_theory(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number, 'theory' or a schedule NAME:ARGS (NAME one of {', '.join(schedules.KINDS)}), "
            f"e.g. inverse_sqrt:0.1,100; got {value!r}"
        ) from None


def _text(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise argparse.ArgumentTypeError(f"must be a non-empty string, got {value!r}")
    return value


def _window(value) -> tuple[float, float]:
    """A window "A,B" of steps or times, A < B."""
    parts = str(value).split(",")
    try:
        lo, hi = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be two numbers A,B (first and last to draw), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise argparse.ArgumentTypeError(f"must be A,B with finite A < B, got {value!r}")
    return lo, hi


def _path(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise argparse.ArgumentTypeError(f"must be a file name, got {value!r}")
    return value


def _spectrum(value) -> np.ndarray:
    """Singular values: "4,3,2,1" or a TOML list of numbers."""
    values = value if isinstance(value, list) else [v for v in str(value).replace(" ", "").split(",") if v]
    try:
        s = [_NONNEGATIVE(v) for v in values]
    except argparse.ArgumentTypeError:
        s = []
    if not s:
        raise argparse.ArgumentTypeError(f"must be comma-separated finite numbers >= 0, e.g. 4,3,2,1; got {value!r}")
    return np.array(s)


def _shape(value) -> tuple[int, int]:
    """M x N: "100000x80000" or a TOML list [100000, 80000], positive integers."""
    parts = value if isinstance(value, list) else str(value).lower().replace("*", "x").split("x")
    if len(parts) == 2:
        try:
            return _POSITIVE_INT(parts[0]), _POSITIVE_INT(parts[1])
        except argparse.ArgumentTypeError:
            pass
    raise argparse.ArgumentTypeError(f"must be M x N with integers >= 1, e.g. 100000x80000; got {value!r}")


# The parser of each kind of setting (`fastmf.options` metadata; "file" and "bool" are the control's);
# a kind "a|b|c" not listed here is a choice.
_KINDS = {
    "int>=0": _COUNT,
    "int>=1": _POSITIVE_INT,
    "int>=2": _integer(2),
    "float>0": _POSITIVE,
    "float>=0": _NONNEGATIVE,
    "number|theory": _number_or_theory,
    "seed": _COUNT,
    "file": _path,
}
_METAVARS = {"file": "FILE"}
# Settings whose flag parses more than their kind says: name -> (parser, metavar, help).
_BY_NAME = {
    "lr": (
        _step_size,
        "LR",
        f"step size: a number, 'theory' (Theorem 1.1) or a schedule NAME:ARGS with NAME one of "
        f"{', '.join(schedules.KINDS)} (fastmf.schedules; e.g. inverse_sqrt:0.1,100, in a config also a "
        f'table: kind = "inverse_sqrt", lr = 0.1, t0 = 100); default {DEFAULTS.lr:g} / sigma_1, or {DEFAULTS.lr:g} '
        "with --precondition (ScaledGD's step is scale-free)",
    )
}


def _given(args, names) -> dict:
    """The settings among `names` that the flags or the config gave (an unset one is not passed)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _apply_config(args, extra=()) -> None:
    """Fill the flags left unset from --config: a TOML file whose keys are the names of the
    flags without a default (dashes as underscores), --config and --resume aside, and `extra`."""
    if args.config is None:
        return
    config = _read_toml(args.config)
    flags = {action.dest: action for action in args.parser._actions}
    keys = [key for key, flag in flags.items() if flag.default is None and key not in ("config", "resume")]
    keys += extra
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise UsageError(f"{args.config}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    for key, value in config.items():
        if getattr(args, key, None) is None:
            setattr(args, key, _setting(args.config, key, value, flags.get(key)))


def _setting(path, key, value, flag):
    """A config value, checked as the value of its `flag` is (the grid, which has none, by sweep)."""
    try:
        if flag is None:
            return value
        if flag.nargs == 0:  # a switch, --progress / --no-progress
            if not isinstance(value, bool):
                raise argparse.ArgumentTypeError(f"must be true or false, got {value!r}")
            return value
        value = (flag.type or _text)(value)
        if flag.choices is not None and value not in flag.choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(flag.choices)}, got {value!r}")
        return value
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{path}: {key} {exc}") from None


def _read_toml(path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise UsageError("a TOML config needs Python >= 3.11 or the tomli package (pip install tomli)") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"no such config file: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read the config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None


def _has_module(name) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _cache_dir() -> str:
    from ._kernels import cache_dir

    return cache_dir() or "none writable: the kernels compile in every process (set NUMBA_CACHE_DIR)"


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
