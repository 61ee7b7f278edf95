"""Micro-benchmarks of the hot kernels with pytest-benchmark, deselected by default:

    python -m pip install ".[bench]"
    python -m pytest -m bench tests/test_micro_benchmarks.py

Each times the compiled loop alone on a run prepared outside the timing, and checks that
the run it timed is still sound.
"""

import numpy as np
import pytest

import fastmf
from fastmf.direct import DirectRun
from fastmf.init import stack, start
from fastmf.solver import Run

pytest.importorskip("pytest_benchmark")
pytestmark = pytest.mark.bench


def _advance(benchmark, run, steps):
    benchmark(lambda: run.advance(run.step + steps))
    assert run.running and np.isfinite(run.latest()["loss"])


@pytest.mark.parametrize("k", [10, 16, 32, 64])
def test_compressed_100_steps(benchmark, k):
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
    st = start(problem, k, None, 0, None, None, "compressed")
    _advance(benchmark, Run(stack(st.left), stack(st.right), problem.s, 0.05, 0.0, 10**9, 1, 0), 100)


def test_full_complement_step(benchmark):
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 16), 10**5, 10**5)
    st = start(problem, 16, None, 0, None, None, "full")
    _advance(benchmark, Run(stack(st.left), stack(st.right), problem.s, 0.05, 0.0, 10**9, 1, 0), 1)


@pytest.mark.parametrize("m", [1024, 4096])
def test_direct_step(benchmark, m):
    rng = np.random.default_rng(0)
    U, V = (1e-3 * np.sqrt(2 / m) * rng.standard_normal((m, 16)) for _ in range(2))
    _advance(benchmark, DirectRun(rng.standard_normal((m, m)), U, V, 0.05 / np.sqrt(m), 0.0, 10**9, 1), 1)
