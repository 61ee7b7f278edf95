"""The quantities the proofs bound: the record columns sigma_min_Up, sigma_min_Vp,
lambda_max_AAt_2S and grad_fro, and the per-run extremes (`fastmf.invariants`) of solve and
solve_batch, against plainly written NumPy on dense U, V in the original basis."""

import numpy as np
import pytest

from fastmf import Problem, invariants, resume, solve, solve_batch
from naive import low_rank


def _basis(Sigma, r):
    Ph, s_all, PsT = np.linalg.svd(Sigma)
    return Ph[:, :r], PsT[:r].T, s_all[:r]


def _quantities(Sigma, r, U, V):
    """The proofs' quantities of the state (U, V), from dense matrices and NumPy's SVD."""
    Phi, Psi, s = _basis(Sigma, r)
    Up, Vp = Phi.T @ U, Psi.T @ V
    A, B = (Up + Vp) / 2, (Up - Vp) / 2
    R = Sigma - U @ V.T
    E = np.diag(s) - Up @ Vp.T
    return {
        "sigma_min_Up": np.linalg.svd(Up, compute_uv=False)[-1],
        "sigma_min_Vp": np.linalg.svd(Vp, compute_uv=False)[-1],
        "lambda_max_AAt_2S": np.linalg.eigvalsh(A @ A.T - 2 * np.diag(s))[-1],
        "grad_fro": np.sqrt(np.sum((R @ V) ** 2) + np.sum((R.T @ U) ** 2)),
        "B_fro": np.linalg.norm(B),
        "sigma_min_A": np.linalg.svd(A, compute_uv=False)[-1],
        "sigma_max_A": np.linalg.svd(A, compute_uv=False)[0],
        "J_op": np.linalg.norm(U - Phi @ Up, 2),
        "K_op": np.linalg.norm(V - Psi @ Vp, 2),
        "E_op": np.linalg.norm(E, 2),
        "P_op": np.linalg.norm((E + E.T) / 2, 2),
    }


@pytest.mark.parametrize("complement", ["compressed", "full"])
@pytest.mark.parametrize(
    "m, n, r, k, dtype",
    [(30, 20, 3, 3, np.float64), (20, 35, 1, 1, np.float64), (12, 12, 12, 12, np.float64), (25, 25, 4, 2, np.float64),
     (20, 30, 2, 5, np.float64), (30, 20, 3, 4, np.float32)],
)  # fmt: skip
def test_new_columns_match_numpy_on_rebuilt_matrices(m, n, r, k, dtype, complement):
    rng = np.random.default_rng(m + n + r + k)
    Sigma = low_rank(rng, m, n, np.geomspace(3.0, 1.0, r)).astype(dtype)
    U0, V0 = 0.2 * rng.standard_normal((m, k)), 0.3 * rng.standard_normal((n, k))
    scale = np.linalg.norm(Sigma.astype(np.float64))
    rtol, atol = (1e-9, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)
    for steps in (0, 7, 60):
        res = solve(Sigma, k, 0.15, steps, U0=U0, V0=V0, complement=complement)
        ref = _quantities(Sigma.astype(np.float64), r, res.U.astype(np.float64), res.V.astype(np.float64))
        for key, power in (("sigma_min_Up", 0.5), ("sigma_min_Vp", 0.5), ("lambda_max_AAt_2S", 1), ("grad_fro", 1.5)):
            np.testing.assert_allclose(res.history[key][-1], ref[key], rtol=rtol, atol=atol * scale**power, err_msg=key)


def test_new_columns_follow_the_spectral_stride_and_leave_the_run_alone():
    p = Problem.from_spectrum([2.0, 1.0], 300, 200)
    every = solve(p, 2, 0.2, 40, seed=3, spectral_every=4)
    never = solve(p, 2, 0.2, 40, seed=3, spectral_every=0)
    spectral = (every.history["step"] % 4 == 0) | (every.history["step"] == 40)
    for key in ("sigma_min_Up", "sigma_min_Vp", "lambda_max_AAt_2S", "grad_fro"):
        assert np.all(np.isfinite(every.history[key][spectral])) and np.all(np.isnan(every.history[key][~spectral]))
        assert key not in never.history
    for key, col in never.history.items():  # what is recorded never changes the run
        np.testing.assert_array_equal(every.history[key], col)
    for name in ("Up", "Vp", "L_U", "L_V"):
        np.testing.assert_array_equal(getattr(every, name), getattr(never, name))


# -- the per-run extremes against NumPy ------------------------------------------------------------


def _reference(Sigma, r, U0, V0, lr, steps, eps, every):
    """`fastmf.invariants.COLUMNS` of plain GD from (U0, V0), in NumPy: the stages found by their
    definitions, the eigenvalue-based extremes at the steps that are multiples of `every` (and the last)."""
    Phi, Psi, s = _basis(Sigma, r)
    m, n = Sigma.shape
    sd = s[-1]
    U, V = U0.copy(), V0.copy()
    rows = []
    for _ in range(steps + 1):
        rows.append(_quantities(Sigma, r, U, V))
        R = Sigma - U @ V.T
        U, V = U + lr * R @ V, V + lr * R.T @ U
    q = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    t = np.arange(steps + 1)
    hits1 = np.flatnonzero(q["sigma_min_A"] ** 2 >= sd / 2)
    T1 = int(hits1[0]) if hits1.size else None
    hits0 = np.flatnonzero((t >= (steps + 1 if T1 is None else T1)) & (q["P_op"] <= sd / 4))
    T0 = int(hits0[0]) if hits0.size else None  # (k < r: never, P keeps s_{k+1}, ..., s_r)
    spectral = (t % every == 0) | (t == steps)
    d = r
    upto0, from0 = (t <= T0, t >= T0) if T0 is not None else (t >= 0, t < 0)
    bound = 0.4 * sd * (1 - lr * sd / 2) ** (t - (T0 or 0))
    above = bound > 1e3 * np.finfo(np.float64).eps * np.linalg.norm(s)  # Delta's rounding: nothing to check
    ratios = [eps / (np.sqrt(d) * q["sigma_min_A"][0]), q["sigma_max_A"][0] / (eps * np.sqrt(d)),
              q["B_fro"][0] / (d * eps), q["J_op"][0] / (eps * np.sqrt(max(m - d, d))),
              q["K_op"][0] / (eps * np.sqrt(max(n - d, d)))]  # fmt: skip
    c0 = max(ratios)
    jk = np.maximum(q["J_op"] / (eps * np.sqrt(max(m - d, d))), q["K_op"] / (eps * np.sqrt(max(n - d, d))))
    out = {
        "c0": c0, **dict(zip(invariants.RATIOS, ratios, strict=True)),
        "max_B_fro": q["B_fro"].max(),
        "min_sigma_A": _nan_or(np.min, q["sigma_min_A"][spectral & (t >= (steps + 1 if T1 is None else T1))]),
        "max_lambda_AAt_2S": q["lambda_max_AAt_2S"][spectral & upto0].max(),
        "min_sigma_UV": _nan_or(np.min, np.minimum(q["sigma_min_Up"], q["sigma_min_Vp"])[spectral & from0]),
        "c_B": q["B_fro"][upto0].max() / (d * eps),
        "c_JK": jk[spectral & upto0].max(),
        "max_Delta_ratio": _nan_or(np.max, (q["E_op"] / bound)[spectral & from0 & above]),
    }  # fmt: skip
    out |= {
        "held_AAt": out["max_lambda_AAt_2S"] <= 0,
        "held_B": out["c_B"] <= 2 * c0,
        "held_JK": out["c_JK"] <= c0 * (1 + 1e3 * np.finfo(np.float64).eps),
        "held_sigma_UV": T0 is None or out["min_sigma_UV"] >= np.sqrt(sd / 2),  # (nothing checked: held)
        "held_Delta": T0 is None or out["max_Delta_ratio"] <= 1,
    }
    return out, T1, T0


def _nan_or(reduce, values):
    return reduce(values) if values.size else np.nan


def _assert_same(found, expected, rtol):
    assert list(found) == list(invariants.COLUMNS)
    for name in invariants.COLUMNS:
        if name in invariants.FLAGS:
            assert found[name] == expected[name], name
        else:
            np.testing.assert_allclose(found[name], expected[name], rtol=rtol, atol=1e-10, err_msg=name)


@pytest.mark.parametrize(
    "m, n, r, k, eps, lr, every",
    [(40, 30, 3, 3, 1e-3, 0.1, 1), (20, 35, 1, 1, 1e-3, 0.2, 5), (12, 12, 12, 12, 1e-2, 0.1, 3),
     (30, 25, 4, 2, 1e-3, 0.1, 1), (25, 30, 2, 5, 1e-3, 0.1, 2)],
)  # fmt: skip
def test_extremes_of_solve_and_batch_match_numpy(m, n, r, k, eps, lr, every):
    p = Problem.from_spectrum(np.geomspace(3.0, 1.0, r) if r > 1 else [1.5], m, n)
    seeds, steps = [0, 5], 400
    batch = solve_batch(p, k, lr, steps, seeds=seeds, init_scale=eps, spectral_every=every)
    for i, seed in enumerate(seeds):
        run = solve(p, k, lr, steps, seed=seed, init_scale=eps, spectral_every=every)
        start = solve(p, k, lr, 0, seed=seed, init_scale=eps)  # the same start, rebuilt in the original basis
        expected, T1, T0 = _reference(p.dense(), r, start.U, start.V, lr, steps, eps, every)
        assert (run.stages.T1, run.stages.T0) == (T1, T0)
        _assert_same(run.invariants, expected, rtol=1e-8)
        _assert_same({name: col[i] for name, col in batch.invariants.items()}, expected, rtol=1e-8)
        _assert_same(batch[i].invariants, expected, rtol=1e-8)


def test_flags_fail_when_a_bound_breaks():
    """A start far above the theory's scale: A A^T > 2 Sigma at t = 0 (so held_AAt fails), and the
    extremes as NumPy finds them, whatever the other flags say."""
    p = Problem.from_spectrum([1.0, 0.5], 30, 30)
    eps, lr, steps = 1.0, 0.005, 400
    batch = solve_batch(p, 2, lr, steps, seeds=[0], init_scale=eps, spectral_every=1)
    run = solve(p, 2, lr, steps, seed=0, init_scale=eps, spectral_every=1)
    start = solve(p, 2, lr, 0, seed=0, init_scale=eps)
    expected, _, _ = _reference(p.dense(), 2, start.U, start.V, lr, steps, eps, 1)
    assert not expected["held_AAt"] and expected["max_lambda_AAt_2S"] > 0
    assert run.invariants["held_AAt"] is False and not batch.invariants["held_AAt"][0]
    _assert_same(run.invariants, expected, rtol=1e-8)
    _assert_same({name: col[0] for name, col in batch.invariants.items()}, expected, rtol=1e-8)


def test_batch_extremes_match_solves_on_every_ending_and_in_float32():
    p = Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 1000, 800)
    seeds = [3, 1, 4, 5]
    lrs = np.array([0.05, 0.2, 0.1, 1.5])  # converges, runs to max_iter, diverges
    kwargs = {"tol": 1e-20, "record_every": 3, "spectral_every": 6, "delta": 1e-6}
    batch = solve_batch(p, 4, lrs, 400, seeds=seeds, **kwargs)
    assert {"max_iter", "converged", "diverged"} <= set(batch.status)
    for i, seed in enumerate(seeds):
        run = solve(p, 4, float(lrs[i]), 400, seed=seed, **kwargs)
        _assert_same({name: col[i] for name, col in batch.invariants.items()}, run.invariants, rtol=1e-8)
    p32 = Problem.from_spectrum(np.geomspace(3.0, 1.0, 3).astype(np.float32), 500, 400)
    b32 = solve_batch(p32, 3, 0.1, 300, seeds=[0, 1], spectral_every=4)
    for i in range(2):
        run = solve(p32, 3, 0.1, 300, seed=i, spectral_every=4)
        _assert_same({name: col[i] for name, col in b32.invariants.items()}, run.invariants, rtol=1e-4)


def test_extremes_survive_chunks_checkpoints_and_resume(tmp_path):
    p = Problem.from_spectrum(np.geomspace(3.0, 1.0, 3), 500, 400)
    whole = solve_batch(p, 3, 0.1, 400, seeds=range(5), spectral_every=5)
    half = solve_batch(p, 3, 0.1, 170, seeds=range(5), spectral_every=5, checkpoint=tmp_path / "b.npz")
    again = resume(tmp_path / "b.npz", max_iter=400)
    in_memory = resume(half, max_iter=400)
    for other in (again, in_memory):
        for name, col in whole.invariants.items():
            np.testing.assert_array_equal(other.invariants[name], col, err_msg=name)
    one = solve(p, 3, 0.1, 400, seed=2, spectral_every=5)
    first = solve(p, 3, 0.1, 170, seed=2, spectral_every=5, checkpoint=tmp_path / "s.npz")
    for other in (resume(tmp_path / "s.npz", max_iter=400), resume(first, max_iter=400)):
        assert other.invariants == one.invariants


def test_without_the_spectral_stride_only_the_start_is_known():
    p = Problem.from_spectrum([2.0, 1.0], 300, 200)
    off = solve_batch(p, 2, 0.2, 200, seeds=[0, 1], spectral_every=0, history=True)
    on = solve_batch(p, 2, 0.2, 200, seeds=[0, 1], history=True, spectral_every=64)
    np.testing.assert_array_equal(off.losses, on.losses)  # the extremes never change the runs
    np.testing.assert_array_equal(off.resume_state["Xs"], on.resume_state["Xs"])
    assert np.all(np.isfinite(off.invariants["c0"])) and np.all(off.invariants["c0"] == on.invariants["c0"])
    assert np.all(np.isnan(off.invariants["max_B_fro"])) and np.all(off.invariants["held_AAt"])
    assert np.all(np.isfinite(on.invariants["min_sigma_UV"]))
    given = solve(p, 2, 0.2, 50, U0=np.eye(300, 2) * 0.1, V0=np.eye(200, 2) * 0.1)  # no eps: no c0
    assert np.isnan(given.invariants["c0"]) and np.isfinite(given.invariants["min_sigma_A"])
    assert solve(p.dense(), 2, 0.2, 5, seed=0, method="direct").invariants is None


def test_invariants_are_saved_with_the_result(tmp_path):
    p = Problem.from_spectrum([2.0, 1.0], 300, 200)
    run = solve(p, 2, 0.2, 100, seed=0)
    run.save(tmp_path / "r.npz")
    from fastmf import load

    assert load(tmp_path / "r.npz").invariants == run.invariants
    batch = solve_batch(p, 2, 0.2, 100, seeds=[0, 1])
    batch.save(tmp_path / "b.npz")
    loaded = load(tmp_path / "b.npz")
    for name, col in batch.invariants.items():
        np.testing.assert_array_equal(loaded.invariants[name], col)
        assert loaded.invariants[name].dtype == col.dtype
