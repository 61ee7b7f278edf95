"""solve_batch with the GD variants (balance, alternating, ScaledGD, perturbed GD, lr schedules):
each run against plain NumPy GD written from the formulas, and the same bit for bit whatever
the threads, the batch or the stops and resumes."""

import numba
import numpy as np
import pytest

import fastmf
from fastmf import Options, Problem, schedules, solve, solve_batch
from fastmf.batch import resume_batch
from fastmf.driver import Control
from fastmf.init import initial_factors, stack
from fastmf.noise import NoiseStream
from naive import low_rank

SEEDS = [0, 1, 2]
INIT = 1e-2


def _start(problem, k, seed):
    """Run `seed`'s start as solve_batch draws it: [Up; L_U], [Vp; L_V] (float64, user units)."""
    left, right = initial_factors(problem, k, INIT, seed, None, None, "compressed")
    return stack(left).astype(np.float64), stack(right).astype(np.float64)


def _numpy_gd(s, U, V, steps, lr, balance=0.0, alternating=False, precondition=None, noise=None):
    """GD in the original basis of Sigma = [diag(s) 0; 0 0] (rows of U x rows of V), which holds
    the split state exactly (its complement lives in the frame of L): the recorded losses and
    the final U, V. lr: t -> eta_t. noise: per step (Z_U, B_U, Z_V, B_V), the compressed form."""
    r, k = s.size, U.shape[1]
    S = np.zeros((U.shape[0], V.shape[0]))
    S[:r, :r] = np.diag(s)
    eye = np.eye(k)
    losses = []
    for t in range(steps + 1):
        R = S - U @ V.T
        losses.append(0.5 * np.sum(R * R))
        if t == steps:
            break
        eta = lr(t)
        Gu, Gv = U.T @ U, V.T @ V
        gU = -R @ V + 0.5 * balance * U @ (Gu - Gv)
        Pu = eye if precondition is None else Gv + precondition * eye
        Un = U - eta * np.linalg.solve(Pu, gU.T).T
        Uv, Guv, Rv = (Un, Un.T @ Un, S - Un @ V.T) if alternating else (U, Gu, R)
        gV = -Rv.T @ Uv + 0.5 * balance * V @ (Gv - Guv)
        Pv = eye if precondition is None else Guv + precondition * eye
        V = V - eta * np.linalg.solve(Pv, gV.T).T
        U = Un
        if noise is not None:
            U, V = _perturbed(U, r, *noise[0], t), _perturbed(V, r, *noise[1], t)
    return np.array(losses), U, V


def _perturbed(X, r, Z, B, t):
    """The compressed noise of step t: X + Z[t], its complement then the R of the QR of [L; B[t]]."""
    X = X + Z[t]
    if B.shape[1]:
        R = np.linalg.qr(np.vstack([X[r:], B[t]]), mode="r")[: X.shape[0] - r]
        X[r:] = R * np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]  # the kernels' R has a diagonal >= 0
    return X


def _check_runs(batch, problem, k, steps, lr, atol_rel=1e-9, **variant):
    s = np.asarray(problem.s, np.float64)
    for i, seed in enumerate(batch.seed):
        U, V = _start(problem, k, int(seed))
        losses, U, V = _numpy_gd(s, U, V, steps, lr, **variant)
        np.testing.assert_allclose(batch.losses[i], losses, rtol=atol_rel, atol=atol_rel * losses[0])
        run = batch[i]
        scale = np.abs(U).max() + np.abs(V).max()
        np.testing.assert_allclose(np.vstack([run.Up, run.L_U]), U, rtol=0, atol=atol_rel * scale)
        np.testing.assert_allclose(np.vstack([run.Vp, run.L_V]), V, rtol=0, atol=atol_rel * scale)


RNG = np.random.default_rng(7)
SHAPES = {  # (problem, k)
    "k != r, m > n": (Problem.from_spectrum(np.geomspace(3.0, 1.0, 3), 40, 30), 5),
    "m < n, dense": (Problem(low_rank(RNG, 12, 20, [2.0, 1.5, 1.0])), 2),
    "rank 1": (Problem.from_spectrum([2.0], 30, 30), 2),
    "k = m = n": (Problem(low_rank(RNG, 6, 6, [3.0, 2.0, 1.0, 0.5, 0.3, 0.1])), 6),
}
VARIANTS = {
    "balance": {"balance": 0.5},
    "alternating": {"update": "alternating"},
    "ScaledGD": {"precondition": 0.05},
    "all three": {"balance": 0.3, "update": "alternating", "precondition": 0.1},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_deterministic_variants_match_numpy(shape, variant):
    problem, k = SHAPES[shape]
    options = VARIANTS[variant]
    lr = 0.2 / problem.sigma_1
    batch = solve_batch(problem, k, lr, 60, seeds=SEEDS, init_scale=INIT, history=True, options=Options(**options))
    reference = {"balance": 0.0, "alternating": False, "precondition": None}
    reference |= {key.replace("update", "alternating"): value for key, value in options.items()}
    reference["alternating"] = reference["alternating"] == "alternating"
    _check_runs(batch, problem, k, 60, lambda t: lr, **reference)


@pytest.mark.parametrize("schedule", [schedules.InverseSqrt(0.3, 10.0), schedules.StepDecay(0.3, 0.5, 7), "callable"])
def test_schedules_match_numpy(schedule):
    problem, k = SHAPES["k != r, m > n"]
    if schedule == "callable":
        schedule = lambda t: 0.1 + 0.2 * (np.asarray(t) % 3 == 0)  # noqa: E731
    options = Options(balance=0.2)
    batch = solve_batch(problem, k, schedule, 50, seeds=SEEDS, init_scale=INIT, history=True, options=options)
    assert np.all(np.isnan(batch.lr)) and batch.options.lr is schedule
    np.testing.assert_array_equal(batch.history["lr"], schedule(batch.steps))
    _check_runs(batch, problem, k, 50, lambda t: float(schedule(np.array([t]))[0]), balance=0.2)
    np.testing.assert_array_equal(batch[1].history["lr"], schedule(batch.steps))


def test_float32_variant_tracks_float64():
    problem, k = SHAPES["k != r, m > n"]
    p32 = Problem.from_spectrum(np.asarray(problem.s, np.float32), 40, 30)
    options = Options(**VARIANTS["all three"])
    b32 = solve_batch(p32, k, 0.05, 60, seeds=SEEDS, init_scale=INIT, history=True, options=options)
    assert b32.resume_state["Xs"].dtype == np.float32
    b64 = solve_batch(problem, k, 0.05, 60, seeds=SEEDS, init_scale=INIT, history=True, options=options)
    np.testing.assert_allclose(b32.losses, b64.losses, rtol=1e-3, atol=1e-5 * b64.losses[:, 0].max())


@pytest.mark.parametrize(
    "options, reference",
    [({"balance": 0.1}, {"balance": 0.1}),
     ({"update": "alternating", "precondition": 0.1}, {"alternating": True, "precondition": 0.1})],
    ids=["balance", "alternating ScaledGD"],
)  # fmt: skip
@pytest.mark.parametrize("m, n", [(40, 30), (6, 5)])  # m - r - k >= k (Bartlett B), and < k
def test_noise_adds_the_streams_draws(m, n, options, reference):
    """The kernel's perturbed step against NumPy with the same draws: NoiseStream(seed) drawn
    once for all steps, the complement's R from np.linalg.qr (compared through L^T L, which
    fixes R up to the signs of its rows). Alternating: the noise comes after the whole step,
    the Y side stepping from the noiseless new X."""
    problem, k, nu, steps = Problem.from_spectrum(np.geomspace(3.0, 1.0, 3), m, n), 3 if m > 6 else 2, 1e-2, 40
    lr = 0.1
    batch = solve_batch(problem, k, lr, steps, seeds=SEEDS, init_scale=INIT, history=True,
                        options=Options(noise=nu, **options))  # fmt: skip
    r = problem.rank
    for i, seed in enumerate(SEEDS):
        U, V = _start(problem, k, seed)
        sides = [(U.shape[0], k, m - U.shape[0]), (V.shape[0], k, n - V.shape[0])]
        noise = NoiseStream(seed).draw(steps, nu, sides)
        assert (noise[0][1].shape[1] > 0) == (m - U.shape[0] > 0)
        losses, U, V = _numpy_gd(np.asarray(problem.s), U, V, steps, lambda t: lr, noise=noise, **reference)
        np.testing.assert_allclose(batch.losses[i], losses, rtol=1e-9)
        run = batch[i]
        np.testing.assert_allclose(run.Up, U[:r], rtol=0, atol=1e-10)
        np.testing.assert_allclose(run.Vp, V[:r], rtol=0, atol=1e-10)
        np.testing.assert_allclose(run.L_U.T @ run.L_U, U[r:].T @ U[r:], rtol=0, atol=1e-12)
        np.testing.assert_allclose(run.L_V.T @ run.L_V, V[r:].T @ V[r:], rtol=0, atol=1e-12)


def test_noise_law_matches_perturbed_gd_in_the_original_basis():
    """Mean final loss and ||U^T U - V^T V||_F over 300 seeds against NumPy perturbed GD on the
    dense Sigma with its own Gaussian noise: two-sample z-tests at |z| < 5 (false alarm < 1e-6
    each)."""
    m, n, k, nu, steps, runs = 30, 25, 2, 0.05, 30, 300
    s = np.array([2.0, 1.0])
    problem = Problem.from_spectrum(s, m, n)
    batch = solve_batch(problem, k, 0.2, steps, seeds=range(runs), init_scale=0.1, options=Options(noise=nu))
    imbalance = [np.linalg.norm(run.Up.T @ run.Up + run.L_U.T @ run.L_U - run.Vp.T @ run.Vp - run.L_V.T @ run.L_V)
                 for run in batch]  # fmt: skip
    rng = np.random.default_rng(123)
    S = np.zeros((m, n))
    S[:2, :2] = np.diag(s)
    ref_loss, ref_imbalance = [], []
    for _ in range(runs):
        U, V = 0.1 * rng.standard_normal((m, k)), 0.1 * rng.standard_normal((n, k))
        for _ in range(steps):
            R = S - U @ V.T
            U, V = U + 0.2 * R @ V, V + 0.2 * R.T @ U
            U, V = U + nu * rng.standard_normal((m, k)), V + nu * rng.standard_normal((n, k))
        ref_loss.append(0.5 * np.sum((S - U @ V.T) ** 2))
        ref_imbalance.append(np.linalg.norm(U.T @ U - V.T @ V))
    for ours, theirs in ((batch.final_loss, ref_loss), (imbalance, ref_imbalance)):
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        z = (ours.mean() - theirs.mean()) / np.sqrt(ours.var(ddof=1) / runs + theirs.var(ddof=1) / runs)
        assert abs(z) < 5, (ours.mean(), theirs.mean(), z)


ALL = {"balance": 0.2, "update": "alternating", "precondition": 0.1, "noise": 1e-3}


def _same(a, b):
    for name, col in a.table().items():
        np.testing.assert_array_equal(col, b.table()[name])
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.resume_state["Xs"], b.resume_state["Xs"])
    np.testing.assert_array_equal(a.resume_state["Ys"], b.resume_state["Ys"])


@pytest.mark.parametrize("lr", [0.1, schedules.InverseSqrt(0.1, 20.0)])
def test_threads_and_batch_size_change_nothing(lr):
    problem = Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 200, 150)
    seeds = np.arange(40)  # two blocks of lanes, the last one partial
    run = lambda seeds: solve_batch(problem, 4, lr, 150, seeds=seeds, history=True, options=Options(**ALL))  # noqa: E731
    whole = run(seeds)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _same(whole, run(seeds))
    finally:
        numba.set_num_threads(before)
    for i in (0, 33):
        single = run(seeds[i : i + 1])
        np.testing.assert_array_equal(single.losses[0], whole.losses[i])
        np.testing.assert_array_equal(single.resume_state["Xs"][0], whole.resume_state["Xs"][i])


@pytest.mark.parametrize("lr", [0.1, schedules.StepDecay(0.2, 0.5, 40), "callable"])
def test_stop_save_resume_is_bitwise(tmp_path, lr):
    """Stopped at step 70 (chunks of 7 steps), saved, loaded and resumed to 150: the run of one
    call, bit for bit (the noise streams' states and the schedule travel in the file)."""
    problem = Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 200, 150)
    custom = lr == "callable"
    if custom:
        lr = lambda t: 0.15 / (1.0 + np.asarray(t) / 50.0)  # noqa: E731
    whole = solve_batch(problem, 4, lr, 150, seeds=range(5), history=True, options=Options(**ALL))
    path = tmp_path / "batch.npz"
    part = solve_batch(problem, 4, lr, 150, seeds=range(5), history=True, time_limit=1e-9, options=Options(**ALL))
    while part.n_iter.max() < 70:  # one chunk per call (the time limit stops the first)
        part = resume_batch(part, 70, Control(None, None, 1e-9, None, None), lr=lr if custom else None)
    part.save(path)
    saved = fastmf.load(path)
    assert saved.resume_state["noise"].dtype.kind == "U"
    if custom:
        assert isinstance(saved.options.lr, schedules.Custom)
        with pytest.raises(ValueError, match="not the schedule this run was saved with"):
            resume_batch(saved, 150, Control(None, None, None, None, None), lr=lambda t: 0.1 + 0 * t)
    resumed = resume_batch(saved, 150, Control(None, None, None, None, None), lr=lr if custom else None)
    _same(whole, resumed)
    if not callable(lr):
        return
    np.testing.assert_array_equal(resumed.history["lr"], whole.history["lr"])


def test_plain_options_keep_the_plain_kernel_path():
    """balance=0, simultaneous, no preconditioner, noise 0 and a constant lr is plain GD: the
    numbers of a run with the variant fields spelled out equal those of one without."""
    problem, k = SHAPES["k != r, m > n"]
    plain = solve_batch(problem, k, 0.1, 80, seeds=SEEDS, history=True)
    options = Options(balance=0.0, update="simultaneous", noise=0.0)
    spelled = solve_batch(problem, k, 0.1, 80, seeds=SEEDS, history=True, options=options)
    np.testing.assert_array_equal(plain.losses, spelled.losses)
    np.testing.assert_array_equal(plain.resume_state["Xs"], spelled.resume_state["Xs"])


@pytest.mark.parametrize("variant", ["balance", "alternating", "ScaledGD", "noise", "noise and all three"])
def test_each_run_is_solves_run(variant):
    """Run i of a batch is fastmf.solve(..., seed=seeds[i]) with the same options, to rounding;
    with noise too (the same draws, and the same sign convention for the R of the complement)."""
    problem, k = SHAPES["k != r, m > n"]
    noisy = {"noise": {"noise": 1e-3}, "noise and all three": VARIANTS["all three"] | {"noise": 1e-3}}
    options = Options(**(VARIANTS | noisy)[variant])
    batch = solve_batch(problem, k, 0.1, 60, seeds=SEEDS, init_scale=INIT, history=True, options=options)
    for i, seed in enumerate(SEEDS):
        res = solve(problem, k, 0.1, 60, seed=seed, init_scale=INIT, spectral_every=0, options=options)
        np.testing.assert_allclose(batch.losses[i], res.history["loss"], rtol=1e-9, atol=1e-12 * res.history["loss"][0])
        np.testing.assert_allclose(batch[i].U, res.U, rtol=0, atol=1e-9 * np.abs(res.U).max())


def test_fastmf_resume_gives_a_batch_its_own_schedule_again(tmp_path):
    """A batch with a callable schedule, stopped and saved, goes on through fastmf.resume(path,
    lr=schedule) bit for bit; without lr, or with another schedule, it says what to pass."""
    problem, k = SHAPES["k != r, m > n"]
    own = lambda t: 0.1 / (1 + np.asarray(t) / 500.0)  # noqa: E731
    path = tmp_path / "b.npz"
    solve_batch(problem, k, own, 300, seeds=SEEDS, init_scale=INIT, checkpoint=path, time_limit=1e-9)
    with pytest.raises(ValueError, match="pass it again"):
        fastmf.resume(path)
    with pytest.raises(ValueError, match="not the schedule this run was saved with"):
        fastmf.resume(path, lr=lambda t: 0.2 + 0 * t)
    resumed = fastmf.resume(path, lr=own)
    whole = solve_batch(problem, k, own, 300, seeds=SEEDS, init_scale=INIT)
    np.testing.assert_array_equal(resumed.final_loss, whole.final_loss)
    np.testing.assert_array_equal(resumed.resume_state["Xs"], whole.resume_state["Xs"])
