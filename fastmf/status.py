"""How a run ends: its status, the sentence that says so, and the command line's exit code.

Every result's `status` is one of `STATUSES`; `success` is true for the statuses that mean
the run did what it was asked (converged, or ran its whole length). The stopped ones keep
the state reached, and `fastmf.resume` continues them.
"""

from __future__ import annotations

import signal

import numpy as np

from . import theory
from ._kernels import layout

# status -> (success, exit code of the command line, what it means)
STATUSES = {
    "converged": (True, 0, "the loss reached tol (GD) or target_loss (flow)"),
    "max_iter": (True, 0, "GD ran all max_iter steps"),
    "t_max": (True, 0, "the flow was integrated to t_max"),
    "diverged": (False, 1, "the state overflowed; the last finite state is kept"),
    "failed": (False, 1, "the ODE solver gave up"),
    "time_limit": (False, 3, "stopped at the time limit; resumable"),
    "stopped": (False, 3, "stopped by the callback; resumable"),
    "interrupted": (False, 128 + signal.SIGINT, "KeyboardInterrupt (Ctrl-C, or SIGTERM under the CLI); resumable"),
    "running": (False, 3, "a checkpoint written mid-run; resumable"),
    "done": (True, 0, "every run of a sweep is in its table"),
}
EXIT_USAGE = 2  # bad arguments or files
# how a compiled GD loop says it stopped a run (`fastmf._kernels.layout`)
_KERNEL = {layout.CONVERGED: "converged", layout.DIVERGED: "diverged"}


def from_kernel(code: int, otherwise: str) -> str:
    """The status of a run whose kernel reports `code`: its own stop, else `otherwise`."""
    return _KERNEL.get(int(code), otherwise)


def success(status: str) -> bool:
    """Whether `status` means the run did what it was asked."""
    return STATUSES[status][0]


def exit_code(status: str, signum: int | None = None) -> int:
    """The command line's exit code for a run that ended with `status` (128 + the signal
    that interrupted it, SIGINT by default)."""
    if status == "interrupted" and signum is not None:
        return 128 + signum
    return STATUSES[status][1]


def message(status: str, at: str, last: str, *, resumable: bool = True, ended: str = "") -> str:
    """The sentence for the statuses every engine shares; `at` says where ("step 120" or
    "t = 3.5"), `last` what the run holds there ("loss 1e-3"), `ended` the engine's own
    sentence for the other statuses."""
    again = "; fastmf.resume() continues it" if resumable else ""
    if status == "interrupted":
        return f"interrupted (KeyboardInterrupt) at {at}; the state and history so far are kept, {last}{again}"
    if status == "stopped":
        return f"stopped by the callback at {at}; {last}{again}"
    if status == "time_limit":
        return f"stopped at the time limit at {at}; {last}{again}"
    if status == "running":
        return f"checkpoint at {at}; {last}{again}"
    return ended


def gd_message(status, n_iter, bad_step, loss, options, sigma_1, level=None, resumable=True) -> str:
    """How a GD run ended (split, direct or one run of a batch); `loss`: the last recorded
    loss (None if none), `level`: the converged level (`stages.converged_level`) in the
    user's units."""
    last = "no loss recorded" if loss is None else f"loss {loss:.6g}"
    if status == "converged":
        capped = "" if level is None or level >= options.tol else f" and <= {level:.6g} (1e-4 of Sigma's scale)"
        ended = f"converged: {last} <= tol {options.tol:g}{capped} at step {n_iter}"
    elif status == "max_iter":
        ended = f"reached max_iter = {options.max_iter} steps; {last}"
    elif status == "diverged":
        ended = _diverged(bad_step, n_iter, options, sigma_1)
    else:
        ended = ""
    at = f"step {n_iter} of {options.max_iter}" if status == "running" else f"step {n_iter}"
    return message(status, at, last, resumable=resumable, ended=ended)


def _diverged(bad_step, n_iter, options, sigma_1) -> str:
    lr = options.lr
    head = (
        f"diverged: the iterate went non-finite at step {bad_step} with lr = "
        f"{'a schedule, ' + repr(lr) if callable(lr) else format(lr, 'g')}; the returned state "
        f"is the last finite one (step {n_iter}). "
    )
    if options.precondition is not None:
        return head + (
            "ScaledGD's G + precondition I can become singular (precondition = 0 from a small start, or k > the "
            "rank of Sigma): use precondition > 0, or a smaller lr"
        )
    if not options.plain:
        return (
            head
            + f"the run is not plain GD ({'; '.join(theory.outside(options))}): use a smaller lr"
            + (", balance" * (options.balance > 0) + " or noise" * (options.noise > 0))
        )
    if not np.isfinite(sigma_1):
        return head + "use a smaller lr (or init_scale)"
    bound = 1.0 / (3.0 * sigma_1)
    if lr > bound:
        return head + f"GD from a small start is stable for lr <= 1 / (3 sigma_1) = {bound:.4g}"
    return head + (
        f"lr is within GD's stable range from a small start (lr <= 1 / (3 sigma_1) = {bound:.4g}), so the start "
        "was too large: use a smaller init_scale (or smaller U0, V0)"
    )


def batch_message(status: str, statuses, step: int) -> str:
    """How a batch of runs ended: the driver's `status`, and a tally of the runs' own statuses."""
    values, counts = np.unique(statuses, return_counts=True)
    tally = ", ".join(f"{count} {value}" for value, count in zip(values, counts, strict=True))
    if status in ("done", "max_iter"):
        return f"all {len(statuses)} runs ended: {tally}"
    how = message(status, f"step {step}", tally, resumable=False).split(";")[0]
    return f"{how}: {tally}; fastmf.resume() continues the runs still going"
