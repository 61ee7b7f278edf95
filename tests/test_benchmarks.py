"""The asv suite (benchmarks/bench_engines.py) runs: every benchmark once at its smallest size, the
step benchmarks' clock gives seconds per step, and the fresh-process benchmarks' code runs."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("threadpoolctl")
ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import bench_engines as B  # noqa: E402

STEPS = [B.Compressed, B.FullComplement, B.Direct]
RAW = [B.timeraw_import, B.timeraw_first_solve, B.timeraw_first_solve_batch]


@pytest.mark.parametrize("cls", STEPS)
def test_step_benchmarks_advance_their_run(cls):
    bench = cls()
    params = [p[0] for p in cls.params]
    bench.setup(*params)
    try:
        before = bench.run.step
        bench.time_per_step(*params)
        assert bench.run.step == before + bench.steps and bench.run.running
    finally:
        bench.teardown(*params)


@pytest.mark.parametrize("cls", STEPS)
def test_step_benchmarks_report_seconds_per_step(cls):
    asv = pytest.importorskip("asv_runner.discovery")
    name = f"bench_engines.{cls.__name__}.time_per_step"
    [bench] = [b for b in asv.disc_benchmarks(str(ROOT / "benchmarks")) if b.name == name]
    bench.set_param_idx(0)
    bench.do_setup()
    try:
        t0, clock = time.perf_counter(), bench.timer()  # the clock asv times the benchmark with
        assert clock * cls.steps == pytest.approx(t0, abs=1e-3)
    finally:
        bench.do_teardown()


@pytest.mark.parametrize("problem", B.WholeRun.params[0])
def test_whole_runs(problem):
    bench = B.WholeRun()
    bench.setup(problem)
    result = B.fastmf.solve(*bench.args, **bench.kwargs)  # what time_solve and peakmem_solve run
    assert result.status == "max_iter" and result.n_iter == bench.args[3]
    assert B.track_blas_threads() >= 1


def test_fresh_process_benchmarks_start_with_an_empty_cache():
    code = B.EMPTY_CACHE + "import sys, numba; print(sys.modules.get('fastmf'), os.listdir(numba.config.CACHE_DIR))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "[]"]


def test_import_benchmark_runs_in_a_fresh_process():
    timeraw = pytest.importorskip("asv_runner.benchmarks.timeraw")
    assert timeraw._SeparateProcessTimer(B.timeraw_import).timeit(1) > 0  # as asv runs it


@pytest.mark.parametrize("timeraw", RAW[1:])
def test_first_call_benchmarks_run(timeraw):
    stmt, setup = timeraw()
    assert setup is B.EMPTY_CACHE
    namespace = {"np": np}
    exec(stmt, namespace)  # here with the kernels cached; asv runs setup, then stmt, in a new process
