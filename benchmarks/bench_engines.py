"""asv benchmarks: the cost of a step of each engine across sizes, of whole runs, and of a fresh process.

What to look for: per step, the compressed engine is flat in m and
n, the full complement linear in m + n, the direct path linear in m n. Every `time_per_step`
reports seconds per step: it runs `steps` steps with the loss recorded every step (the default
start, init_scale 1e-3 sqrt(sigma_1 / (m + n)), so every size follows the same dynamics) and its
clock divides by `steps`. The BLAS thread count is a parameter, set with threadpoolctl
(`track_blas_threads` reports it), and asv's environment matrix runs everything once per BLAS
backend (FASTMF_BLAS = scipy, mkl, loops; asv.conf.json). The `timeraw_` benchmarks run in a new
interpreter each: `import fastmf`, and the first `solve` / `solve_batch` with an empty Numba cache.

    asv machine --yes                                                    # once per machine
    asv run --python=same --set-commit-hash=$(git rev-parse HEAD) --quick  # the installed fastmf
    asv run --quick                        # from a clone of main: builds the package in new envs
    asv publish && asv preview             # the results as a web page
"""

import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastmf
from fastmf.options import Options
from fastmf.solver import split_or_direct


def _split_run(m, k, complement):
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), m, m)
    options = Options(k=k, lr=0.05, max_iter=10**9, record_every=1, spectral_every=0, seed=0, complement=complement)
    return split_or_direct(problem, options)


class _Steps:
    """Seconds per step of a run prepared in setup (only the compiled loop is timed).

    A call runs `steps` steps; asv's clock for these benchmarks (`timer`) divides by `steps`,
    so asv records and shows seconds per step.
    """

    steps = 5

    @property
    def timer(self):
        return lambda: time.perf_counter() / self.steps

    def time_per_step(self, *params):
        self.run.advance(self.steps)


class Compressed(_Steps):
    steps = 1000
    params = ([10**3, 10**6, 10**9], [10, 32], [1, 2])
    param_names = ["m = n", "k", "threads"]

    def setup(self, m, k, threads):
        self.limits = threadpool_limits(threads, user_api="blas")
        self.run = _split_run(m, k, "compressed")
        self.run.advance(1)  # load the compiled kernel

    def teardown(self, *params):
        self.limits.restore_original_limits()


class FullComplement(_Steps):
    params = ([10**4, 10**5, 10**6], [16], [1, 2])
    param_names = ["m = n", "k", "threads"]

    def setup(self, m, k, threads):
        self.limits = threadpool_limits(threads, user_api="blas")
        self.run = _split_run(m, k, "full")
        self.run.advance(1)

    def teardown(self, *params):
        self.limits.restore_original_limits()


class Direct(_Steps):
    params = ([512, 1024, 2048], [16], [1, 2])
    param_names = ["m = n", "k", "threads"]

    def setup(self, m, k, threads):
        self.limits = threadpool_limits(threads, user_api="blas")
        rng = np.random.default_rng(0)
        S = rng.standard_normal((m, m))
        U, V = (1e-3 * np.sqrt(2 / m) * rng.standard_normal((m, k)) for _ in range(2))
        options = Options(k=k, lr=0.05 / np.sqrt(m), max_iter=10**9, record_every=1, method="direct")
        self.run = split_or_direct(S, options, U, V)
        self.run.advance(1)

    def teardown(self, *params):
        self.limits.restore_original_limits()


class WholeRun:
    """`fastmf.solve` end to end (basis, start, run, result) and its peak memory."""

    params = (["spectrum 1e9, k 32", "dense 2048 rank 16", "dense 1024 direct"],)
    param_names = ["problem"]
    timeout = 300

    def setup(self, problem):
        rng = np.random.default_rng(0)
        if problem.startswith("spectrum"):
            self.args = (fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 32), 10**9, 10**9), 32, 0.05, 2000)
            self.kwargs = {"seed": 0}
        elif "direct" in problem:
            self.args = (rng.standard_normal((1024, 1024)), 16, 1e-3, 50)
            self.kwargs = {"seed": 0, "method": "direct"}
        else:
            s = np.geomspace(4.0, 1.0, 16)
            Phi, Psi = (np.linalg.qr(rng.standard_normal((2048, 16)))[0] for _ in range(2))
            self.args = ((Phi * s) @ Psi.T, 16, 0.05, 2000)
            self.kwargs = {"seed": 0}
        fastmf.solve(np.eye(8), 2, 0.1, 2, seed=0)  # load the compiled kernels outside the timing

    def time_solve(self, problem):
        fastmf.solve(*self.args, **self.kwargs)

    def peakmem_solve(self, problem):
        fastmf.solve(*self.args, **self.kwargs)


def track_blas_threads():
    """Threads of the BLAS the kernels call (FASTMF_BLAS picks it; `fastmf.blas_info`)."""
    return fastmf.blas_info()["threads"]


track_blas_threads.unit = "threads"


# A new interpreter for each sample (asv's timeraw_): the code returned is timed, the setup code
# after it is not. NUMBA_CACHE_DIR is a new, empty folder, so the first call compiles every kernel
# it needs, as in a fresh environment or on a Dask worker without a shared cache.
EMPTY_CACHE = """
import os, tempfile
cache = tempfile.TemporaryDirectory()
os.environ["NUMBA_CACHE_DIR"] = cache.name
import numpy as np
"""
_SMALL = "fastmf.Problem.from_spectrum(np.array([2.0, 1.0]), 50, 40)"


def _compiles(benchmark):
    """A sample compiles for seconds: a few samples in one round, no warm-up sample."""
    benchmark.rounds, benchmark.repeat, benchmark.warmup_time, benchmark.timeout = 1, (1, 3, 60.0), 0, 600
    return benchmark


def timeraw_import():
    """`import fastmf` in a fresh process."""
    return "import fastmf"


@_compiles
def timeraw_first_solve():
    """`import fastmf` and a first `solve` (5 steps, k = 2) with an empty Numba cache."""
    return f"import fastmf; fastmf.solve({_SMALL}, 2, 0.1, 5, seed=0)", EMPTY_CACHE


@_compiles
def timeraw_first_solve_batch():
    """`import fastmf` and a first `solve_batch` (2 seeds, 5 steps, k = 2) with an empty Numba cache."""
    return f"import fastmf; fastmf.solve_batch({_SMALL}, 2, 0.1, 5, seeds=[0, 1])", EMPTY_CACHE
