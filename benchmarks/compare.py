"""Speed of fastmf against a plain NumPy GD loop, measured in one process.

    python benchmarks/compare.py            # every measurement
    python benchmarks/compare.py --quick    # smaller repeats, for a smoke test
    python benchmarks/compare.py --only 7   # one measurement (numbered below)

1. End to end (basis included): the same trajectory (same Sigma, U0, V0, lr, loss every
   step) in a NumPy loop of eqs (2)-(3) and in `fastmf.solve` (its default engine),
   m = n = 4096, k = r = 16, 5000 steps. The NumPy loop is timed on its first
   --numpy-steps steps and scaled to 5000 (it costs the same every step); the two
   trajectories are checked to agree.
2. The compressed kernel's cost per step at k = r = 10, 16, 32, 64 (spectrum problems),
   with the loss recorded every step and never.
3. A spectrum problem with m = n = 10**9, k = 32, 10**5 steps: wall time and peak memory
   of a fresh process (imports and loading the cached kernels included).
4. Compilation latency: import and first `solve` in a fresh process with an empty Numba
   cache (NUMBA_CACHE_DIR set to a new folder), then again with that cache filled.
5. Gradient flow on a spectrum problem with m = n = 10**6, k = 32, to loss 1e-12.
6. The cost of the diagnostics: kappa = 4, k = 10, eps = 1e-4, lr = 0.1 / sigma_1, 3000
   steps recorded every step, everything (spectral_every=1) and spectral_every=100,
   against the loss-and-cheap-diagnostics run (spectral_every=0).
7. The cost of what runs between chunks: k = 10, 2 * 10**5 steps on a 10**6 spectrum,
   recorded every 100 steps, bare against a callback at every chunk, and against a
   checkpoint every 20000 steps (10 atomic writes with fsync); and the wall time of a
   fresh `fastmf run` process for 100 steps (start-up, imports, cached kernels, writes).

8. The direct path head to head: one GD step of eqs (2)-(3) with the loss, on a dense
   Gaussian Sigma (full rank, so no engine has a shortcut), m = n = 4096, k = 16: a
   NumPy loop, PyTorch and a jitted JAX loop (lax.scan, float64) when installed, and
   `solve(..., method="direct")`, all from the same U0, V0, checked to agree after 10
   steps; per-step medians and the memory traffic against one read of Sigma.
9. BLAS backends (FASTMF_BLAS = openblas, mkl, loops), each in a fresh process: the
   compressed step at k = 10, 32, 64 (10**6 spectrum, loss every step) and the direct
   step at m = n = 1024 and 4096, k = 16; the library and threads each ran with.
10. Many seeds: `solve_batch`, 10,000 seeds at d = k = 10 on a 10**6 spectrum, 2000
    steps a run, recorded every step and every 10 steps; then with 1 thread and as
    batches of one run, checked bit for bit against the full batch.
11. Sigma beyond memory: a 20,000 x 20,000 dask array of rank 8 (X Y^T, made chunk by
    chunk from thin factors, chunks of 2000 x 2000), in a fresh process: the basis by
    Dask's svd_compressed (time, peak memory against the 3.2 GB Sigma would take), its
    singular values against the exact ones of X Y^T, and a 2000-step run on it.
12. A sweep on Dask: the runs of section 10 (10,000 seeds, record_every=10) as
    `fastmf.sweep` on a LocalCluster of one process per core, tasks of 64 runs, rows to a
    CSV table, against `solve_batch` in this process; the rows checked against it bit for
    bit.
13. Thread scaling, at 1, 2, 4, ... threads up to the cores: the batch kernel (2048 seeds of
    section 10, record_every=10; Numba threads) and 20 direct steps (4096 x 4096, k = 16;
    BLAS threads, set with threadpoolctl), medians of repeats and the speed-up over 1 thread.
14. Long runs, far past convergence (lr = 0.0125, init_scale = 1e-6, record_every=100): the
    time of 10**5 steps against 10 times that of the first 10**4 (a ratio near 1 means a step
    costs the same forever; subnormal numbers make it grow on many Intel CPUs), and the
    number of subnormal entries in the final state. The compressed engine on a 10**9
    spectrum (k = 32), the full complement on a 300 x 200 one (k = 16), solve_batch (32
    seeds, the 10**9 spectrum with k = 16) and the direct path (a 200 x 150 Sigma of rank 3
    with zero rows, whose rows of U and V outside its support decay to 0).
15. The scikit-learn estimator on noisy data: `GradientDescentMF(10)` against
    `TruncatedSVD(10, algorithm="randomized")` on standard_normal((3000, 1000)) and on a
    rank-10 signal (singular values 10..1 times sqrt(3000)) plus unit noise: medians of 5 fits
    after a warm-up, the errors above the optimum, and the steps GD needs to match
    TruncatedSVD's error exactly.
16. The GD variants side by side (balancing regularizer, alternating updates, ScaledGD,
    perturbed GD, against plain GD): for kappa = 1, 10, 100 (s = geomspace(kappa, 1, 10)),
    d = k = 10, m = n = 10**6, 100 seeds each by `solve_batch`, the steps to loss 1e-10
    (median and range), the imbalance ||U^T U - V^T V||_F at the end (median) and the wall
    time; then the cost of a step of each variant against plain GD's (`solve`, compressed, k
    = 10, loss every step; and `solve_batch` per run-step), medians of repeats.

17. Distance to the machine's limit: the FMA peak of one core, measured (a Numba loop of 64
    independent multiply-adds held in registers, vectorized with FMA contraction), DGEMM's
    speed (OpenBLAS through NumPy, all threads), and the GF/s each kernel reaches, from its
    flops counted by hand (below each row) over its median time, against the peak of the
    threads it ran on.

The machines this runs on are shared: timings are medians of repeats spread over time,
with the minimum beside them as the quiet-machine figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

import fastmf
from fastmf import _kernels as K
from fastmf.recorder import plain_variant
from fastmf.solver import split_or_direct
from fastmf.split import diagnostic_work, plain_work


def numpy_gd(Sigma, U, V, lr, steps):
    losses = np.empty(steps + 1)
    for t in range(steps + 1):
        R = Sigma - U @ V.T
        losses[t] = 0.5 * np.sum(R * R)
        if t < steps:
            U, V = U + lr * (R @ V), V + lr * (R.T @ U)
    return losses, U, V


def end_to_end(m, k, steps, numpy_steps, repeats):
    rng = np.random.default_rng(0)
    s = np.geomspace(4.0, 1.0, k)
    Phi = np.linalg.qr(rng.standard_normal((m, k)))[0]
    Psi = np.linalg.qr(rng.standard_normal((m, k)))[0]
    Sigma = (Phi * s) @ Psi.T
    U0, V0 = 1e-3 * rng.standard_normal((m, k)), 1e-3 * rng.standard_normal((m, k))
    lr = 0.2 / s[0]
    fastmf.solve(Sigma[:64, :64], 4, lr, 10, seed=0)  # compile (or load from cache) outside the timing

    t_np = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss_np, U_np, V_np = numpy_gd(Sigma, U0, V0, lr, numpy_steps)
        t_np.append((time.perf_counter() - t0) / numpy_steps)
    t_fm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fastmf.solve(Sigma, k, lr, steps, U0=U0, V0=V0)
        t_fm.append(time.perf_counter() - t0)
    check = fastmf.solve(Sigma, k, lr, numpy_steps, U0=U0, V0=V0)
    loss_err = np.max(np.abs(check.history["loss"] - loss_np) / loss_np)
    u_err = np.linalg.norm(check.U - U_np) / np.linalg.norm(U_np)
    numpy_total = np.median(t_np) * steps
    fm_total = np.median(t_fm)
    print(f"\n1. end to end, m = n = {m}, k = r = {k}, {steps} steps, loss every step ({res.status})")
    print(
        f"   numpy loop : {np.median(t_np) * 1e3:8.2f} ms/step (median of {repeats} x {numpy_steps} steps) "
        f"-> {numpy_total:8.2f} s for {steps} steps (scaled)"
    )
    print(f"   fastmf     : {fm_total:8.4f} s end to end, basis included (median of {repeats})")
    print(f"   ratio      : {numpy_total / fm_total:8.0f}x")
    print(f"   agreement over {numpy_steps} steps: loss rel {loss_err:.1e}, U rel {u_err:.1e}")


@njit(cache=True)
def straightforward_steps(X, Y, s, lr, n, Xw, Yw):
    """The stacked step (docs/maths.md section 3) as a first, plainly written Numba loop, for reference."""
    rows_x, k = X.shape
    rows_y = Y.shape[0]
    r = s.shape[0]
    for _ in range(n):
        M = np.zeros((k, k))
        N = np.zeros((k, k))
        for i in range(rows_y):
            for a in range(k):
                for b in range(k):
                    M[a, b] += Y[i, a] * Y[i, b]
        for i in range(rows_x):
            for a in range(k):
                for b in range(k):
                    N[a, b] += X[i, a] * X[i, b]
        for i in range(rows_x):
            for b in range(k):
                acc = X[i, b] + (lr * s[i] * Y[i, b] if i < r else 0.0)
                for a in range(k):
                    acc -= lr * X[i, a] * M[a, b]
                Xw[i, b] = acc
        for i in range(rows_y):
            for b in range(k):
                acc = Y[i, b] + (lr * s[i] * X[i, b] if i < r else 0.0)
                for a in range(k):
                    acc -= lr * Y[i, a] * N[a, b]
                Yw[i, b] = acc
        X, Xw = Xw, X
        Y, Yw = Yw, Y


def kernel_step(ks, repeats):
    print(
        "\n2. compressed kernel, one step (r = k, spectrum problem) [us/step]: median (min) of "
        f"{3 * repeats} interleaved runs,\n   against the same step as a plainly written Numba loop (no loss);"
        " 'loss every step' records the loss and the cheap diagnostics"
    )
    print(f"   {'k':>4} {'loss every step':>18} {'no loss':>18} {'plain loop':>18} {'loop / no loss':>15}")
    cases = []
    for k in ks:
        p = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
        start = fastmf.solve(p, k, 0.1, 0, init_scale=1e-3, seed=0)
        X0, Y0 = np.vstack([start.Up, start.L_U]), np.vstack([start.Vp, start.L_V])
        n = max(200, int(2e5 / k**2))  # short enough that nothing underflows to subnormals
        for every in (1, n + 1, 0):  # 0: the plain loop
            cases.append((k, every, n, p.s, X0, Y0))
    times = {(k, every): [] for k, every, *_ in cases}
    for *_, s, X0, Y0 in cases:  # compile outside the timing
        straightforward_steps(X0.copy(), Y0.copy(), s, 0.1, 1, np.empty_like(X0), np.empty_like(Y0))
    for _ in range(3 * repeats):
        for k, every, n, s, X0, Y0 in cases:
            X, Y = X0.copy(), Y0.copy()
            Xw, Yw = np.empty_like(X), np.empty_like(Y)
            work = diagnostic_work(k, k)
            out = [np.zeros(n + 2, np.int64), np.zeros((n + 2, K.N_KEYS)), np.full(K.N_INFO, -1, np.int64)]
            out[2][:4] = 0
            t0 = time.perf_counter()
            if every:
                K.run_blocks(X, Y, s, *plain_variant(X.dtype, 0.1), 0.0, n, n, every, 0, Xw, Yw, *plain_work(X, Y),
                             *work, *out, None)  # fmt: skip
            else:
                straightforward_steps(X, Y, s, 0.1, n, Xw, Yw)
            times[k, every].append((time.perf_counter() - t0) / n * 1e6)
    for k in ks:
        row = [v for (kk, _), v in times.items() if kk == k]
        ratio = np.median(np.array(row[2]) / np.array(row[1]))
        print(
            "   " + f"{k:>4}" + "".join(f"{np.median(v):>11.2f} ({np.min(v):5.2f})" for v in row) + f"{ratio:>14.2f}x"
        )


# Peak memory from VmHWM (Linux): ru_maxrss would also count the parent's pages copied by fork.
_HUGE = """
import time, json
t0 = time.perf_counter()
import numpy as np, fastmf
p = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 32), 10**9, 10**9)
res = fastmf.solve(p, 32, 0.2, {steps}, init_scale=1e-6, seed=0, record_every=100)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(json.dumps(dict(seconds=time.perf_counter() - t0, status=res.status, loss=res.loss,
                      peak_mib=int(hwm) / 1024)))
"""


def huge(steps):
    out = subprocess.run([sys.executable, "-c", _HUGE.format(steps=steps)], capture_output=True, text=True, check=True)
    d = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n3. spectrum problem m = n = 10**9, k = 32, {steps} steps (fresh process, imports included)")
    print(f"   {d['seconds']:.2f} s, peak RSS {d['peak_mib']:.0f} MiB, status {d['status']}, loss {d['loss']:.3e}")


_LATENCY = """
import time
t0 = time.perf_counter()
import numpy as np, fastmf
t1 = time.perf_counter()
fastmf.solve(fastmf.Problem.from_spectrum(np.array([2.0, 1.0], np.{dtype}), 50, 40), 2, 0.1, 5, seed=0)
print(t1 - t0, time.perf_counter() - t1)
"""


def latency():
    print("\n4. compilation latency, fresh process: import / first solve [s]")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for dtype in ("float64", "float32"):
            for label in ("empty cache", "cached"):
                out = subprocess.run(
                    [sys.executable, "-c", _LATENCY.format(dtype=dtype)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                imp, first = map(float, out.stdout.split())
                print(f"   {dtype}, {label:11s}: {imp:5.2f} / {first:5.2f}")


def flow_large(repeats):
    p = fastmf.Problem.from_spectrum(np.geomspace(2.0, 1.0, 32), 10**6, 10**6)
    fastmf.gradient_flow(p, 32, 1.0, seed=0)  # compile outside the timing
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fastmf.gradient_flow(p, 32, 500.0, seed=0, target_loss=1e-12)
        times.append(time.perf_counter() - t0)
    print(
        f"\n5. gradient flow, spectrum m = n = 10**6, k = 32, to loss 1e-12 ({res.status} at t = {res.t:.2f}, "
        f"{res.nfev} right-hand sides)"
    )
    print(f"   {np.median(times):.3f} s (median of {repeats})")


def diagnostics_cost(repeats):
    s = np.geomspace(4.0, 1.0, 10)
    p = fastmf.Problem.from_spectrum(s, 1000, 1000)
    cases = {"loss only (spectral_every=0)": 0, "everything every step": 1, "spectral_every=100": 100}
    fastmf.solve(p, 10, 0.1 / s[0], 5, seed=0)
    times = {label: [] for label in cases}
    for _ in range(repeats):
        for label, every in cases.items():
            t0 = time.perf_counter()
            res = fastmf.solve(p, 10, 0.1 / s[0], 3000, init_scale=1e-4, seed=0, spectral_every=every, delta=1e-10)
            times[label].append(time.perf_counter() - t0)
    base = np.median(times["loss only (spectral_every=0)"])
    print(f"\n6. diagnostics, kappa = 4, k = 10, 3000 steps recorded every step (median of {repeats}, interleaved)")
    for label, v in times.items():
        print(f"   {label:30s} {np.median(v) / 3000 * 1e6:7.2f} us/step  {np.median(v) / base:5.2f}x")
    st = res.stages
    print(
        f"   stages: T1 = {st.T1}, T0 = {st.T0}, T_1e-10 = {st.T_delta}; rate {st.rate:.4f} per step "
        f"(theorem {st.rate_theory:.4f})"
    )


def hooks_cost(repeats):
    p = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    kw = dict(k=10, lr=0.025, max_iter=2 * 10**5, init_scale=1e-4, seed=0, record_every=100, progress=False)
    fastmf.solve(p, **(kw | {"max_iter": 5}))
    calls = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "bare": {},
            "callback every chunk": {"callback": lambda state: calls.append(state.step)},
            "checkpoint every 20000": {"checkpoint": os.path.join(tmp, "c.npz"), "checkpoint_every": 20000},
        }
        times = {label: [] for label in cases}
        for _ in range(repeats):
            for label, extra in cases.items():
                t0 = time.perf_counter()
                fastmf.solve(p, **kw, **extra)
                times[label].append(time.perf_counter() - t0)
        base = np.median(times["bare"])
        print(f"\n7. between chunks, k = 10, 2e5 steps (median of {repeats}, interleaved)")
        for label, v in times.items():
            print(f"   {label:24s} {np.median(v):6.3f} s  {np.median(v) / base:5.3f}x")
        print(f"   ({len(calls) // repeats} callback calls a run)")
        cli = [sys.executable, "-m", "fastmf", "run", "--spectrum", "2,1", "--shape", "1000x1000", "--max-iter", "100",
               "--seed", "0", "-q", "-o", os.path.join(tmp, "r.npz")]  # fmt: skip
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cli, check=True)
            walls.append(time.perf_counter() - t0)
        print(f"   fresh 'fastmf run' process, 100 steps: {np.median(walls):.2f} s (min {min(walls):.2f})")


def _torch_steps(Sigma, U, V, lr, steps):
    import torch

    S, U, V = (torch.from_numpy(a) for a in (Sigma, U, V))
    losses = []
    for _ in range(steps):
        R = S - U @ V.T
        losses.append(0.5 * float(torch.sum(R * R)))
        U, V = U + lr * (R @ V), V + lr * (R.T @ U)
    return np.array(losses), U.numpy()


def _jax_runner(lr, steps):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def step(carry, _):
        S, U, V = carry
        R = S - U @ V.T
        return (S, U + lr * (R @ V), V + lr * (R.T @ U)), 0.5 * jnp.vdot(R, R)

    @jax.jit
    def run(S, U, V):
        (_, U, V), losses = jax.lax.scan(step, (S, U, V), None, length=steps)
        return losses, U

    def call(Sigma, U, V):
        losses, U = jax.block_until_ready(run(jnp.asarray(Sigma), jnp.asarray(U), jnp.asarray(V)))
        return np.asarray(losses), np.asarray(U)

    return call


def direct_head_to_head(m, k, steps, repeats):
    rng = np.random.default_rng(0)
    Sigma = rng.standard_normal((m, m))
    U0, V0 = 1e-2 * rng.standard_normal((m, k)), 1e-2 * rng.standard_normal((m, k))
    lr = 0.05 / np.sqrt(m)  # about 0.1 / sigma_1 (sigma_1 of a Gaussian square matrix ~ 2 sqrt(m))

    def ours(n):
        res = fastmf.solve(Sigma, k, lr, n, U0=U0, V0=V0, method="direct")
        return res.history["loss"][:n], res.U

    def _numpy(n):
        losses, U, _ = numpy_gd(Sigma, U0, V0, lr, n)
        return losses[:n], U

    contenders = {"numpy loop": _numpy}
    try:
        import torch  # noqa: F401

        contenders["pytorch (cpu)"] = lambda n: _torch_steps(Sigma, U0, V0, lr, n)
    except ImportError:
        print("   (pytorch not installed)")
    try:
        runners = {n: _jax_runner(lr, n) for n in (10, steps)}
        contenders["jax jit (cpu)"] = lambda n: runners[n](Sigma, U0, V0)
    except ImportError:
        print("   (jax not installed)")
    contenders["fastmf direct"] = ours
    print(f"\n8. direct path, m = n = {m}, k = {k}, Gaussian Sigma, loss every step, {steps} steps a repeat")
    reference = _numpy(10)
    for name, f in contenders.items():
        losses, U = f(10)  # also compiles JAX and loads the Numba kernels
        err = max(
            np.max(np.abs(losses - reference[0]) / reference[0]),
            np.linalg.norm(U - reference[1]) / np.linalg.norm(reference[1]),
        )
        contenders[name] = (f, err)
    times = {name: [] for name in contenders}
    for _ in range(repeats):  # interleaved, so that a noisy moment hits every contender alike
        for name, (f, _) in contenders.items():
            t0 = time.perf_counter()
            f(steps)
            times[name].append((time.perf_counter() - t0) / steps)
    ours_t = np.median(times["fastmf direct"])
    for name, (_, err) in contenders.items():
        t = np.median(times[name])
        print(
            f"   {name:14s}: {t * 1e3:8.2f} ms/step (min {min(times[name]) * 1e3:7.2f}), "
            f"{t / ours_t:5.2f}x fastmf's time; agrees to {err:.1e} after 10 steps"
        )
    sigma_bytes = Sigma.nbytes
    state_bytes = 6 * m * k * 8  # U, V, Sigma V, Sigma^T U and the new U, V
    print(
        f"   traffic: fastmf reads Sigma ({sigma_bytes / 2**20:.0f} MiB) once per step plus "
        f"{state_bytes / 2**20:.1f} MiB of factors ({(sigma_bytes + state_bytes) / sigma_bytes:.3f} reads of Sigma); "
        f"the NumPy loop reads Sigma, writes R and reads R twice (>= 4 reads of Sigma)"
    )


_BACKEND_PROBE = """
import json, sys, time
import numpy as np
import fastmf
from fastmf.options import Options
from fastmf.solver import split_or_direct

def median_time(run, steps, repeats):
    run.advance(1)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run.advance(steps)
        times.append((time.perf_counter() - t0) / steps)
    return float(np.median(times))

repeats = int(sys.argv[1])
out = {"info": fastmf.blas_info()}
for k in (10, 32, 64):
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
    run = split_or_direct(problem, Options(k=k, lr=0.05, max_iter=10**9, record_every=1, spectral_every=0, seed=0))
    out[f"compressed k={k}"] = median_time(run, 2000 if k < 64 else 200, repeats)
rng = np.random.default_rng(0)
for m in (1024, 4096):
    U, V = (1e-3 * np.sqrt(2 / m) * rng.standard_normal((m, 16)) for _ in range(2))
    options = Options(k=16, lr=0.05 / np.sqrt(m), max_iter=10**9, record_every=1, method="direct")
    run = split_or_direct(rng.standard_normal((m, m)), options, U, V)
    out[f"direct m=n={m}"] = median_time(run, 3, repeats)
print(json.dumps(out))
"""


def backends(repeats):
    print("\n9. BLAS backends, per step (median), each in a fresh process")
    results = {}
    for backend in ("openblas", "mkl", "loops"):
        env = dict(os.environ, FASTMF_BLAS=backend)
        proc = subprocess.run([sys.executable, "-c", _BACKEND_PROBE, str(repeats)], env=env, capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode != 0:
            print(f"   {backend}: not available ({proc.stderr.strip().splitlines()[-1]})")
            continue
        results[backend] = json.loads(proc.stdout.splitlines()[-1])
        info = results[backend].pop("info")
        print(f"   {backend}: {info['library']} {info.get('version') or ''}, {info['threads']} threads")
    cases = list(next(iter(results.values())))
    print("   " + " " * 20 + "".join(f"{b:>12s}" for b in results))
    for case in cases:
        print(f"   {case:20s}" + "".join(f"{results[b][case] * 1e6:10.1f}us" for b in results))


def batch_seeds(runs):
    import numba

    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    fastmf.solve_batch(problem, 10, 0.05, 10, seeds=range(2))  # compile or load outside the timing
    threads = numba.get_num_threads()
    print(f"\n10. solve_batch, d = k = 10, m = n = 10**6, 2000 steps, {runs} seeds, {threads} threads")
    results = {}
    for every in (1, 10):
        t0 = time.perf_counter()
        results[every] = fastmf.solve_batch(problem, 10, 0.05, 2000, seeds=range(runs), record_every=every)
        elapsed = time.perf_counter() - t0
        print(f"   record_every={every:2d}: {elapsed:6.2f} s ({elapsed / runs * 1e4:5.1f} s per 10,000 runs)")
    numba.set_num_threads(1)
    t0 = time.perf_counter()
    one = fastmf.solve_batch(problem, 10, 0.05, 2000, seeds=range(runs), record_every=10)
    print(f"   1 thread, record_every=10: {time.perf_counter() - t0:6.2f} s")
    numba.set_num_threads(threads)
    full = results[10].table()

    def same(table, rows):
        return all(np.array_equal(col, full[key][rows], equal_nan=col.dtype.kind == "f") for key, col in table.items())

    picks = np.linspace(0, runs - 1, 5).astype(int)
    same_threads = same(one.table(), slice(None))
    same_single = all(
        same(fastmf.solve_batch(problem, 10, 0.05, 2000, seeds=[int(i)], record_every=10).table(), [i]) for i in picks
    )
    print(
        f"   bitwise the same with 1 and {threads} threads: {same_threads}; batch size 1 against {runs} "
        f"(seeds {picks.tolist()}): {same_single}"
    )


_DASK_PROBE = """
import json, resource, sys, time
import numpy as np, dask.array as da
import fastmf
m, r, chunk = int(sys.argv[1]), 8, 2000
X = da.random.default_rng(1).standard_normal((m, r), chunks=(chunk, r))
Y = da.random.default_rng(2).standard_normal((m, r), chunks=(chunk, r))
t0 = time.perf_counter()
problem = fastmf.Problem(X @ Y.T)
basis = time.perf_counter() - t0
Rx, Ry = np.linalg.qr(X.compute())[1], np.linalg.qr(Y.compute())[1]
exact = np.linalg.svd(Rx @ Ry.T, compute_uv=False)
t0 = time.perf_counter()
run = fastmf.solve(problem, r, 0.5 / problem.sigma_1, 2000, seed=0, init_scale=1e-6)
print(json.dumps({"basis_s": basis, "run_s": time.perf_counter() - t0, "rank": problem.rank,
                  "residual": problem.basis_residual, "s_error": float(np.max(np.abs(problem.s - exact) / exact[0])),
                  "loss": run.loss / (0.5 * np.sum(exact**2)), "chunks": [len(c) for c in (X @ Y.T).chunks],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def dask_problem(m):
    print(f"\n11. A {m} x {m} dask array of rank 8 in chunks of 2000 x 2000, in a fresh process")
    proc = subprocess.run([sys.executable, "-c", _DASK_PROBE, str(m)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"   not available ({proc.stderr.strip().splitlines()[-1]})")
        return
    got = json.loads(proc.stdout.splitlines()[-1])
    print(
        f"   {got['chunks'][0]} x {got['chunks'][1]} chunks; basis (svd_compressed + residual check) "
        f"{got['basis_s']:.1f} s, rank {got['rank']}, residual {got['residual']:.1e}, singular values within "
        f"{got['s_error']:.1e} s_1 of the exact ones"
    )
    print(f"   2000 steps on it: {got['run_s']:.2f} s, final loss {got['loss']:.1e} x 1/2 ||Sigma||_F^2")
    print(f"   peak memory of the process: {got['peak_mib']:.0f} MiB (Sigma itself: {m * m * 8 / 2**20:.0f} MiB)")


def sweep_overhead(runs):
    import shutil

    grid = {"m": 10**6, "d": 10, "kappa": 4.0, "spacing": "geometric", "lr": 0.05, "max_iter": 2000,
            "record_every": 10, "seeds": runs}  # fmt: skip
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    print(f"\n12. fastmf.sweep of {runs} runs (section 10's, record_every=10) on a LocalCluster, tasks of 64")
    folder = tempfile.mkdtemp()
    try:
        t0 = time.perf_counter()
        done = fastmf.sweep(grid, os.path.join(folder, "runs.csv"), progress=False)
        swept = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = fastmf.solve_batch(problem, 10, 0.05, 2000, seeds=range(runs), record_every=10)
        direct = time.perf_counter() - t0
        table = done.table()
    finally:
        shutil.rmtree(folder)
    order = np.argsort(table["seed"])
    same = all(np.array_equal(table[name][order], getattr(batch, name), equal_nan=True)
               for name in ("n_iter", "final_loss", "T1", "T0", "T_delta"))  # fmt: skip
    print(f"   sweep {swept:.2f} s (cluster start and shutdown included) against solve_batch {direct:.2f} s "
          f"in this process: {swept / direct:.2f}x; {done.ran} rows, bitwise solve_batch's: {same}")  # fmt: skip


def thread_scaling(repeats):
    import numba
    from threadpoolctl import threadpool_limits

    counts = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= numba.config.NUMBA_NUM_THREADS]
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    fastmf.solve_batch(problem, 10, 0.05, 10, seeds=range(2))
    rng = np.random.default_rng(0)
    m = 4096
    Sigma = rng.standard_normal((m, m))
    U0, V0 = (1e-3 * np.sqrt(2 / m) * rng.standard_normal((m, 16)) for _ in range(2))

    def batch():
        fastmf.solve_batch(problem, 10, 0.05, 2000, seeds=range(2048), record_every=10)

    def direct():
        fastmf.solve(Sigma, 16, 0.05 / np.sqrt(m), 20, U0=U0, V0=V0, method="direct")

    print(f"\n13. Thread scaling, medians of {repeats} (speed-up over 1 thread)")
    print("   threads   batch, 2048 runs   direct 4096, 20 steps")
    base = {}
    for t in counts:
        numba.set_num_threads(t)
        with threadpool_limits(t, user_api="blas"):
            direct()
            times = {name: np.median([_timed(f) for _ in range(repeats)]) for name, f in (("b", batch), ("d", direct))}
        base = base or times
        print(f"   {t:7d}   {times['b']:8.2f} s ({base['b'] / times['b']:4.1f}x)   "
              f"{times['d']:8.2f} s ({base['d'] / times['d']:4.1f}x)")  # fmt: skip
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def long_runs(steps):
    def subnormal(*arrays):
        return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny))) for a in arrays)

    spectrum = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 32), 10**9, 10**9)
    small = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 16), 300, 200)
    S = np.zeros((200, 150))
    S[:3, :3] = np.diag([4.0, 2.0, 1.0])
    kw = {"init_scale": 1e-6, "seed": 0, "record_every": 100}
    cases = {
        "compressed, 10**9 spectrum, k = 32": lambda n: fastmf.solve(spectrum, 32, 0.0125, n, **kw),
        "full complement, 300 x 200, k = 16": lambda n: fastmf.solve(small, 16, 0.0125, n, complement="full", **kw),
        "solve_batch, 32 seeds, k = 16": lambda n: fastmf.solve_batch(
            fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 16), 10**9, 10**9), 16, 0.0125, n,
            seeds=range(32), init_scale=1e-6, record_every=100),
        "direct, 200 x 150 of rank 3, k = 3": lambda n: fastmf.solve(S, 3, 0.0125, n, method="direct", **kw),
    }  # fmt: skip
    print(f"\n14. long runs: {steps} steps against 10 x the first {steps // 10} (lr = 0.0125, init_scale = 1e-6)")
    for name, run in cases.items():
        run(10)  # compile
        first = _timed(lambda run=run: run(steps // 10))
        result = None

        def whole(run=run):
            nonlocal result
            result = run(steps)

        total = _timed(whole)
        if isinstance(result, fastmf.BatchResult):  # every run's final state, in the kernel's units
            arrays = [result.resume_state["Xs"], result.resume_state["Ys"]]
        elif result.method == "direct":
            arrays = [result.U, result.V]
        else:
            arrays = [result.Up, result.Vp, result.L_U, result.L_V]
        left = f"{subnormal(*arrays)} subnormal state entries"
        print(f"   {name:38s} {total:7.2f} s / (10 x {first:6.3f} s) = {total / (10 * first):5.2f}; {left}")


def estimator(repeats):
    import warnings

    from sklearn.decomposition import TruncatedSVD

    m, n, k = 3000, 1000, 10
    rng = np.random.default_rng(0)
    A, B = np.linalg.qr(rng.standard_normal((m, k)))[0], np.linalg.qr(rng.standard_normal((n, k)))[0]
    cases = {
        "standard_normal((3000, 1000))": rng.standard_normal((m, n)),
        "rank 10 (10..1 x sqrt(3000)) + unit noise": (A * (np.arange(10, 0, -1) * np.sqrt(m))) @ B.T
        + rng.standard_normal((m, n)),
    }

    def fit(make, X):
        times, est, U = [], None, None
        for _ in range(repeats + 1):  # the first one warms up
            est = make()
            t0 = time.perf_counter()
            U = est.fit_transform(X)
            times.append(time.perf_counter() - t0)
        return float(np.median(times[1:])), float(np.linalg.norm(X - U @ est.components_)), est

    print(f"\n15. GradientDescentMF(10) against TruncatedSVD(10, randomized), median of {repeats} fits")
    for name, X in cases.items():
        best = np.sqrt(np.sum(np.linalg.svd(X, compute_uv=False)[k:] ** 2))
        t_sv, e_sv, _ = fit(lambda: TruncatedSVD(k, algorithm="randomized", random_state=0), X)
        t_gd, e_gd, gd = fit(lambda: fastmf.GradientDescentMF(k, random_state=0), X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tol=0 runs to max_iter by design
            long = fastmf.GradientDescentMF(k, random_state=0, tol=0, max_iter=1000).fit(X)
        reached = np.flatnonzero(np.sqrt(2 * long.history_["loss"]) <= e_sv)
        match = f"{int(long.history_['step'][reached[0]])} steps" if reached.size else "more than 1000 steps"
        print(f"   {name}: TruncatedSVD {t_sv:.3f} s (error +{e_sv / best - 1:.1e}); GradientDescentMF "
              f"{t_gd:.3f} s = {t_gd / t_sv:.1f}x, {gd.n_iter_} steps (error +{e_gd / best - 1:.1e}); "
              f"TruncatedSVD's error after {match}")  # fmt: skip


def _variants(kappa):
    """(name, Options) of section 16; every variant from plain GD's start and, but ScaledGD, step."""
    sigma_1 = float(kappa)
    lr = 0.3 / sigma_1
    return [
        ("plain GD", fastmf.Options(lr=lr)),
        ("balanced (lam = 1)", fastmf.Options(lr=lr, balance=1.0)),
        ("alternating", fastmf.Options(lr=lr, update="alternating")),
        ("ScaledGD (lam = 0.1 sigma_d)", fastmf.Options(lr=0.3, precondition=0.1)),
        ("perturbed (nu = 1e-12)", fastmf.Options(lr=lr, noise=1e-12)),
    ]


def _imbalance(run):
    """||U^T U - V^T V||_F from the small state of a `SolveResult`."""
    gu = run.Up.T @ run.Up + run.L_U.T @ run.L_U
    gv = run.Vp.T @ run.Vp + run.L_V.T @ run.L_V
    return float(np.linalg.norm(gu - gv))


def variants(runs, repeats):
    print(f"\n16. GD variants, d = k = 10, m = n = 10**6, {runs} seeds each, to loss 1e-10 (max 20000 steps)")
    print(f"   {'kappa':>5}  {'variant':<30}{'steps to 1e-10: median [min, max]':>36}{'imbalance':>11}{'wall s':>8}")
    for kappa in (1, 10, 100):
        problem = fastmf.Problem.from_spectrum(np.geomspace(kappa, 1.0, 10), 10**6, 10**6)
        for name, options in _variants(kappa):
            options = dataclasses.replace(options, max_iter=20_000, tol=1e-10, delta=1e-10)
            fastmf.solve_batch(problem, options=dataclasses.replace(options, max_iter=2), seeds=[0])  # compile
            t0 = time.perf_counter()
            batch = fastmf.solve_batch(problem, options=options, seeds=range(runs))
            wall = time.perf_counter() - t0
            hit = batch.T_delta[np.isfinite(batch.T_delta)]
            steps = f"{np.median(hit):8.0f} [{hit.min():.0f}, {hit.max():.0f}]" if hit.size else "never"
            if hit.size < runs:
                steps += f" ({runs - hit.size} never)"
            imbalance = np.median([_imbalance(batch[i]) for i in range(runs)])
            print(f"   {kappa:5d}  {name:<30}{steps:>36}{imbalance:11.2e}{wall:8.2f}")
    problem = fastmf.Problem.from_spectrum(np.geomspace(10.0, 1.0, 10), 10**6, 10**6)
    print(
        "   cost of a step against plain GD's (kappa = 10; solve: loss every step, spectral_every=0; "
        "solve_batch: 256 seeds, record_every=10)"
    )
    base = {}
    for name, options in _variants(10):
        one = dataclasses.replace(options, max_iter=10**9, record_every=1, spectral_every=0, seed=0)
        t_one = _per_step(split_or_direct(problem, one), 5000, repeats)
        many = dataclasses.replace(options, max_iter=2000, record_every=10)
        fastmf.solve_batch(problem, options=dataclasses.replace(many, max_iter=2), seeds=[0])
        t_many = np.median([_timed(lambda many=many: fastmf.solve_batch(problem, options=many, seeds=range(256)))
                            for _ in range(repeats)]) / (2000 * 256)  # fmt: skip
        base.setdefault("one", t_one)
        base.setdefault("many", t_many)
        print(f"   {name:<30} solve {t_one * 1e6:6.2f} us/step ({t_one / base['one']:4.2f}x)   "
              f"solve_batch {t_many * 1e6:6.3f} us/run-step ({t_many / base['many']:4.2f}x)")  # fmt: skip


def _per_step(run, steps, repeats):
    """Median seconds per step of an engine advanced `steps` steps at a time, after a first step."""
    run.advance(1)
    return float(np.median([_timed(lambda: run.advance(steps)) / steps for _ in range(repeats)]))


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


@njit(fastmath={"contract"})
def _fma_loop(reps, x, y, acc):
    """64 independent chains a <- a x + y, `reps` times: 128 reps flops, in registers."""
    a = acc.copy()
    for _ in range(reps):
        for q in range(64):
            a[q] = a[q] * x + y
    return a


def fma_peak(repeats) -> float:
    """GF/s of one core's fused multiply-adds (the best of `repeats`)."""
    reps = 2_000_000
    _fma_loop(10, 0.999, 1e-3, np.ones(64))
    return 128 * reps / min(_timed(lambda: _fma_loop(reps, 0.999, 1e-3, np.ones(64))) for _ in range(repeats)) / 1e9


def limits(repeats):
    import numba
    from threadpoolctl import threadpool_info

    peak = fma_peak(repeats)
    blas = max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)
    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    A, W = rng.standard_normal((4096, 4096)), rng.standard_normal((4096, 32))
    t_gemm = np.median([_timed(lambda: A @ W) for _ in range(3 * repeats)])
    print(f"\n17. distance to the limit: FMA peak {peak:.1f} GF/s per core (measured, float64), "
          f"medians of {repeats}")  # fmt: skip
    print(f"   {'kernel':56s}{'flops':>10s}{'time':>12s}{'GF/s':>8s}{'threads':>8s}{'of peak':>9s}")

    def row(name, flops, seconds, used):
        print(f"   {name:56s}{flops:10.3g}{seconds * 1e6:10.2f}us{flops / seconds / 1e9:8.1f}{used:8d}"
              f"{flops / seconds / 1e9 / (peak * used):8.0%}")  # fmt: skip

    row("DGEMM 4096 x 4096 times 4096 x 32 (numpy)", 2 * 4096 * 4096 * 32, t_gemm, blas)
    for k in (10, 16, 32, 64):  # per side: the Gram (rows k (k + 1)) and X H (2 rows k^2), rows = 2k
        p = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
        options = fastmf.Options(k=k, lr=0.1, max_iter=10**9, record_every=10**8, init_scale=1e-3, seed=0)
        steps = max(200, int(2e5 / k**2))
        t = _per_step(split_or_direct(p, options), steps, repeats)
        row(f"compressed step, k = r = {k}, no records", 12 * k**3 + 4 * k**2, t, 1)
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 10), 10**6, 10**6)
    fastmf.solve_batch(problem, 10, 0.05, 10, seeds=range(2))

    def batch(steps):  # the starts' cost cancels in the difference of two step counts
        return _timed(lambda: fastmf.solve_batch(problem, 10, 0.05, steps, seeds=range(2048), record_every=10**6))

    t = np.median([batch(2001) - batch(1) for _ in range(repeats)]) / (2048 * 2000)
    row("solve_batch run-step, d = k = 10, no records", 12 * 10**3 + 4 * 10**2, t, threads)
    m = 4096
    S = rng.standard_normal((m, m))
    U0, V0 = (1e-3 * np.sqrt(2 / m) * rng.standard_normal((m, 16)) for _ in range(2))
    run = split_or_direct(S, fastmf.Options(k=16, lr=0.05 / np.sqrt(m), max_iter=10**9, record_every=10**8,
                                             method="direct"), U0, V0)  # fmt: skip
    row("direct step, 4096 x 4096, k = 16 (U V^T, R V, R^T U)", 6 * m * m * 16, _per_step(run, 3, repeats), blas)
    s = np.geomspace(4.0, 1.0, 16)
    Phi, Psi = (np.linalg.qr(rng.standard_normal((m, 16)))[0] for _ in range(2))
    dense = (Phi * s) @ Psi.T
    t = np.median([_timed(lambda: fastmf.Problem(dense)) for _ in range(repeats)])
    row("basis, dense 4096 x 4096 of rank 16 (2 products)", 2 * 2 * m * m * 32, t, blas)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    ap.add_argument("--numpy-steps", type=int, default=30)
    ap.add_argument("--only", type=int, choices=range(1, 18), help="run only this measurement")
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
    try:
        from threadpoolctl import threadpool_info

        blas = [
            f"{i['internal_api']} {i['version']} ({i['architecture']}, {i['num_threads']} threads)"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
    except ImportError:
        blas = ["(install threadpoolctl to report the BLAS)"]
    print(f"fastmf {fastmf.__version__}, numpy {np.__version__}, BLAS: {'; '.join(blas)}")
    sections = [
        lambda: end_to_end(4096, 16, 5000, 10 if args.quick else args.numpy_steps, repeats),
        lambda: kernel_step([10, 16, 32, 64], repeats),
        lambda: huge(10**4 if args.quick else 10**5),
        latency,
        lambda: flow_large(repeats),
        lambda: diagnostics_cost(repeats),
        lambda: hooks_cost(repeats),
        lambda: direct_head_to_head(4096, 16, 3 if args.quick else 10, repeats),
        lambda: backends(repeats),
        lambda: batch_seeds(1000 if args.quick else 10_000),
        lambda: dask_problem(4000 if args.quick else 20_000),
        lambda: sweep_overhead(1000 if args.quick else 10_000),
        lambda: thread_scaling(repeats),
        lambda: long_runs(10**4 if args.quick else 10**5),
        lambda: estimator(repeats),
        lambda: variants(20 if args.quick else 100, repeats),
        lambda: limits(repeats),
    ]
    for number, section in enumerate(sections, 1):
        if args.only in (None, number):
            section()


if __name__ == "__main__":
    main()
