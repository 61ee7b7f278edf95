"""Old against new: the trajectories of compare.py sections 1, 2, 8 and 10, run by this tree's
fastmf and by another source tree's (a refactoring's "before"), alternated in one process.

Prints, for each workload, whether the two give bitwise the same numbers and the median
ratio of their times (new / old) over interleaved repeats. The old tree is imported under
the name ``fastmf_old`` from a temporary copy (its modules import each other relatively),
so both are loaded at once; each keeps its own Numba cache.

    git worktree add /tmp/fastmf-before <commit>
    python benchmarks/versions.py /tmp/fastmf-before [--repeats 7]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import fastmf
from fastmf.split import diagnostic_work


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


def section_1(pkg, case):
    Sigma, U0, V0, lr = case
    res = pkg.solve(Sigma, 16, lr, 5000, U0=U0, V0=V0)
    return [res.history[key] for key in sorted(res.history)] + [res.U, res.V]


def section_2(pkg, k):
    """The compressed kernel itself, 2e5 / k^2 steps with the loss and cheap diagnostics each step."""
    kernels = importlib.import_module(f"{pkg.__name__}._kernels")
    p = pkg.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
    start = pkg.solve(p, k, 0.1, 0, init_scale=1e-3, seed=0)
    X, Y = np.vstack([start.Up, start.L_U]), np.vstack([start.Vp, start.L_V])
    n = max(200, int(2e5 / k**2))
    out = [np.zeros(n + 2, np.int64), np.zeros((n + 2, kernels.N_KEYS)), np.full(kernels.N_INFO, -1, np.int64)]
    out[2][:4] = 0
    split = importlib.import_module(f"{pkg.__name__}.split")
    if hasattr(split, "plain_work"):  # the kernel of the GD variants: step sizes, variant slots, their work
        lrs, variant = importlib.import_module(f"{pkg.__name__}.recorder").plain_variant(X.dtype, 0.1)
        kernels.run_blocks(X, Y, p.s, lrs, variant, 0.0, n, n, 1, 0, np.empty_like(X), np.empty_like(Y),
                           *split.plain_work(X, Y), *diagnostic_work(k, k), *out)  # fmt: skip
    else:
        kernels.run_blocks(X, Y, p.s, 0.1, 0.0, n, n, 1, 0, np.empty_like(X), np.empty_like(Y), np.zeros((7, k, k)),
                           *diagnostic_work(k, k), *out)  # fmt: skip
    return [X, Y, *out]


def section_8(pkg, case):
    Sigma, U0, V0, lr = case
    res = pkg.solve(Sigma, 16, lr, 10, U0=U0, V0=V0, method="direct")
    return [res.history["loss"], res.history["imbalance"], res.U, res.V]


def section_10(pkg, every, runs):
    p = pkg.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    res = pkg.solve_batch(p, 10, 0.05, 2000, seeds=range(runs), record_every=every)
    return [np.asarray(getattr(res, name)) for name in ("n_iter", "status", "final_loss", "T1", "T0", "T_delta")]


def compare(label, workload, old, new, repeats):
    outputs, times = {}, {"old": [], "new": []}
    for pkg, name in ((old, "old"), (new, "new")):
        outputs[name] = workload(pkg)  # compiles or loads the kernels outside the timing
    for _ in range(repeats):
        for pkg, name in ((old, "old"), (new, "new")):
            t0 = time.perf_counter()
            workload(pkg)
            times[name].append(time.perf_counter() - t0)
    same = all(
        np.array_equal(a, b, equal_nan=a.dtype.kind == "f") for a, b in zip(outputs["old"], outputs["new"], strict=True)
    )
    ratio = np.median(np.array(times["new"]) / np.array(times["old"]))
    print(f"{label:44s} bitwise {'same' if same else 'DIFFERENT'}; new / old time {ratio:5.3f} "
          f"(medians {np.median(times['old']):.4f} s, {np.median(times['new']):.4f} s)")  # fmt: skip
    return same


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="a source tree of fastmf (its fastmf/ folder is imported as fastmf_old)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1000, help="seeds of the section 10 batch")
    args = ap.parse_args()
    old = import_old(args.old)
    dense, gaussian = dense_low_rank(4096, 16), np.random.default_rng(0).standard_normal((4096, 4096))
    rng = np.random.default_rng(0)
    U0, V0 = 1e-2 * rng.standard_normal((4096, 16)), 1e-2 * rng.standard_normal((4096, 16))
    direct = (gaussian, U0, V0, 0.05 / np.sqrt(4096))
    cases = {
        "1. end to end, 4096, k = 16, 5000 steps": lambda pkg: section_1(pkg, dense),
        **{f"2. compressed kernel, k = {k}": (lambda pkg, k=k: section_2(pkg, k)) for k in (10, 16, 32, 64)},
        "8. direct path, 4096, k = 16, 10 steps": lambda pkg: section_8(pkg, direct),
        **{f"10. batch, {args.runs} seeds, record_every = {every}": (lambda pkg, e=every: section_10(pkg, e, args.runs))
           for every in (1, 10)},
    }  # fmt: skip
    print(f"old: {old.__file__}\nnew: {fastmf.__file__}")
    results = [compare(label, workload, old, fastmf, args.repeats) for label, workload in cases.items()]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
