"""Problem(dask array): the basis from Dask's svd_compressed, chunks never gathered."""

import numpy as np
import pytest

import fastmf
import fastmf.problem
from fastmf import Problem
from naive import gd, low_rank

da = pytest.importorskip("dask.array")
dask_callbacks = pytest.importorskip("dask.callbacks")


class PeakMemory(dask_callbacks.Callback):
    """The most bytes of task results a local dask computation held at once, and the
    largest single result."""

    def __init__(self):
        super().__init__()
        self.held = self.largest = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.largest = max(self.largest, getattr(result, "nbytes", 0))
        self.held = max(self.held, sum(getattr(value, "nbytes", 0) for value in state["cache"].values()))


@pytest.mark.parametrize(
    "m, n, s, chunks",
    [
        (300, 200, [5.0, 4.0, 3.0, 2.0, 1.0], (64, 50)),  # m > n, uneven chunks
        (150, 400, [2.0], (150, 100)),  # m < n, rank 1, one row of chunks
        (90, 90, np.linspace(3.0, 1.0, 40), (30, 45)),  # rank above the first sketch width
    ],
)
def test_basis_and_runs_match_the_in_memory_path(m, n, s, chunks):
    rng = np.random.default_rng(m + n)
    Sigma = low_rank(rng, m, n, s)
    p = Problem(da.from_array(Sigma, chunks=chunks))
    assert p.kind == "dask" and p.rank == len(s) and p.basis_residual < 1e-12
    np.testing.assert_allclose(p.s, np.sort(s)[::-1], rtol=1e-12)
    assert np.linalg.norm(p.dense() - Sigma) <= 1e-12 * np.linalg.norm(Sigma)
    k, lr = len(s) + 1, 0.2 / max(s)
    dask_run = fastmf.solve(p, k, lr, 300, seed=4, init_scale=1e-3)
    memory_run = fastmf.solve(Problem(Sigma), k, lr, 300, seed=4, init_scale=1e-3)
    scale = 0.5 * np.sum(Sigma**2)
    np.testing.assert_allclose(dask_run.history["loss"], memory_run.history["loss"], rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(dask_run.U @ dask_run.V.T, memory_run.U @ memory_run.V.T, atol=1e-11 * max(s))


def test_run_on_a_dask_array_equals_plain_gd_in_the_original_basis():
    rng = np.random.default_rng(7)
    m, n, k = 120, 80, 4
    Sigma = low_rank(rng, m, n, [3.0, 2.0, 1.0])
    U0, V0 = 1e-2 * rng.standard_normal((m, k)), 1e-2 * rng.standard_normal((n, k))
    run = fastmf.solve(da.from_array(Sigma, chunks=(50, 30)), k, 0.1, 200, U0=U0, V0=V0)
    losses, _, U, V = gd(Sigma, U0, V0, 0.1, 200)
    np.testing.assert_allclose(run.history["loss"], losses, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(run.U, U, atol=1e-11)
    np.testing.assert_allclose(run.V, V, atol=1e-11)


def test_chunks_are_never_gathered_nor_all_held():
    """The basis computation never makes Sigma as one array, nor holds all its chunks at once
    (each pass of svd_compressed makes them again, as a Sigma larger than memory needs)."""
    m, n, r, rows, cols = 2000, 1600, 6, 250, 400
    X = da.random.default_rng(1).standard_normal((m, r), chunks=(rows, r))
    Y = da.random.default_rng(2).standard_normal((n, r), chunks=(cols, r))
    A = X @ Y.T  # each chunk is made on demand from two thin factors
    with PeakMemory() as peak:
        p = Problem(A)
    assert p.rank == r and p.basis_residual < 1e-12
    # the largest piece is a chunk (or the m x width sketch), far below Sigma's m n entries
    assert peak.largest <= max(rows * cols, m * 40) * 8 < m * n * 8 / 10
    assert peak.held < m * n * 8 / 4
    ref = np.linalg.svd(A.compute(), compute_uv=False)[:r]
    np.testing.assert_allclose(p.s, ref, rtol=1e-12)


def test_float32_dask_array_keeps_its_dtype():
    rng = np.random.default_rng(8)
    Sigma = low_rank(rng, 100, 70, [2.0, 1.0]).astype(np.float32)
    p = Problem(da.from_array(Sigma, chunks=(40, 70)))
    assert p.dtype == np.float32 and p.rank == 2
    np.testing.assert_allclose(p.s, [2.0, 1.0], rtol=1e-6)
    batch = fastmf.solve_batch(p, 2, 0.1, 400, seeds=[0, 1], delta=1e-8)
    single = fastmf.solve(Problem(Sigma), 2, 0.1, 400, seed=1, delta=1e-8)
    assert batch.T_delta[1] == single.stages.T_delta


def test_a_basis_that_fails_the_residual_check_raises(monkeypatch):
    rng = np.random.default_rng(9)
    Sigma = low_rank(rng, 60, 50, [3.0, 2.0, 1.0])
    real = fastmf.problem._dask_svd

    def drops_one(A, rtol):
        s, Phi, Psi = real(A, rtol)
        return s[:2], Phi[:, :2], Psi[:, :2]

    monkeypatch.setattr(fastmf.problem, "_dask_svd", drops_one)
    with pytest.raises(ValueError, match="relative residual .* Sigma.compute"):
        Problem(da.from_array(Sigma, chunks=(20, 50)))


def test_bad_dask_input_gets_clear_errors():
    good = da.from_array(np.eye(6), chunks=3)
    with pytest.raises(ValueError, match="method='direct' needs Sigma as a dense array in memory"):
        fastmf.solve(good, 2, 0.1, 3, method="direct")
    with pytest.raises(ValueError, match="2-D dask array"):
        Problem(da.ones(5, chunks=2))
    with pytest.raises(TypeError, match="real dask array"):
        Problem(da.from_array(np.array([["a", "b"], ["c", "d"]]), chunks=1))
    nan = da.from_array(np.where(np.eye(40) > 0, np.nan, 1.0), chunks=20)
    with pytest.raises(ValueError, match="NaN or Inf"):
        Problem(nan)
