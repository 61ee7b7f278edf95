"""Micro-benchmarks of the hot kernels with pytest-benchmark, deselected by default:

    python -m pip install ".[bench]"
    python -m pytest -m bench tests/test_micro_benchmarks.py

Each times the compiled loop alone on a run prepared outside the timing, and checks that
the run it timed is still sound.
"""

import numpy as np
import pytest

import fastmf
from fastmf.options import Options
from fastmf.solver import split_or_direct

pytest.importorskip("pytest_benchmark")
_GD = {"lr": 0.05, "max_iter": 10**9, "record_every": 1, "spectral_every": 0, "seed": 0}
pytestmark = pytest.mark.bench


def _advance(benchmark, run, steps):
    benchmark(lambda: run.advance(steps))
    assert run.running and np.isfinite(run.latest()["loss"])


@pytest.mark.parametrize("k", [10, 16, 32, 64])
def test_compressed_100_steps(benchmark, k):
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, k), 10**6, 10**6)
    _advance(benchmark, split_or_direct(problem, Options(k=k, **_GD)), 100)


def test_full_complement_step(benchmark):
    problem = fastmf.Problem.from_spectrum(np.geomspace(4.0, 1.0, 16), 10**5, 10**5)
    _advance(benchmark, split_or_direct(problem, Options(k=16, complement="full", **_GD)), 1)


@pytest.mark.parametrize("m", [1024, 4096])
def test_direct_step(benchmark, m):
    rng = np.random.default_rng(0)
    U, V = (1e-3 * np.sqrt(2 / m) * rng.standard_normal((m, 16)) for _ in range(2))
    options = Options(k=16, lr=0.05 / np.sqrt(m), max_iter=10**9, record_every=1, method="direct")
    _advance(benchmark, split_or_direct(rng.standard_normal((m, m)), options, U, V), 1)
