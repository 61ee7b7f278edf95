"""Old against new: the workloads of compare.py (end to end, the compressed step at several
widths and recording settings, the basis of a dense Sigma, the direct path, the batch), run by
this tree's fastmf and by another source tree's (a refactoring's "before"), alternated in one
process; optionally the import and first calls with an empty Numba cache, in fresh processes.

Prints, for each workload, the median times (per step where it times steps), their median
ratio (new / old) over interleaved repeats, and whether the two give bitwise the same numbers
or else their largest relative difference. The old tree is imported under the name
``fastmf_old`` from a temporary copy (its modules import each other relatively), so both are
loaded at once; each keeps its own Numba cache.

    git worktree add /tmp/fastmf-before <commit>
    python benchmarks/versions.py /tmp/fastmf-before [--repeats 7] [--only step] [--first-calls 5]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastmf


def import_old(tree: str):
    """The fastmf package of the source tree `tree`, imported as fastmf_old."""
    folder = tempfile.mkdtemp(prefix="fastmf-old-")
    shutil.copytree(os.path.join(tree, "fastmf"), os.path.join(folder, "fastmf_old"),
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    sys.path.insert(0, folder)
    return importlib.import_module("fastmf_old")


def dense_low_rank(m, k):
    rng = np.random.default_rng(0)
    s = np.geomspace(4.0, 1.0, k)
    Phi, Psi = (np.linalg.qr(rng.standard_normal((m, k)))[0] for _ in range(2))
    U0, V0 = 1e-3 * rng.standard_normal((m, k)), 1e-3 * rng.standard_normal((m, k))
    return (Phi * s) @ Psi.T, U0, V0, 0.2 / s[0]


def section_1(pkg, case, timed):
    Sigma, U0, V0, lr = case
    t0 = time.perf_counter()
    res = pkg.solve(Sigma, 16, lr, 5000, U0=U0, V0=V0)
    timed.append(time.perf_counter() - t0)
    return [res.history[key] for key in sorted(res.history)] + [res.U, res.V]


def step(pkg, k, steps, record_every, spectral_every, timed):
    """The compressed engine's steps alone (run.advance; start and set-up outside the timing):
    `steps` steps at k = r, recorded every `record_every` steps (None: never after step 0)."""
    p = pkg.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
    options = pkg.Options(k=k, lr=0.1, max_iter=10**9, record_every=record_every or 10**8,
                          spectral_every=spectral_every, init_scale=1e-3, seed=0)  # fmt: skip
    run = importlib.import_module(f"{pkg.__name__}.solver").split_or_direct(p, options)
    t0 = time.perf_counter()
    run.advance(steps)
    timed.append(time.perf_counter() - t0)
    history = run.history()
    return [*run.state(), *(history[key] for key in sorted(history))]


def basis(pkg, Sigma, timed):
    t0 = time.perf_counter()
    p = pkg.Problem(Sigma)
    timed.append(time.perf_counter() - t0)
    return [p.s, np.abs(p.left.lift(np.eye(p.rank))), np.abs(p.right.lift(np.eye(p.rank)))]


def section_8(pkg, case, timed):
    Sigma, U0, V0, lr = case
    t0 = time.perf_counter()
    res = pkg.solve(Sigma, 16, lr, 10, U0=U0, V0=V0, method="direct")
    timed.append(time.perf_counter() - t0)
    return [res.history["loss"], res.history["imbalance"], res.U, res.V]


def section_10(pkg, every, runs, timed):
    p = pkg.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    t0 = time.perf_counter()
    res = pkg.solve_batch(p, 10, 0.05, 2000, seeds=range(runs), record_every=every)
    timed.append(time.perf_counter() - t0)
    return [np.asarray(getattr(res, name)) for name in ("n_iter", "status", "final_loss", "T1", "T0", "T_delta")]


def _difference(a, b) -> float:
    """max |a - b| / max |b| (0 for equal arrays; inf for unequal ones that are not numbers)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return 0.0 if np.array_equal(a, b) else np.inf
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.shape != b.shape:
        return np.inf
    if np.array_equal(a, b, equal_nan=True):
        return 0.0
    scale = np.nanmax(np.abs(b)) if np.any(np.isfinite(b)) else 1.0
    return float(np.nanmax(np.abs(a - b)) / (scale or 1.0))


def compare(label, workload, old, new, repeats, per=1):
    """Interleaved repeats of `workload` (which times itself) on both trees: bitwise agreement or
    the largest relative difference, and the median times (per `per`: a step, say) and their ratio."""
    outputs, times = {}, {"old": [], "new": []}
    for pkg, name in ((old, "old"), (new, "new")):
        outputs[name] = workload(pkg, [])  # compiles or loads the kernels outside the timing
    for _ in range(repeats):
        for pkg, name in ((old, "old"), (new, "new")):
            workload(pkg, times[name])
    diff = max(_difference(a, b) for a, b in zip(outputs["new"], outputs["old"], strict=True))
    told, tnew = np.array(times["old"]) / per, np.array(times["new"]) / per
    agree = "bitwise same" if diff == 0 else f"differ by {diff:.1e} (relative)"
    unit, factor = ("us", 1e6) if per > 1 else ("s", 1.0)
    print(f"{label:52s} old {np.median(told) * factor:9.4f} {unit}, new {np.median(tnew) * factor:9.4f} {unit}: "
          f"new / old {np.median(tnew / told):5.3f}; {agree}")  # fmt: skip
    return diff


_FIRST_CALL = """
import time, sys
t0 = time.perf_counter()
import fastmf
t1 = time.perf_counter()
import numpy as np
p = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
if sys.argv[1] == "solve":
    fastmf.solve(p, 10, 0.05, 100, seed=0)
else:
    fastmf.solve_batch(p, 10, 0.05, 100, seeds=range(4))
print(t1 - t0, time.perf_counter() - t1)
"""


def first_calls(trees: dict, repeats: int):
    """Medians over fresh processes, the trees alternated: `import fastmf`, and the first solve
    and solve_batch with an empty Numba cache (a new NUMBA_CACHE_DIR each)."""
    times = {(name, what): [] for name in trees for what in ("import", "solve", "solve_batch")}
    for _ in range(repeats):
        for name, tree in trees.items():
            for call in ("solve", "solve_batch"):
                with tempfile.TemporaryDirectory() as cache:
                    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=tree)
                    out = subprocess.run([sys.executable, "-c", _FIRST_CALL, call], env=env, cwd=cache,
                                         capture_output=True, text=True, check=True)  # fmt: skip
                imported, first = map(float, out.stdout.split())
                times[name, "import"].append(imported)
                times[name, call].append(first)
    print(f"fresh processes, empty Numba cache, medians of {repeats} (import: of {2 * repeats}) [s]")
    for what in ("import", "solve", "solve_batch"):
        row = "   ".join(f"{name} {np.median(times[name, what]):6.2f}" for name in trees)
        print(f"   {'import fastmf' if what == 'import' else 'first ' + what:18s} {row}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="a source tree of fastmf (its fastmf/ folder is imported as fastmf_old)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1000, help="seeds of the section 10 batch")
    ap.add_argument("--only", default="", help="only the workloads whose label contains this")
    ap.add_argument("--first-calls", type=int, default=0, metavar="N",
                    help="also time import and the first calls in N fresh processes per tree")  # fmt: skip
    args = ap.parse_args()
    old = import_old(args.old)
    rng = np.random.default_rng(0)
    dense, gaussian = dense_low_rank(4096, 16), rng.standard_normal((4096, 4096))
    U0, V0 = 1e-2 * rng.standard_normal((4096, 16)), 1e-2 * rng.standard_normal((4096, 16))
    direct = (gaussian, U0, V0, 0.05 / np.sqrt(4096))
    n10, n16 = 20000, 5000
    cases = {
        "1. end to end, 4096, k = 16, 5000 steps": (lambda pkg, t: section_1(pkg, dense, t), 1),
        "2. step, k = 10, no records": (lambda pkg, t: step(pkg, 10, n10, None, 0, t), n10),
        "2. step, k = 10, loss + cheap every step": (lambda pkg, t: step(pkg, 10, n10, 1, 0, t), n10),
        "2. step, k = 16, every diagnostic every step": (lambda pkg, t: step(pkg, 16, n16, 1, 1, t), n16),
        **{f"2. step, k = {k}, loss + cheap every step": ((lambda pkg, t, k=k: step(pkg, k, 200, 1, 0, t)), 200)
           for k in (32, 64)},
        "basis, dense 4096 x 4096 of rank 16": (lambda pkg, t: basis(pkg, dense[0], t), 1),
        "8. direct path, 4096, k = 16, 10 steps": (lambda pkg, t: section_8(pkg, direct, t), 1),
        **{f"10. batch, {args.runs} seeds, record_every = {every}":
           ((lambda pkg, t, e=every: section_10(pkg, e, args.runs, t)), 1) for every in (1, 10)},
    }  # fmt: skip
    print(f"old: {old.__file__}\nnew: {fastmf.__file__}")
    for label, (workload, per) in cases.items():
        if args.only in label:
            compare(label, workload, old, fastmf, args.repeats, per)
    if args.first_calls:
        here = os.path.dirname(os.path.dirname(os.path.abspath(fastmf.__file__)))
        first_calls({"old": os.path.abspath(args.old), "new": here}, args.first_calls)


if __name__ == "__main__":
    main()
