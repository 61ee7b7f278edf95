"""Ctrl-C and max_iter against a batch of runs: how fast `solve_batch` answers SIGINT, and what
max_iter = 10**8 costs runs that converge early.

1. A 256-seed, 10**7-step `solve_batch` in a fresh process receives SIGINT after 3 s; the
   time from the signal to the returned batch (its status "interrupted") is printed, for
   several repeats.
2. 64 runs that converge by step ~220, with history, run with max_iter = 1000 and 10**8,
   alternated in this process: the median times and their ratio.

    python benchmarks/interrupt.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import numpy as np

import fastmf

_BATCH = """
import time, numpy as np, fastmf
problem = fastmf.Problem.from_spectrum(np.geomspace(3.0, 1.0, 8), 10**6, 10**6)
fastmf.solve_batch(problem, 8, 0.1, 3, seeds=[0])
print("ready", flush=True)
batch = fastmf.solve_batch(problem, 8, 0.1, 10**7, seeds=range(256))
print(time.perf_counter(), batch.resume_state["step"], batch.status[0], flush=True)
"""


def sigint(repeats):
    latencies = []
    for _ in range(repeats):
        proc = subprocess.Popen([sys.executable, "-c", _BATCH], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        time.sleep(3.0)
        sent = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in both processes (Linux)
        proc.send_signal(signal.SIGINT)
        answered, step, status = proc.communicate()[0].split()
        latencies.append(float(answered) - sent)
        print(f"   {status} at step {step}: answered in {latencies[-1] * 1e3:.0f} ms")
    median, worst = np.median(latencies) * 1e3, max(latencies) * 1e3
    print(f"1. SIGINT to a 256-seed batch: median {median:.0f} ms, max {worst:.0f} ms")


def max_iter_cost(repeats):
    problem = fastmf.Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 1000, 800)
    kw = dict(seeds=range(64), tol=1e-6, init_scale=0.1, history=True)
    fastmf.solve_batch(problem, 4, 0.1, 5, **kw)
    times = {1000: [], 10**8: []}
    for _ in range(repeats):
        for max_iter in times:
            t0 = time.perf_counter()
            batch = fastmf.solve_batch(problem, 4, 0.1, max_iter, **kw)
            times[max_iter].append(time.perf_counter() - t0)
    a, b = (np.median(v) for v in times.values())
    print(f"2. 64 runs converging by step {batch.n_iter.max()}: max_iter 1000 {a * 1e3:.1f} ms, 10**8 {b * 1e3:.1f} ms "
          f"(ratio {b / a:.3f}); losses kept: {batch.losses.shape}")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sigint(args.repeats)
    max_iter_cost(2 * args.repeats + 1)
