"""solve_batch: each run is fastmf.solve's run (to rounding; the same stages), and the same
bit for bit whatever the number of threads or the batch it is in."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from test_layout_stages import _batch, _single, _stacked, _target_P

import fastmf
from fastmf import Problem, invariants, solve, solve_batch
from fastmf import _kernels as K
from naive import low_rank

SPECTRUM = Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 1000, 800)


def _same_as_solve(batch, problem, rank, lrs, max_iter, seeds, **kwargs):
    for i, seed in enumerate(seeds):
        res = solve(problem, rank, float(lrs[i]), max_iter, seed=int(seed), spectral_every=0, **kwargs)
        assert batch.status[i] == res.status and batch.n_iter[i] == res.n_iter
        for name in ("T1", "T0", "T_delta"):
            value = getattr(res.stages, name)
            assert (np.isnan(getattr(batch, name)[i]) and value is None) or getattr(batch, name)[i] == value
        # the batch records on the shared grid of steps; solve also records a diverged run's
        # last finite state (the one it returns), off that grid
        on_grid = np.isin(res.history["step"], batch.steps)
        n = np.count_nonzero(on_grid)
        # solve's products are BLAS's, summed in another order: the losses agree to rounding
        # (relative to the loss at the start, as the loss falls by many orders of magnitude)
        np.testing.assert_allclose(
            batch.losses[i, :n], res.history["loss"][on_grid], rtol=1e-9, atol=1e-12 * res.history["loss"][0]
        )
        np.testing.assert_array_equal(batch.steps[:n], res.history["step"][on_grid])
        assert np.all(np.isnan(batch.losses[i, n:]))
        np.testing.assert_allclose(batch.final_loss[i], res.loss, rtol=1e-9)  # the loss of the final state


def test_each_run_is_solves_run():
    seeds = [3, 1, 4, 1, 5, 9]
    lrs = np.array([0.05, 0.1, 0.2, 0.1, 0.05, 1.5])  # the last diverges
    batch = solve_batch(SPECTRUM, 4, lrs, 400, seeds=seeds, tol=1e-20, record_every=3, delta=1e-6, history=True)
    assert {"max_iter", "converged", "diverged"} <= set(batch.status)  # every ending is covered
    _same_as_solve(batch, SPECTRUM, 4, lrs, 400, seeds, tol=1e-20, record_every=3, delta=1e-6)


def test_dense_problem_and_per_run_init_scale():
    rng = np.random.default_rng(0)
    problem = Problem(low_rank(rng, 60, 40, [2.0, 1.0, 0.5]))
    scales = np.array([1e-3, 1e-2, 1e-4])
    batch = solve_batch(problem, 5, 0.2, 300, seeds=[0, 1, 2], init_scale=scales, history=True)
    np.testing.assert_array_equal(batch.init_scale, scales)
    for i in range(3):
        res = solve(problem, 5, 0.2, 300, seed=i, init_scale=scales[i], spectral_every=0)
        np.testing.assert_allclose(batch.losses[i], res.history["loss"], rtol=1e-9, atol=1e-12 * res.history["loss"][0])
        assert batch.T1[i] == res.stages.T1 and batch.T0[i] == res.stages.T0


def test_float32_runs_in_float32_and_tracks_float64():
    problem32 = Problem.from_spectrum(np.geomspace(3.0, 1.0, 4).astype(np.float32), 1000, 800)
    b32 = solve_batch(problem32, 4, 0.1, 200, seeds=range(3), history=True)
    b64 = solve_batch(SPECTRUM, 4, 0.1, 200, seeds=range(3), history=True)
    np.testing.assert_allclose(b32.losses, b64.losses, rtol=1e-3, atol=1e-6 * b64.losses[:, 0].max())
    np.testing.assert_array_equal(b32.T1, b64.T1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stage_tests_decide_as_the_single_run_within_rounding_of_the_thresholds(dtype):
    # states whose T1 / T0 margins are a few units of rounding: NumPy's eigenvalues cannot
    # decide them, but the batch does the single run's arithmetic, so the two agree on each
    rng = np.random.default_rng(4)
    eps = np.finfo(dtype).eps
    r, k = 3, 4
    s = np.geomspace(2.0, 1.0, r)
    t1_states, t0_states = [], []
    for _ in range(K.LANES + 9):
        Up, Vp = rng.standard_normal((r, k)), rng.standard_normal((r, k))
        g = np.linalg.eigvalsh((Up + Vp) @ (Up + Vp).T / 4)[0]
        c = np.sqrt(s[-1] / 2 * (1 + 4 * eps * rng.uniform(-1, 1)) / g)
        t1_states.append((_stacked(c * Up, rng, dtype), _stacked(c * Vp, rng, dtype)))
        t0_states.append(_target_P(rng, r, s, dtype, 4 * eps * rng.uniform(-1, 1)))
    for states, T1_reached, stage in ((t1_states, False, 0), (t0_states, True, 1)):
        Xs, Ys = np.stack([X for X, _ in states]), np.stack([Y for _, Y in states])
        got = np.array(_batch(Xs, Ys, s.astype(dtype), T1_reached))[stage]
        want = [_single(X, Y, s.astype(dtype), T1_reached)[stage] for X, Y in states]
        np.testing.assert_array_equal(got, want)
        assert 0 < np.count_nonzero(got) < len(states)  # both answers


@pytest.mark.parametrize("shape", [(3, 5, 32), (1, 1, 16), (7, 16)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_work_arrays_start_on_a_register_boundary(shape, dtype):
    from fastmf._kernels.batch import REGISTER_BYTES, aligned_empty

    for _ in range(5):
        A = aligned_empty(shape, dtype)
        assert A.shape == shape and A.dtype == dtype and A.flags.c_contiguous and A.flags.writeable
        assert A.ctypes.data % REGISTER_BYTES == 0


def test_threads_and_batch_size_change_nothing():
    seeds = np.arange(70)  # three blocks of lanes, the last one partial
    whole = solve_batch(SPECTRUM, 4, 0.1, 300, seeds=seeds, history=True)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = solve_batch(SPECTRUM, 4, 0.1, 300, seeds=seeds, history=True)
    finally:
        numba.set_num_threads(before)
    singles = [solve_batch(SPECTRUM, 4, 0.1, 300, seeds=[s], history=True) for s in seeds[::7]]
    for other in [one_thread]:
        for name, col in whole.table().items():
            np.testing.assert_array_equal(col, other.table()[name])
        np.testing.assert_array_equal(whole.losses, other.losses)
    for single, i in zip(singles, seeds[::7], strict=True):
        np.testing.assert_array_equal(single.losses[0], whole.losses[i])
        assert single.T1[0] == whole.T1[i] and single.final_loss[0] == whole.final_loss[i]
        for name, col in single.invariants.items():  # the extremes too, bit for bit
            np.testing.assert_array_equal(col[0], whole.invariants[name][i], err_msg=name)


def test_table_and_frame():
    batch = solve_batch(SPECTRUM, 4, 0.1, 50, seeds=range(3))
    table = batch.table()
    summary = ["seed", "lr", "init_scale", "n_iter", "status", "final_loss", "T1", "T0", "T_delta"]
    assert list(table) == summary + list(invariants.COLUMNS)
    assert all(len(col) == 3 for col in table.values()) and batch.losses is None
    assert all(table[name].dtype == bool for name in invariants.FLAGS)
    pd = pytest.importorskip("pandas")
    frame = batch.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (3, 9 + len(invariants.COLUMNS))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seeds": []}, "seeds must be a non-empty"),
        ({"seeds": [0.5, 1.5]}, "seeds must be a non-empty"),
        ({"seeds": [0, 1], "lr": [0.1, 0.1, 0.1]}, "lr must be one number or 2 numbers"),
        ({"seeds": [0, 1], "lr": "fast"}, "lr must be a positive number, None or 'theory'"),
        ({"seeds": [0, 1], "lr": [0.1, -1.0]}, "lr must be > 0"),
        ({"seeds": [0, 1], "init_scale": [1e-3]}, "init_scale must be one number or 2 numbers"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, match):
    args = {"lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        solve_batch(SPECTRUM, 4, args.pop("lr"), 10, **args)


def test_exported():
    assert fastmf.solve_batch is solve_batch and "BatchResult" in fastmf.__all__


def test_concurrent_calls_from_threads(tmp_path):
    """Four threads calling solve_batch at once each get what a call alone gets (they once aborted
    the process under Numba's workqueue threading layer, the default without TBB or OpenMP)."""
    script = tmp_path / "threads.py"
    script.write_text(
        "import concurrent.futures, numpy as np, numba, fastmf\n"
        "p = fastmf.Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 1000, 800)\n"
        "run = lambda s: fastmf.solve_batch(p, 4, 0.1, 300, seeds=range(s, s + 40)).final_loss\n"
        "with concurrent.futures.ThreadPoolExecutor(4) as pool:\n"
        "    together = list(pool.map(run, range(4)))\n"
        "assert numba.threading_layer() == 'workqueue'\n"
        "assert all(np.array_equal(a, run(s)) for s, a in enumerate(together))\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_default_extremes_are_the_cheap_ones():
    """By default a batch takes ||B||_F's extremes at every record and no eigenvalue (their columns
    NaN); spectral_every asks for those; the runs are the same bit for bit either way."""
    default = solve_batch(SPECTRUM, 4, 0.1, 200, seeds=[0, 1], history=True)
    asked = solve_batch(SPECTRUM, 4, 0.1, 200, seeds=[0, 1], spectral_every=10, history=True)
    np.testing.assert_array_equal(default.losses, asked.losses)
    for i in range(2):
        run = solve(SPECTRUM, 4, 0.1, 200, seed=i)
        np.testing.assert_allclose(default.invariants["max_B_fro"][i], run.history["B_fro"].max(), rtol=1e-9)
        np.testing.assert_allclose(asked.invariants["max_B_fro"][i], default.invariants["max_B_fro"][i], rtol=0)
    for name in ("min_sigma_A", "max_lambda_AAt_2S", "min_sigma_UV", "c_JK"):
        assert np.all(np.isnan(default.invariants[name])) and np.all(np.isfinite(asked.invariants[name])), name


@pytest.mark.parametrize("poison", [0.0, 1e3])
def test_the_loss_reads_only_the_rows_of_each_side(poison):
    """X with more compressed rows than Y (m - r > n - r, k > n - r) and a cross block that
    cancels, so the loss sums it again from the rows: whatever lies past Y's rows stays out."""
    from fastmf._kernels import batch as kb

    s, r, k, lanes = np.array([3.0, 2.0, 1.0]), 3, 4, kb.lanes(np.float64)
    Xd, Yd = np.zeros((7, k)), np.zeros((5, k))
    Xd[:3, :3], Yd[:3, :3] = 0.1 * np.eye(3), 0.1 * np.eye(3)
    Xd[3, 3], Yd[3, 3] = 0.3, 0.2  # Up L_V^T = 0, but not its Gram bound: the block is summed again
    X = np.repeat(Xd[:, :, None], lanes, axis=2)
    buffer = np.full((7, k, lanes), poison)
    buffer[:5] = Yd[:, :, None]
    Y = buffer[:5]
    N, Nc, M, Mc = (np.empty((k, k, lanes)) for _ in range(4))
    kb._grams(X, r, N, Nc)
    kb._grams(Y, r, M, Mc)
    E, blocks, loss = np.empty((r, r, lanes)), np.empty((6, lanes)), np.empty(lanes)
    kb._product(X, Y, r, E)
    kb._record(X, Y, s, N, M, Nc, Mc, E, blocks, loss)
    Sigma = np.zeros((7, 5))
    Sigma[:3, :3] = np.diag(s)
    np.testing.assert_allclose(loss, 0.5 * np.sum((Xd @ Yd.T - Sigma) ** 2), rtol=1e-14)
