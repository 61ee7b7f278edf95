"""Every recorded diagnostic against NumPy on the rebuilt m x n matrices, and the stages."""

import numpy as np
import pytest

import fastmf
from fastmf import Problem, gradient_flow, solve, theory
from fastmf._kernels import KEYS
from naive import gd, low_rank


def reference(Sigma, U, V, r):
    """docs/maths.md section 4 computed plainly from dense U, V and NumPy's SVD of Sigma."""
    Ph, s_all, PsT = np.linalg.svd(Sigma)
    Phi, Psi, s = Ph[:, :r], PsT[:r].T, s_all[:r]
    Up, Vp = Phi.T @ U, Psi.T @ V
    J, K = U - Phi @ Up, V - Psi @ Vp
    A, B = (Up + Vp) / 2, (Up - Vp) / 2
    P = np.diag(s) - A @ A.T + B @ B.T
    Q = A @ B.T - B @ A.T
    E = np.diag(s) - Up @ Vp.T
    return {
        "loss": 0.5 * np.sum((Sigma - U @ V.T) ** 2),
        "imbalance": np.linalg.norm(U.T @ U - V.T @ V),
        "loss_E": 0.5 * np.sum(E**2),
        "loss_Up_LV": 0.5 * np.sum((Up @ K.T) ** 2),
        "loss_LU_Vp": 0.5 * np.sum((J @ Vp.T) ** 2),
        "loss_LU_LV": 0.5 * np.sum((J @ K.T) ** 2),
        "B_fro": np.linalg.norm(B),
        "Q_fro": np.linalg.norm(Q),
        "sigma_min_A": np.linalg.svd(A, compute_uv=False)[-1],
        "lambda_min_P": np.linalg.eigvalsh(P)[0],
        "P_op": np.linalg.norm(P, 2),
        "J_op": np.linalg.norm(J, 2),
        "K_op": np.linalg.norm(K, 2),
        "E_op": np.linalg.norm(E, 2),
    }


@pytest.mark.parametrize("complement", ["compressed", "full"])
@pytest.mark.parametrize("m, n, r, k", [(30, 20, 3, 3), (20, 35, 2, 4), (25, 25, 4, 2), (12, 12, 12, 12)])
def test_diagnostics_match_numpy_on_rebuilt_matrices(m, n, r, k, complement):
    rng = np.random.default_rng(m + n + r + k)
    Sigma = low_rank(rng, m, n, np.geomspace(3.0, 1.0, r))
    U0, V0 = 0.2 * rng.standard_normal((m, k)), 0.3 * rng.standard_normal((n, k))
    scale = np.linalg.norm(Sigma)
    for steps in (0, 7, 60):
        res = solve(Sigma, k, 0.15, steps, U0=U0, V0=V0, complement=complement)
        assert set(KEYS) <= set(res.history)
        ref = reference(Sigma, res.U, res.V, r)
        for key, value in ref.items():
            squared = key.startswith("loss")
            atol = 1e-12 * (scale**2 if squared else scale)
            np.testing.assert_allclose(res.history[key][-1], value, rtol=1e-9, atol=atol, err_msg=key)


def test_diagnostics_of_a_spectrum_problem_with_a_vanishing_complement():
    """J_op, K_op stay accurate (relative) down to 1e-80 and below."""
    p = Problem.from_spectrum([2.0, 1.0], 40, 30)
    res = solve(p, 2, 0.3, 1500, init_scale=0.1, seed=1)
    ref = reference(p.dense(), res.U, res.V, 2)
    assert 0 < ref["J_op"] < 1e-60
    np.testing.assert_allclose(res.history["J_op"][-1], ref["J_op"], rtol=1e-9)
    np.testing.assert_allclose(res.history["K_op"][-1], ref["K_op"], rtol=1e-9)


def test_float32_run_records_the_same_diagnostics():
    rng = np.random.default_rng(9)
    Sigma = low_rank(rng, 30, 20, [3.0, 2.0, 1.0])
    U0, V0 = 0.2 * rng.standard_normal((30, 4)), 0.2 * rng.standard_normal((20, 4))
    single = solve(Sigma.astype(np.float32), 4, 0.1, 40, U0=U0, V0=V0)
    double = solve(Sigma, 4, 0.1, 40, U0=U0, V0=V0)
    for key in KEYS:
        scale = np.max(np.abs(double.history[key])) + 1e-30
        np.testing.assert_allclose(single.history[key], double.history[key], atol=1e-4 * scale, err_msg=key)


def test_spectral_stride():
    p = Problem.from_spectrum([2.0, 1.0], 20, 20)
    res = solve(p, 2, 0.1, 23, seed=0, spectral_every=5)
    h = res.history
    on = (h["step"] % 5 == 0) | (h["step"] == 23)
    for key in ("sigma_min_A", "lambda_min_P", "P_op", "J_op", "K_op", "E_op"):
        assert np.all(np.isfinite(h[key][on])) and np.all(np.isnan(h[key][~on]))
    assert np.all(np.isfinite(h["B_fro"]))
    cheap = solve(p, 2, 0.1, 23, seed=0, spectral_every=0)
    assert "sigma_min_A" not in cheap.history and "Q_fro" in cheap.history
    np.testing.assert_array_equal(cheap.history["loss"], h["loss"])  # recording never changes the run


def _naive_stages(Sigma, U0, V0, lr, steps, r):
    sd = np.linalg.svd(Sigma, compute_uv=False)[r - 1]
    T1 = T0 = None
    U, V = U0.copy(), V0.copy()
    for t in range(steps + 1):
        d = reference(Sigma, U, V, r)
        if T1 is None and d["sigma_min_A"] ** 2 >= sd / 2:
            T1 = t
        if T1 is not None and T0 is None and d["P_op"] <= sd / 4:
            T0 = t
        _, _, U, V = gd(Sigma, U, V, lr, 1)
    return T1, T0


def test_stages_are_exact_at_the_recording_stride():
    rng = np.random.default_rng(3)
    Sigma = low_rank(rng, 20, 15, [2.0, 1.0, 0.8])
    U0, V0 = 1e-3 * rng.standard_normal((20, 3)), 1e-3 * rng.standard_normal((15, 3))
    T1, T0 = _naive_stages(Sigma, U0, V0, 0.1, 200, 3)
    assert T1 is not None and T0 is not None and T1 < T0
    res = solve(Sigma, 3, 0.1, 200, U0=U0, V0=V0)
    assert (res.stages.T1, res.stages.T0) == (T1, T0)
    strided = solve(Sigma, 3, 0.1, 200, U0=U0, V0=V0, record_every=4, spectral_every=0)
    assert strided.stages.T1 == 4 * -(-T1 // 4) and strided.stages.T0 == 4 * -(-T0 // 4)


def test_stages_of_the_theorem_and_the_linear_rate():
    """kappa = 4, k = 10, eps = 1e-4, lr = 0.1 / sigma_1 (the stage picture of Ye and Du 2021)."""
    s = np.geomspace(4.0, 1.0, 10)
    p = Problem.from_spectrum(s, 500, 400)
    res = solve(p, 10, 0.1 / s[0], 4000, init_scale=1e-4, seed=7, delta=1e-10, spectral_every=10)
    st = res.stages
    assert st.T1 is not None and st.T0 is not None and st.T_delta is not None
    assert st.T1 < st.T0 < st.T_delta
    assert st.rate_theory == pytest.approx((1 - 0.1 / s[0] * s[-1] / 2) ** 2)
    assert st.rate is not None and st.rate <= st.rate_theory  # at least as fast as the theorem's


def test_lemma_3_3_on_consecutive_states_of_a_real_run():
    rng = np.random.default_rng(0)
    d, m, n = 5, 40, 30
    s = np.geomspace(2.0, 1.0, d)
    Sigma = np.zeros((m, n))
    Sigma[np.arange(d), np.arange(d)] = s
    lr, beta = 0.5 / (8 * s[0]), 0.5  # the lemma's eta <= beta / (8 sigma_1)
    U, V = 1e-3 * rng.standard_normal((m, d)), 1e-3 * rng.standard_normal((n, d))
    T0 = solve(Sigma, d, lr, 3000, U0=U, V0=V).stages.T0
    assert T0 is not None
    prev = None
    for _ in range(T0 + 1):
        A, B = (U[:d] + V[:d]) / 2, (U[:d] - V[:d]) / 2
        P = np.diag(s) - A @ A.T + B @ B.T
        assert np.linalg.norm(P, 2) <= 2 * s[0]  # the lemma's hypothesis
        p = np.linalg.eigvalsh(P)[0]
        bound = theory.lemma_3_3_bound(p, s[-1], s[0], lr, beta)
        mapped = theory.lemma_3_3_map(P, np.diag(s), lr)
        assert np.linalg.eigvalsh(mapped)[0] >= bound - 1e-14  # the lemma, on the run's own P_t
        if prev is not None:
            # the real step adds the B, J, K terms the lemma leaves out (Ye and Du 2021, eq 12):
            # by Weyl it keeps the bound up to their size, which stays below the eta^2 slack
            prev_bound, prev_mapped = prev
            perturbation = np.linalg.norm(P - prev_mapped, 2)
            assert p >= prev_bound - perturbation - 1e-14
            assert perturbation <= (8 + 6 * beta) / (1 - beta) * s[0] ** 3 * lr**2
        prev = (bound, mapped)
        _, _, U, V = gd(Sigma, U, V, lr, 1)


def test_flow_records_the_same_diagnostics_and_stage_times():
    p = Problem.from_spectrum([2.0, 1.5, 1.0], 60, 50)
    res = gradient_flow(p, 3, 40.0, init_scale=1e-4, seed=2, target_loss=1e-12)
    assert set(KEYS) <= set(res.history)
    h = res.history
    T1 = h["t"][np.flatnonzero(h["sigma_min_A"] ** 2 >= 0.5)[0]]
    assert res.stages.T1 == pytest.approx(T1)
    assert res.stages.T1 < res.stages.T0 < res.stages.T_delta == pytest.approx(res.t)
    ref = reference(p.dense(), res.U, res.V, 3)
    np.testing.assert_allclose(h["P_op"][-1], ref["P_op"], rtol=1e-8, atol=1e-12)


def test_to_frame():
    pd = pytest.importorskip("pandas")
    res = solve(np.diag([2.0, 1.0]), 2, 0.1, 10, seed=0)
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(res.history)
    np.testing.assert_array_equal(frame["loss"].to_numpy(), res.history["loss"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("engine", ["solve", "full", "batch"])
def test_cross_blocks_keep_their_digits_when_the_factors_are_orthogonal(engine, dtype):
    """Width k > r from a moderate start: Up and L_V end up in orthogonal directions, so the loss's
    cross blocks are tiny differences of Gram products. They were read as -2e-17 (a negative loss,
    "converged" at tol = 0); summed as squares they match plain NumPy to 1e-10, and never go negative.
    A float32 state's Grams round 2^29 times coarser: its blocks are summed again from the rows at a
    fraction of their bound as much larger (they read 3e5 times their value, 0.7% of the loss). A full
    complement (30 to 40 rows a side, more than the Grams' cost allows for L_U L_V^T) takes the R of its
    rows' QR: it read loss_LU_LV negative and stopped "converged" (float32 at step 15665, float64 42608)."""
    s = np.array([3.0, 2.0, 1.0])
    problem = fastmf.Problem.from_spectrum(s, 40, 30, dtype=dtype)
    if engine in ("solve", "full"):
        full = {"complement": "full", "seed": 1, "max_iter": 20000 if dtype == np.float32 else 60000}
        kw = {"seed": 0, "max_iter": 20000} | (full if engine == "full" else {})
        run = fastmf.solve(problem, k=5, lr=0.1, init_scale=0.1, **kw)
        losses = run.history["loss"]
        assert run.status == "max_iter"
        for key in ("loss_E", "loss_Up_LV", "loss_LU_Vp", "loss_LU_LV"):
            assert np.all(run.history[key] >= 0), key
        blocks = {"loss_Up_LV": (run.Up, run.L_V), "loss_LU_Vp": (run.L_U, run.Vp), "loss_LU_LV": (run.L_U, run.L_V)}
        for key, (left, right) in blocks.items():
            left, right = left.astype(np.float64), right.astype(np.float64)  # (exact: the state's own values)
            floor = (1e2 * np.finfo(float).eps * np.linalg.norm(left) * np.linalg.norm(right)) ** 2  # product rounding
            rel = 1e-9 if dtype == np.float64 else 1e-4  # (float32: a block above the fraction keeps its Gram form)
            assert run.history[key][-1] == pytest.approx(0.5 * np.sum((left @ right.T) ** 2), rel=rel, abs=floor)
    else:
        batch = fastmf.solve_batch(problem, k=5, lr=0.1, max_iter=20000, init_scale=0.1, seeds=[0], history=True)
        run, losses = batch[0], batch.losses[0]
    assert np.all(losses[np.isfinite(losses)] > 0)
    Sigma = np.zeros((40, 30))
    Sigma[:3, :3] = np.diag(s)
    exact = 0.5 * np.sum((Sigma - run.U.astype(np.float64) @ run.V.T.astype(np.float64)) ** 2)
    if dtype == np.float64:
        assert run.loss == pytest.approx(exact, rel=1e-10)
    else:  # Up Vp^T in float32: ||diag(s) - Up Vp^T||^2 is known to about (eps ||s||)^2 r
        assert run.loss == pytest.approx(exact, rel=1e-4, abs=3 * (np.finfo(np.float32).eps * np.linalg.norm(s)) ** 2)
