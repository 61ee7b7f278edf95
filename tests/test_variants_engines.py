"""The GD variants on the single-run engines (compressed and full split, direct) against plain
NumPy GD in the original basis, written here from the formulas:

    gU = -R V + (bal/2) U (U^T U - V^T V),   gV = -R^T U + (bal/2) V (V^T V - U^T U),   R = Sigma - U V^T
    U+ = U - eta_t gU (V^T V + lam I)^-1 (ScaledGD; else times I), V+ likewise (alternating: from U+)
    perturbed GD: U+ += Z_U, V+ += Z_V after the whole step.
"""

import numpy as np
import pytest

import fastmf
from fastmf import recorder, schedules
from fastmf.noise import NoiseStream

ENGINES = [("split", "compressed"), ("split", "full"), ("direct", "compressed")]


def reference(Sigma, U, V, lrs, bal=0.0, alternating=False, lam=None, noise=None):
    """Losses, imbalances and the final U, V of len(lrs) steps of the variant; noise: (ZU, ZV)."""
    k = U.shape[1]
    losses, imbalances = [], []

    def record(U, V):
        losses.append(0.5 * np.sum((Sigma - U @ V.T) ** 2))
        imbalances.append(np.linalg.norm(U.T @ U - V.T @ V))

    def step(U, V, S, eta):  # U's step for the target S, with V held fixed
        G = V.T @ V
        g = -(S - U @ V.T) @ V + bal / 2 * U @ (U.T @ U - G)
        if lam is not None:
            g = np.linalg.solve(G + lam * np.eye(k), g.T).T
        return U - eta * g

    for t, eta in enumerate(lrs):
        record(U, V)
        Un = step(U, V, Sigma, eta)
        Vn = step(V, Un if alternating else U, Sigma.T, eta)
        U, V = Un, Vn
        if noise is not None:
            U, V = U + noise[0][t], V + noise[1][t]
    record(U, V)
    return np.array(losses), np.array(imbalances), U, V


def problem(m, n, r, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    Phi = np.linalg.qr(rng.standard_normal((m, r)))[0]
    Psi = np.linalg.qr(rng.standard_normal((n, r)))[0]
    s = np.linspace(2.0, 1.0, r)
    return ((Phi * s) @ Psi.T).astype(dtype)


def start(m, n, k, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((m, k)), scale * rng.standard_normal((n, k))


def run(Sigma, k, U0, V0, lr, steps, engine, **variant):
    method, complement = engine
    options = fastmf.Options(**variant)
    return fastmf.solve(Sigma, k, lr, steps, U0=U0, V0=V0, method=method, complement=complement, options=options,
                        progress=False)  # fmt: skip


def check(res, ref, rtol):
    loss, imbalance, U, V = ref
    scale = loss[0]
    np.testing.assert_allclose(res.history["loss"], loss, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(res.history["imbalance"], imbalance, rtol=rtol, atol=rtol * np.sqrt(scale))
    np.testing.assert_allclose(res.U, U, rtol=rtol, atol=rtol * np.abs(U).max())
    np.testing.assert_allclose(res.V, V, rtol=rtol, atol=rtol * np.abs(V).max())


# (m, n, r, k): m < n, rank 1, k = m = n, k < r, k > r
SHAPES = [(5, 8, 3, 3), (6, 6, 1, 2), (4, 4, 4, 4), (7, 6, 4, 2), (7, 6, 3, 5)]
VARIANTS = {
    "balance": ({"balance": 0.7}, {"bal": 0.7}),
    "alternating": ({"update": "alternating"}, {"alternating": True}),
    "precondition": ({"precondition": 0.2}, {"lam": 0.2}),
    "schedule": ({}, {}),
    "all": ({"balance": 0.4, "update": "alternating", "precondition": 0.1}, {"bal": 0.4, "alternating": True,
                                                                              "lam": 0.1}),
}  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: "-".join(e))
@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_deterministic_variants_match_numpy(engine, name, shape):
    m, n, r, k = shape
    Sigma = problem(m, n, r)
    U0, V0 = start(m, n, k)
    options, ref_options = VARIANTS[name]
    steps = 25
    lr = 0.2 if "precondition" in options else 0.15
    if name in ("schedule", "all"):
        lr = schedules.InverseSqrt(lr, 4.0)
    lrs = lr(np.arange(steps)) if callable(lr) else np.full(steps, lr)
    res = run(Sigma, k, U0, V0, lr, steps, engine, **options)
    ref = reference(Sigma, U0, V0, lrs, **ref_options)
    check(res, ref, 1e-9)
    if callable(lr):
        np.testing.assert_array_equal(res.history["lr"], lr(res.history["step"]))
    else:
        assert "lr" not in res.history
    if ref_options.get("bal"):
        np.testing.assert_allclose(res.history["regularizer"], ref_options["bal"] / 8 * ref[1] ** 2, rtol=1e-9,
                                   atol=1e-12)  # fmt: skip
    else:
        assert "regularizer" not in res.history


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: "-".join(e))
def test_float32_variants(engine):
    m, n, r, k = 7, 6, 3, 2
    Sigma = problem(m, n, r, dtype=np.float32)
    U0, V0 = start(m, n, k)
    lr = schedules.StepDecay(0.2, 0.5, 10)
    res = run(Sigma, k, U0, V0, lr, 30, engine, balance=0.4, update="alternating", precondition=0.1)
    assert res.U.dtype == np.float32
    ref = reference(Sigma.astype(np.float64), U0.astype(np.float32).astype(np.float64),
                    V0.astype(np.float32).astype(np.float64), lr(np.arange(30)), 0.4, True, 0.1)  # fmt: skip
    check(res, ref, 2e-4)


def _draws(seed, steps, nu, m, n, k):
    return [Z for Z, _ in NoiseStream(seed).draw(steps, nu, [(m, k, None), (n, k, None)])]


@pytest.mark.parametrize("engine", ENGINES[1:], ids=lambda e: "-".join(e))
@pytest.mark.parametrize("shape", [(5, 8, 3, 3), (7, 6, 4, 2)], ids=str)
def test_noise_path_by_path_on_full_and_direct(engine, shape):
    m, n, r, k = shape
    Sigma = problem(m, n, r)
    U0, V0 = start(m, n, k)
    lr, steps, nu = schedules.Warmup(0.2, 5), 20, 0.01
    res = run(Sigma, k, U0, V0, lr, steps, engine, seed=7, noise=nu, balance=0.3, update="alternating",
              precondition=0.1)  # fmt: skip
    ref = reference(Sigma, U0, V0, lr(np.arange(steps)), 0.3, True, 0.1, noise=_draws(7, steps, nu, m, n, k))
    check(res, ref, 1e-9)


def _mean_se(x):
    return np.mean(x), np.std(x, ddof=1) / np.sqrt(len(x))


@pytest.mark.parametrize("m", [5, 12])  # the complement beyond the frame: 1 < k dimensions, 8 >= k
def test_compressed_noise_in_law(m):
    n, r, k, steps, nu, runs = 6, 2, 2, 40, 0.05, 200
    Sigma = problem(m, n, r)
    U0, V0 = start(m, n, k, scale=0.1)
    rng = np.random.default_rng(3)
    ref = [reference(Sigma, U0, V0, np.full(steps, 0.3), noise=(nu * rng.standard_normal((steps, m, k)),
                                                                 nu * rng.standard_normal((steps, n, k))))[0][-1]
           for _ in range(runs)]  # fmt: skip
    got = [run(Sigma, k, U0, V0, 0.3, steps, ("split", "compressed"), seed=s, noise=nu).loss for s in range(runs)]
    (a, se_a), (b, se_b) = _mean_se(ref), _mean_se(got)
    assert abs(a - b) < 4 * np.hypot(se_a, se_b)
    noiseless = run(Sigma, k, U0, V0, 0.3, steps, ("split", "compressed")).loss
    assert abs(b - noiseless) > 4 * se_b  # the noise is felt: the test above can tell a run without it


def test_compressed_noise_frame_is_fresh():
    """A compressed noise run rebuilds U, V with a fresh frame: their Gram and principal part
    are the state's, the complement is orthogonal to the principal subspace."""
    m, n, r, k = 12, 10, 2, 2
    Sigma = problem(m, n, r)
    U0, V0 = start(m, n, k)
    res = run(Sigma, k, U0, V0, 0.2, 10, ("split", "compressed"), seed=1, noise=0.05)
    Phi = np.linalg.svd(Sigma)[0][:, :r]
    np.testing.assert_allclose(res.U.T @ res.U, res.Up.T @ res.Up + res.L_U.T @ res.L_U, atol=1e-12)
    np.testing.assert_allclose(np.abs(Phi.T @ res.U), np.abs(res.Up), atol=1e-12)


NOISE_AND_SCHEDULE = [
    ("split", "compressed", {"noise": 0.02, "balance": 0.3}),
    ("split", "full", {"noise": 0.02, "update": "alternating"}),
    ("direct", "compressed", {"noise": 0.02, "precondition": 0.1}),
]


@pytest.mark.parametrize("method, complement, variant", NOISE_AND_SCHEDULE)
def test_chunks_and_resume_are_bitwise_one_run(method, complement, variant, tmp_path, monkeypatch):
    m, n, r, k = 9, 7, 3, 2
    Sigma = problem(m, n, r)
    U0, V0 = start(m, n, k)
    lr = schedules.InverseSqrt(0.15, 3.0)
    kw = {"k": k, "lr": lr, "U0": U0, "V0": V0, "method": method, "complement": complement, "progress": False,
          "options": fastmf.Options(seed=11, **variant)}  # fmt: skip
    one = fastmf.solve(Sigma, max_iter=40, **kw)
    # chunks: at most 3 steps of noise each, and a checkpoint every 7 steps
    monkeypatch.setattr(recorder, "NOISE_PER_CHUNK", 3 * (m + n + 2 * r + 2 * k) * k)
    chunked = fastmf.solve(Sigma, max_iter=40, checkpoint=tmp_path / "a.npz", checkpoint_every=7, **kw)
    # saved at step 17, resumed to 40
    fastmf.solve(Sigma, max_iter=17, checkpoint=tmp_path / "b.npz", **kw)
    resumed = fastmf.resume(tmp_path / "b.npz", max_iter=40, Sigma=Sigma if method == "direct" else None)
    for res in (chunked, resumed):
        assert res.history.keys() == one.history.keys()
        for key in one.history:
            np.testing.assert_array_equal(res.history[key], one.history[key])
        np.testing.assert_array_equal(res.U, one.U)
        np.testing.assert_array_equal(res.V, one.V)


def test_custom_schedule_resumes_with_lr_again(tmp_path):
    Sigma = problem(6, 5, 2)
    U0, V0 = start(6, 5, 2)

    def lr(t):
        return 0.2 / (1 + t / 10)

    one = fastmf.solve(Sigma, 2, lr, 30, U0=U0, V0=V0, progress=False)
    fastmf.solve(Sigma, 2, lr, 12, U0=U0, V0=V0, checkpoint=tmp_path / "c.npz", progress=False)
    with pytest.raises(ValueError, match="pass it again"):
        fastmf.resume(tmp_path / "c.npz", max_iter=30)
    with pytest.raises(ValueError, match="not the schedule"):
        fastmf.resume(tmp_path / "c.npz", max_iter=30, lr=lambda t: 0.2 / (1 + t / 11))
    res = fastmf.resume(tmp_path / "c.npz", max_iter=30, lr=lr)
    np.testing.assert_array_equal(res.history["loss"], one.history["loss"])
    np.testing.assert_array_equal(res.U, one.U)
    with pytest.raises(ValueError, match="drop lr"):
        fastmf.resume(fastmf.solve(Sigma, 2, 0.1, 3, U0=U0, V0=V0, progress=False), lr=lr)


@pytest.mark.parametrize("method, complement", [("split", "compressed"), ("split", "full"), ("direct", "compressed")])
def test_a_singular_preconditioner_stops_the_run_and_says_why(method, complement):
    """precondition=0 with a Gram that is singular: P = G + 0 I has no inverse. The run stops
    as diverged (no exception from inside the kernel) and the message names the fix."""
    rng = np.random.default_rng(0)
    Sigma = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 20))
    U0, V0 = rng.standard_normal((30, 3)), rng.standard_normal((20, 3))
    U0[:, 2] = V0[:, 2] = 0  # rank-deficient factors: singular Grams
    run = fastmf.solve(Sigma, 3, 0.3, 5, U0=U0, V0=V0, precondition=0.0, method=method, complement=complement)
    assert run.status == "diverged" and "precondition > 0" in run.message
    batch = fastmf.solve_batch(fastmf.Problem(Sigma), 3, 0.3, 5, seeds=[0], init_scale=1e-200, precondition=0.0)
    assert batch.status[0] == "diverged" and "precondition > 0" in batch[0].message


def test_a_variant_that_diverges_is_not_blamed_on_the_start():
    run = fastmf.solve(fastmf.Problem.from_spectrum([3.0, 2.0, 1.0], 50, 40), k=3, balance=1e6, max_iter=100, seed=0)
    assert run.status == "diverged" and "balancing regularizer" in run.message and "init_scale" not in run.message
