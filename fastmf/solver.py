"""`solve` and `resume`: one GD run, on the engine that suits Sigma, driven by `fastmf.driver`.

`solve` builds the run's `Options` once, picks the engine (the split engine of
`fastmf.split`, or the direct path of `fastmf.direct`) and drives it; `resume` continues
any saved run (one run, a batch, or the gradient flow) bit for bit.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import scipy.sparse
from scipy.sparse.linalg import LinearOperator

from . import options as settings
from . import schedules
from ._validate import is_dask_array, positive_int
from .batch import resume_batch
from .direct import dense_sigma, direct_run, restored_run
from .driver import Control, drive
from .flow import resume_flow
from .init import checked_start, given_start, start
from .options import Options, merged
from .problem import Problem
from .result import BatchResult, FlowResult, SolveResult, load
from .split import SplitRun


def solve(
    Sigma, k=None, lr=None, max_iter=None, *, init_scale=None, seed=None, U0=None, V0=None, start=None, tol=None,
    record_every=None, spectral_every=None, delta=None, complement=None, method=None, balance=None, update=None,
    precondition=None, noise=None, init=None, options: Options | None = None, callback=None, progress=None,
    time_limit=None, checkpoint=None, checkpoint_every=None,
) -> SolveResult:  # fmt: skip
    """Constant-step GD on min 1/2 ||U V^T - Sigma||_F^2 from a random or given start.

    Runs U+ = U + lr R V, V+ = V + lr R^T U with R = Sigma - U V^T (Ye and Du 2021, eqs 2-3)
    exactly, in the singular basis of Sigma where it splits into eqs (6)-(9); the
    complement is compressed to k x k matrices by default (docs/maths.md section 3), so a step
    costs O(k^3) whatever m and n are. The quantities the proofs track are recorded along
    the way (docs/maths.md section 4, `fastmf._kernels.diagnostics`), and the stages detected.
    Any finite scale of Sigma runs as scale 1 does (the engines work in units of the power
    of 4 nearest sigma_1, which changes no bit: `fastmf.scaling`), and numbers below the
    smallest normal float are flushed to zero, so a step costs the same however long the
    run (docs/maths.md section 5).

    Parameters
    ----------
    Sigma : array_like, sparse matrix, LinearOperator or Problem
        The target (m x n). Anything but a Problem is passed to ``Problem(Sigma)``.
    k : int, optional
        Width of the factors, 1 <= k <= min(m, n); may differ from the rank r of Sigma.
        Default r (on the direct path, which never computes r, k is required).
    lr : float or "theory", optional
        Step size eta > 0; default 0.3 / sigma_1 (`fastmf.options.DEFAULTS`). GD from a
        small start is stable for lr <= 1 / (3 sigma_1). "theory": Theorem 1.1's
        eta = sigma_d eps^2 / (d sigma_1^3) (`fastmf.theory`).
    max_iter : int, optional
        Number of steps (>= 0); default 10000.
    init_scale : float, "theory" or None
        Standard deviation eps of the iid Gaussian entries of U0 and V0; default
        1e-3 * sqrt(sigma_1 / (m + n)), which makes ||U0||_op about 1e-3 sqrt(sigma_1)
        whatever the size (the theory's eps also scales as 1 / sqrt(m + n)). "theory":
        Theorem 1.1's eps = sigma_d / sqrt(d^3 sigma_1 (m + n)). Ignored when U0 and V0
        are given.
    seed : int, sequence of int, numpy.random.SeedSequence or None
        Seed of the initialization (see `fastmf.init` for the streams it feeds).
    U0, V0 : array_like, optional
        Initial factors (m x k, n x k), both or neither; not modified.
    start : SplitStart, optional
        The start in split coordinates (`fastmf.SplitStart`), for any size; not with U0, V0.
    tol : float, optional
        Default 0. Stop ("converged") at the first recorded step whose loss is <= tol and also within
        1e-4 of the way from 1/2 ||Sigma||_F^2 (the loss of U = V = 0) down to the best loss
        of width k, 1/2 sum_{i > k} s_i^2 (`stages.converged_level`; the direct path takes
        that best loss as 0), so that a tol large for the scale of Sigma cannot stop a run
        at step 0. 0 disables the early stop unless the loss is exactly 0.
    record_every : int, optional
        Record the diagnostics every this many steps (and at the last step). Default: every
        step up to 2**17 steps, then a stride that doubles each time the step reaches 2**17
        times it, the history thinned to it (`fastmf.options.record_stride`), so that a run's
        history (and checkpoint) keeps at most about 2**17 records however long it runs.
    spectral_every : int, optional
        Also record the spectral diagnostics (sigma_min_A, lambda_min_P, P_op, J_op, K_op,
        E_op, sigma_min_Up, sigma_min_Vp, lambda_max_AAt_2S, grad_fro) at the recorded steps
        that are multiples of this (and the last); 0 never.
        Elsewhere they are NaN. Default record_every when the rank r of Sigma is at most
        k; when r > k (a spectral record costs O(r^3), a step O((r + k) k^2)), every
        ceil((r / k)^2) records, so that they cost about what the steps cost.
    delta : float, optional
        Loss level whose first recorded step is `stages.T_delta`; default tol (if > 0).
    complement : {"compressed", "full"}, optional
        "full" keeps the complement as m x k and n x k matrices (one pass over them per
        step); both give the same numbers to rounding.
    method : {"auto", "split", "direct"}, optional
        "split": the engine above. "direct": eqs (2)-(3) on a dense Sigma itself, one pass
        over Sigma per step (4 m n k flops), no basis, the loss and the imbalance only (the
        result's `problem`, `Up`, ... are None). "auto" (default): split,
        unless Sigma is a dense array whose exact basis a sketch of at most
        max(32, max_iter k / 2) columns does not find, so that the basis would cost more
        than the whole direct run (`Problem.if_low_rank`), or whose rank r makes the split
        run's records (O(r^2) each) cost more than the direct run's steps (4 m n k flops).
    balance, update, precondition, noise : optional
        The GD variants: see `fastmf.Options`.
    init : {"gaussian", "balanced", "symmetric"}, optional
        The law of the random start: see `fastmf.Options`.
    options : Options, optional
        Settings to start from (`fastmf.Options`); the arguments above that are given
        replace its fields.
    callback : callable, optional
        ``callback(state) -> bool``, called between chunks of the compiled loop (about
        every 0.05 s, and at each checkpoint) with a `fastmf.monitor.RunState`: the step,
        the latest recorded diagnostics and the stage. Returning True stops the run
        (status "stopped").
    progress : bool or None
        A tqdm progress bar with the step, loss and stage: None (default) shows one on
        runs longer than a second when stderr is a terminal and tqdm is installed.
    time_limit : float, optional
        Stop after this many wall-clock seconds (status "time_limit").
    checkpoint : str or os.PathLike, optional
        Save the run to this .npz file every `checkpoint_every` steps and when it ends,
        however it ends (Ctrl-C included); `fastmf.resume` continues it bit for bit.
        Each write replaces the file atomically, so a crash mid-write leaves the last one.
        A direct-path file does not hold Sigma: resume it with ``resume(path, Sigma=...)``.
    checkpoint_every : int, optional
        Steps between checkpoints; default: only at the end.


    Returns
    -------
    SolveResult
        The same type whatever engine ran: `status`, `message`, `success`, `n_iter`,
        `history`, `stages`, the resolved `options`, the final U, V (on the split engine
        also the small final state, U and V rebuilt on first access, and `invariants`, the
        run's extremes of what the proofs bound), `save` and `to_frame`.
    """
    given = {"k": k, "lr": lr, "max_iter": max_iter, "init_scale": init_scale, "seed": seed, "tol": tol,
             "record_every": record_every, "spectral_every": spectral_every, "delta": delta,
             "complement": complement, "method": method, "balance": balance, "update": update,
             "precondition": precondition, "noise": noise, "init": init}  # fmt: skip
    options = merged(Options, options, given)
    control = Control(callback, progress, time_limit, checkpoint, checkpoint_every)
    engine = split_or_direct(*given_start(Sigma, options, U0, V0, start))
    return drive(engine, control, engine.max_iter, "step")


def split_or_direct(Sigma, options: Options, U0=None, V0=None):
    """The engine of a GD run (`SplitRun` or `DirectRun`), its options resolved and its start drawn."""
    method = options.method
    if method == "auto":
        method, Sigma = _choose(Sigma, options)
    if method == "direct":
        return direct_run(dense_sigma(Sigma), options, U0, V0)
    problem = Sigma if isinstance(Sigma, Problem) else Problem(Sigma)
    options = options.resolve(problem.shape, problem.sigma_1, problem.s, U0)
    U0, V0 = checked_start(problem.shape, options.k, U0, V0)
    return SplitRun(problem, *start(problem, options, U0, V0), options)


# Cost of a split-engine record per entry of an r x r matrix, in flops of a BLAS product: the
# loss and the stage tests pass over E = Up Vp^T and P a few times in scalar, partly strided
# loops (about 6 ns an entry against about 0.2 ns a flop for the direct path's BLAS products,
# 2-core AMD EPYC).
_RECORD_FLOPS_PER_ENTRY = 30


def _choose(Sigma, options: Options):
    """("split" or "direct", Sigma or its Problem) for method="auto" (see `solve`): split when
    a sketch of at most max(32, max_iter k / 2) columns finds the exact basis (cheaper than
    the direct run) and the split run, records included, costs less than the direct one;
    split when k is not given (its default, the rank of Sigma, needs the basis)."""
    if isinstance(Sigma, (Problem, LinearOperator)) or scipy.sparse.issparse(Sigma) or is_dask_array(Sigma):
        return "split", Sigma
    if options.k is None:
        return "split", Sigma
    k = options.k
    max_iter = settings.DEFAULTS.max_iter if options.max_iter is None else options.max_iter
    record_every = options.record_every or 1
    m, n = np.shape(Sigma)[:2] if np.ndim(Sigma) == 2 else (1, 1)  # Problem checks the rest
    direct = 4 * m * n * k  # flops of a direct step
    r_max = int(np.sqrt(direct * record_every / _RECORD_FLOPS_PER_ENTRY))  # past it, records cost more
    problem = Problem.if_low_rank(Sigma, min(max(32, max_iter * k // 2), max(r_max, 32)))
    if problem is None:
        return "direct", Sigma
    records = _RECORD_FLOPS_PER_ENTRY * problem.rank**2 / record_every  # a split step costs less than these
    return ("direct", Sigma) if records > direct else ("split", problem)


def resume(
    source, max_iter=None, *, t_max=None, Sigma=None, lr=None, callback=None, progress=None, time_limit=None,
    checkpoint=None, checkpoint_every=None,
):  # fmt: skip
    """Continue a run saved by ``checkpoint=...`` or ``result.save()``: one GD run (either
    engine), a batch of runs (`fastmf.solve_batch`) or a gradient flow.

    The continued run gives exactly the numbers (state, history, stages) of a run that
    was never stopped, with the settings saved in the file (`result.options`).

    Parameters
    ----------
    source : str, os.PathLike or a result
        A saved run (read with ``allow_pickle=False``) or a result in memory whose status
        is "running" (a checkpoint), "interrupted", "stopped", "time_limit", "max_iter"
        or "t_max".
    max_iter : int, optional
        GD: the total number of steps, counted from step 0; default the saved run's.
    t_max : float, optional
        Flow: the end of the time interval; default the saved run's. A new one continues the
        flow exactly, but not bit for bit a flow started with it (`fastmf.flow.resume_flow`).
    Sigma : array_like, optional
        The dense Sigma of a direct-path run (its file does not hold it; checked against
        the saved fingerprint).
    lr : callable, optional
        The lr schedule of a GD run that used its own callable (a file holds only its values
        at the recorded steps, "lr" in the history, which it is checked against); the
        built-in schedules of `fastmf.schedules` are rebuilt from the file.
    callback, progress, time_limit
        As in `solve`, for this call.
    checkpoint : str, os.PathLike or False, optional
        Where to keep saving the run; default: back into `source` when it is a file (every
        `checkpoint_every` of the saved run's, unless given); False: nowhere.
    checkpoint_every : int, optional
        Units of work between checkpoints (default: at the end only).

    Returns
    -------
    SolveResult, BatchResult or FlowResult
        As the saved run's.
    """
    saved = source if isinstance(source, (SolveResult, FlowResult, BatchResult)) else load(source)
    ended = set(saved.status) if isinstance(saved, BatchResult) else {saved.status}
    if ended <= {"converged", "diverged", "failed"}:
        raise ValueError(
            f"this run has ended ({saved.message}); there is nothing to resume. "
            "Start a new run (for a converged run, with a smaller tol or target_loss)"
        )
    if checkpoint is None and isinstance(source, (str, os.PathLike)):
        checkpoint = os.fspath(source)
        checkpoint_every = checkpoint_every or saved.checkpoint_every
    control = Control(callback, progress, time_limit, checkpoint or None, checkpoint_every)
    if isinstance(saved, FlowResult):
        if Sigma is not None:
            raise ValueError("a flow saves Sigma's basis: drop Sigma")
        if max_iter is not None or lr is not None:
            raise ValueError("a gradient flow resumes to a time: pass t_max, not max_iter or lr")
        return resume_flow(saved, t_max, control)
    if t_max is not None:
        raise ValueError("a GD run resumes to a step: pass max_iter, not t_max")
    if Sigma is not None and (isinstance(saved, BatchResult) or saved.method == "split"):
        raise ValueError("this run saved Sigma's basis (only a direct-path run needs Sigma again): drop Sigma")
    if not isinstance(saved, BatchResult) and not saved.resume_state:
        raise ValueError(
            "this result holds no state of its kernel to go on from (one run of a batch): resume the batch "
            "itself, or run it again with fastmf.solve(..., seed=...)"
        )
    if max_iter is not None:
        max_iter = positive_int(max_iter, "max_iter", minimum=0)
        n_iter = int(np.max(saved.n_iter))
        if max_iter < n_iter:
            raise ValueError(f"max_iter must be at least the saved run's step {n_iter}, got {max_iter}")
    if isinstance(saved, BatchResult):
        return resume_batch(saved, max_iter, control, lr)
    options = saved.options if max_iter is None else dataclasses.replace(saved.options, max_iter=max_iter)
    if lr is not None or isinstance(options.lr, schedules.Custom):
        history = saved.history
        options = dataclasses.replace(options, lr=schedules.again(options.lr, lr, history["step"], history.get("lr")))
    if saved.method == "direct":
        if Sigma is None:
            raise ValueError("a direct-path run does not save Sigma: pass it again, resume(path, Sigma=Sigma)")
        engine = restored_run(dense_sigma(Sigma), saved, options)
    else:
        engine = SplitRun(saved.problem, saved.left, saved.right, options)
        engine.restore(saved.history, saved.resume_state)
    return drive(engine, control, options.max_iter, "step")
