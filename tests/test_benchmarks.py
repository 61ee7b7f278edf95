"""The asv suite (benchmarks/bench_engines.py) runs: every benchmark once at its smallest size."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")
sys.path.insert(0, str(Path(__file__).parents[1]))
from benchmarks import bench_engines as B  # noqa: E402


@pytest.mark.parametrize("cls", [B.Compressed, B.FullComplement, B.Direct])
def test_step_benchmarks_advance_their_run(cls):
    bench = cls()
    params = [p[0] for p in cls.params]
    bench.setup(*params)
    try:
        before = bench.run.step
        bench.time_steps(*params)
        assert bench.run.step == before + bench.steps and bench.run.running
    finally:
        bench.teardown(*params)


@pytest.mark.parametrize("problem", B.WholeRun.params[0])
def test_whole_runs(problem):
    bench = B.WholeRun()
    bench.setup(problem)
    result = B.fastmf.solve(*bench.args, **bench.kwargs)  # what time_solve and peakmem_solve run
    assert result.status == "max_iter" and result.n_iter == bench.args[3]
    assert B.track_blas_threads() >= 1
