"""The GD variants (balance, alternating, precondition, lr schedules, noise, starts) in every engine
against plain NumPy in the original basis (tests/naive.py `gd_variant`, written from the formulas).

Deterministic variants: path by path, to ~1e-9, for the compressed and full complements, the
direct path and solve_batch. Perturbed GD: path by path (the library's own draws fed to NumPy) on
the full complement and the direct path, in law on the compressed complement (fixed seeds, so the
statistical tests are deterministic; their false-alarm rate is stated where they are).
"""

import numpy as np
import pytest
import scipy.stats

import fastmf
from fastmf import Options, Problem, schedules, solve, solve_batch
from fastmf.init import gaussian, seed_streams
from fastmf.noise import NoiseStream
from naive import gd, gd_variant, low_rank

# (m, n, r, k): m < n, m > n at rank 1, k = m = n at full rank, k < r, k > r, m - r < k (compressed L of fewer rows)
SHAPES = [(6, 9, 2, 3), (9, 6, 1, 1), (5, 5, 5, 5), (8, 7, 3, 2), (7, 10, 2, 4), (5, 8, 2, 4)]
# undamped ScaledGD needs k <= r: with k > r the Grams tend to singular, and the runs to rounding
K_AT_MOST_R = [(9, 6, 1, 1), (8, 7, 3, 2), (6, 9, 2, 2), (10, 7, 3, 3)]
LR = 0.2 / 3.0  # 0.2 / sigma_1 with the spectrum of `_case`
STEPS = 120
# the single-run engines; method="split" given, as "auto" takes the direct path for a small full-rank Sigma
ENGINES = [
    {"method": "split", "complement": "compressed"},
    {"method": "split", "complement": "full"},
    {"method": "direct"},
]

# name: the options of the variant, as given to fastmf.Options and to naive.gd_variant
VARIANTS = {
    "balance": {"balance": 1.0},
    "alternating": {"update": "alternating"},
    "precondition": {"precondition": 0.5},
    "precondition0": {"precondition": 0.0},  # undamped ScaledGD, from the moderate start of `_case`
    "inverse_sqrt": {"lr": schedules.InverseSqrt(LR, 20.0)},
    "step_decay": {"lr": schedules.StepDecay(2 * LR, 0.5, 30)},
    "warmup": {"lr": schedules.Warmup(LR, 25)},
    "callable": {"lr": lambda t: LR * (1.0 + 0.5 * np.cos(t))},  # a plain callable on arrays of steps
    "all": {"balance": 0.5, "update": "alternating", "precondition": 0.2, "lr": schedules.InverseSqrt(LR, 40.0)},
    "balance_precondition0": {"balance": 2.0, "precondition": 0.0},
}


def _naive_kwargs(variant):
    opts = dict(variant)
    opts.pop("lr", None)
    if opts.pop("update", "simultaneous") == "alternating":
        opts["alternating"] = True
    return opts


def _lr(variant):
    return variant.get("lr", LR)


def _options(variant, **more):
    """fastmf.Options of a variant, with lr = LR unless the variant has a schedule."""
    return Options(**{"lr": LR, **variant, **more})


def _case(m, n, r, k, seed=0):
    rng = np.random.default_rng(seed)
    Sigma = low_rank(rng, m, n, np.geomspace(3.0, 1.0, r))
    return Sigma, 0.3 * rng.standard_normal((m, k)), 0.3 * rng.standard_normal((n, k))


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _check_run(res, ref, variant, rtol=1e-9):
    """res (a SolveResult recorded every step) against naive.gd_variant's (losses, imbalances, U, V)."""
    loss, imbalance, U, V = ref
    np.testing.assert_array_equal(res.history["step"], np.arange(loss.size))
    np.testing.assert_allclose(res.history["loss"], loss, rtol=rtol, atol=1e-3 * rtol * loss[0])
    scale = max(imbalance[0], np.sqrt(2 * loss[0]))  # a balanced or symmetric start has imbalance[0] = 0
    np.testing.assert_allclose(res.history["imbalance"], imbalance, rtol=10 * rtol, atol=1e-3 * rtol * scale)
    assert _rel(res.U, U) < rtol and _rel(res.V, V) < rtol
    if variant.get("balance", 0) > 0:  # the regularizer is recorded beside the plain loss
        reg = variant["balance"] / 8 * imbalance**2
        np.testing.assert_allclose(res.history["regularizer"], reg, rtol=20 * rtol, atol=1e-3 * rtol * loss[0])
    if callable(variant.get("lr")):  # the step size of each recorded step, in user units
        np.testing.assert_allclose(res.history["lr"], variant["lr"](np.arange(loss.size)), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the reference itself


def test_reference_with_no_variant_is_plain_gd_bit_for_bit():
    Sigma, U0, V0 = _case(6, 9, 2, 3)
    for a, b in zip(gd(Sigma, U0, V0, LR, 40), gd_variant(Sigma, U0, V0, LR, 40), strict=True):
        np.testing.assert_array_equal(a, b)
    # a constant callable schedule, a zero balance and no noise are plain GD too
    for a, b in zip(gd(Sigma, U0, V0, LR, 40), gd_variant(Sigma, U0, V0, lambda t: LR, 40, balance=0.0), strict=True):
        np.testing.assert_array_equal(a, b)


def _objective(Sigma, U, V, bal):
    R = Sigma - U @ V.T
    D = U.T @ U - V.T @ V
    return 0.5 * np.sum(R * R) + bal / 8 * np.sum(D * D)


def test_reference_balance_step_is_minus_the_gradient():
    """One step of size eta moves (U, V) by -eta times the finite-difference gradient of
    1/2 ||R||^2 + (bal/8) ||U^T U - V^T V||_F^2 (central differences, O(h^2))."""
    Sigma, U0, V0 = _case(5, 7, 2, 3)
    bal, eta, h = 1.5, 1e-3, 1e-6
    _, _, U1, V1 = gd_variant(Sigma, U0, V0, eta, 1, balance=bal)
    sides = ((U0, U1, lambda X: _objective(Sigma, X, V0, bal)), (V0, V1, lambda X: _objective(Sigma, U0, X, bal)))
    for X0, X1, f in sides:
        fd = np.zeros_like(X0)
        for idx in np.ndindex(X0.shape):
            E = np.zeros_like(X0)
            E[idx] = h
            fd[idx] = (f(X0 + E) - f(X0 - E)) / (2 * h)
        np.testing.assert_allclose((X0 - X1) / eta, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


def test_reference_heavily_damped_precondition_is_a_scaled_gd_step():
    """(G + lam I)^-1 = (I - G / lam + ...) / lam: lam times the step tends to plain GD's step."""
    Sigma, U0, V0 = _case(5, 7, 2, 3)
    _, _, U, V = gd(Sigma, U0, V0, LR, 1)
    for lam in (1e4, 1e6):
        _, _, Up, Vp = gd_variant(Sigma, U0, V0, LR * lam, 1, precondition=lam)
        err = max(_rel(Up - U0, U - U0), _rel(Vp - V0, V - V0))
        assert 1e-2 / lam < err < 1e2 / lam  # first order in 1 / lam: right, and not exact
    # and at moderate lam it is not plain GD
    _, _, Up, _ = gd_variant(Sigma, U0, V0, LR, 1, precondition=0.5)
    assert _rel(Up, U) > 1e-3


def test_reference_alternating_steps_v_from_the_new_u():
    Sigma, U0, V0 = _case(5, 7, 2, 3)
    for variant in ({}, {"balance": 1.0, "precondition": 0.3}):
        _, _, Us, Vs = gd_variant(Sigma, U0, V0, LR, 1, **variant)
        _, _, Ua, Va = gd_variant(Sigma, U0, V0, LR, 1, alternating=True, **variant)
        np.testing.assert_array_equal(Ua, Us)  # U's step is the same
        assert _rel(Va, Vs) > 1e-3  # V's is not ...
        _, _, _, V_from_new_u = gd_variant(Sigma, Ua, V0, LR, 1, **variant)
        np.testing.assert_array_equal(Va, V_from_new_u)  # ... it is the simultaneous step from (U', V)


def test_reference_noise_enters_after_the_whole_step():
    Sigma, U0, V0 = _case(5, 7, 2, 3)
    rng = np.random.default_rng(1)
    Z = [(rng.standard_normal(U0.shape), rng.standard_normal(V0.shape)) for _ in range(3)]
    _, _, U, V = gd_variant(Sigma, U0, V0, LR, 3, alternating=True, balance=1.0, noise=lambda t: Z[t])
    for t in range(3):  # by hand: a noiseless step, then the noise
        _, _, U0, V0 = gd_variant(Sigma, U0, V0, LR, 1, alternating=True, balance=1.0)
        U0, V0 = U0 + Z[t][0], V0 + Z[t][1]
    np.testing.assert_array_equal(U, U0)
    np.testing.assert_array_equal(V, V0)


# ---------------------------------------------------------------------------------------------
# deterministic variants, path by path


@pytest.mark.parametrize(
    "name, m, n, r, k",
    [(name, *shape) for name in VARIANTS for shape in (K_AT_MOST_R if "precondition0" in name else SHAPES)],
)
def test_solve_engines_match_reference(name, m, n, r, k):
    variant = VARIANTS[name]
    Sigma, U0, V0 = _case(m, n, r, k)
    ref = gd_variant(Sigma, U0, V0, _lr(variant), STEPS, **_naive_kwargs(variant))
    assert np.isfinite(ref[0]).all() and ref[0][-1] < ref[0][0]  # a run that goes somewhere
    for engine in ENGINES:
        res = solve(Sigma, k, max_iter=STEPS, U0=U0, V0=V0, options=_options(variant, **engine))
        assert res.status == "max_iter" and res.n_iter == STEPS
        _check_run(res, ref, variant)


@pytest.mark.parametrize("name", ["balance", "alternating", "precondition", "inverse_sqrt", "all"])
def test_float32_tracks_the_float64_reference(name):
    variant = VARIANTS[name]
    Sigma, U0, V0 = _case(7, 10, 2, 4, seed=1)
    loss, _, U, V = gd_variant(Sigma, U0, V0, _lr(variant), 80, **_naive_kwargs(variant))
    for engine in ENGINES:
        res = solve(Sigma.astype(np.float32), 4, max_iter=80, U0=U0, V0=V0, options=_options(variant, **engine))
        assert res.U.dtype == np.float32 and res.V.dtype == np.float32
        np.testing.assert_allclose(res.history["loss"], loss, rtol=2e-3, atol=1e-5 * loss[0])
        assert _rel(res.U, U) < 1e-4 and _rel(res.V, V) < 1e-4


def test_solve_random_start_is_the_documented_gaussian():
    """What the batch tests rely on: on a dense Sigma, solve's start from `seed` is
    gaussian(default_rng(seed_streams(seed)[0]), m, n, k, init_scale)."""
    Sigma, _, _ = _case(6, 9, 2, 3)
    for options in (Options(**engine) for engine in ENGINES):
        res = solve(Sigma, 3, LR, 0, seed=7, init_scale=0.3, options=options)
        U0, V0 = gaussian(np.random.default_rng(seed_streams(7)[0]), 6, 9, 3, 0.3)
        assert _rel(res.U, U0) < 1e-14 and _rel(res.V, V0) < 1e-14


@pytest.mark.parametrize("m, n, r, k", [(6, 9, 2, 3), (9, 6, 1, 1), (5, 5, 5, 5), (5, 8, 2, 4)])
@pytest.mark.parametrize("name", ["balance", "alternating", "precondition", "step_decay", "all"])
def test_batch_matches_solve_and_reference(name, m, n, r, k):
    variant = VARIANTS[name]
    Sigma, _, _ = _case(m, n, r, k)
    problem, seeds = Problem(Sigma), [3, 1, 4]
    batch = solve_batch(
        problem, k, max_iter=STEPS, seeds=seeds, init_scale=0.3, history=True, options=_options(variant)
    )
    for i, seed in enumerate(seeds):
        U0, V0 = gaussian(np.random.default_rng(seed_streams(seed)[0]), m, n, k, 0.3)
        loss, _, U, V = gd_variant(Sigma, U0, V0, _lr(variant), STEPS, **_naive_kwargs(variant))
        np.testing.assert_allclose(batch.losses[i], loss, rtol=1e-9, atol=1e-12 * loss[0])
        assert _rel(batch[i].U, U) < 1e-9 and _rel(batch[i].V, V) < 1e-9
        res = solve(problem, k, max_iter=STEPS, seed=seed, init_scale=0.3, options=_options(variant))
        np.testing.assert_allclose(batch.losses[i], res.history["loss"], rtol=1e-9, atol=1e-12 * loss[0])
        np.testing.assert_allclose(batch.final_loss[i], loss[-1], rtol=1e-9, atol=1e-12 * loss[0])


# ---------------------------------------------------------------------------------------------
# perturbed GD


def _library_noise(seed, steps, nu, m, n, k):
    """The noise of a run with this seed in original coordinates, as the full complement and the
    direct path draw it, as a callable t -> (Z_U, Z_V) for naive.gd_variant."""
    (ZU, _), (ZV, _) = NoiseStream(seed).draw(steps, nu, [(m, k, None), (n, k, None)])
    return lambda t: (ZU[t], ZV[t])


def test_noise_stream_draws_each_side_from_its_own_stream_step_by_step():
    """NoiseStream's documented draws, which fix every path-by-path run: each side's Z is nu
    times the standard normals of its own stream (spawn keys 3 for U, 6 for V under the seed),
    step by step; a compressed side's B is nu times a Bartlett factor (chi on the diagonal,
    from its own streams); and the numbers do not depend on how the steps are cut into draws."""
    m, n, k, steps, nu, seed = 5, 4, 2, 3, 0.3, 9
    sides = [(m, k, None), (n, k, None)]
    (ZU, BU), (ZV, BV) = NoiseStream(seed).draw(steps, nu, sides)

    def stream(key):
        sequence = np.random.SeedSequence(seed, spawn_key=(key,))
        return np.random.Generator(np.random.PCG64(sequence))

    np.testing.assert_array_equal(ZU, nu * stream(3).standard_normal((steps, m, k)))
    np.testing.assert_array_equal(ZV, nu * stream(6).standard_normal((steps, n, k)))
    assert BU.shape == (steps, 0, k) and BV.shape == (steps, 0, k)
    whole = NoiseStream(seed)
    parts = [whole.draw(c, nu, sides) for c in (1, 2)]
    np.testing.assert_array_equal(np.concatenate([p[0][0] for p in parts]), ZU)
    np.testing.assert_array_equal(np.concatenate([p[1][0] for p in parts]), ZV)
    rest = 50
    (_, B), _ = NoiseStream(seed).draw(steps, nu, [(m, k, rest), (n, k, None)])
    chi = np.sqrt(stream(5).chisquare(rest - np.arange(k), size=(steps, k)))
    np.testing.assert_array_equal(B[:, np.arange(k), np.arange(k)], nu * chi)
    np.testing.assert_array_equal(B[:, 1, 0], 0.0)
    np.testing.assert_array_equal(B[:, 0, 1], nu * stream(4).standard_normal((steps, k, k))[:, 0, 1])


@pytest.mark.parametrize("m, n, r, k", [(6, 9, 2, 3), (9, 6, 1, 1), (5, 5, 5, 5), (8, 7, 3, 2)])
@pytest.mark.parametrize("name", ["plain", "balance", "alternating", "all"])
def test_noise_full_and_direct_match_reference_path_by_path(name, m, n, r, k):
    variant = VARIANTS.get(name, {})
    Sigma, U0, V0 = _case(m, n, r, k)
    nu, seed = 0.01, 11
    noise = _library_noise(seed, STEPS, nu, m, n, k)
    ref = gd_variant(Sigma, U0, V0, _lr(variant), STEPS, noise=noise, **_naive_kwargs(variant))
    # the noise matters: the run is not the noiseless one
    assert abs(ref[0][-1] - gd_variant(Sigma, U0, V0, _lr(variant), STEPS, **_naive_kwargs(variant))[0][-1]) > 1e-6
    for engine in ENGINES[1:]:
        options = _options(variant, **engine, noise=nu, seed=seed)
        _check_run(solve(Sigma, k, max_iter=STEPS, U0=U0, V0=V0, options=options), ref, variant)


def _final_stats(runs):
    """(final loss, final imbalance) of each (losses, imbalances, U, V)."""
    return np.array([[loss[-1], imbalance[-1]] for loss, imbalance, _, _ in runs]).T


def _same_law(a, b, what):
    """Two samples with the same law: two-sample Kolmogorov-Smirnov at p > 1e-3 and means within
    4 standard errors (false alarm 6e-5). Per call the false-alarm rate is at most 1.1e-3."""
    p = scipy.stats.ks_2samp(a, b).pvalue
    z = (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert p > 1e-3 and abs(z) < 4, f"{what}: KS p = {p:.2g}, means {a.mean():.6g} vs {b.mean():.6g} (z = {z:.2f})"


N_LAW = 300  # runs per sample
LAW_STEPS = 100


# (m, n, r, k): compressed rest = m - r - k' on each side: 0 and 1; 0 with m - r < k and 2 (< k); 23 and 18 (Bartlett)
@pytest.mark.parametrize(
    "m, n, r, k, name", [(5, 6, 2, 3, "plain"), (4, 7, 2, 3, "plain"), (28, 23, 2, 3, "plain"), (28, 23, 2, 3, "all")]
)
def test_noise_compressed_is_exact_in_law(m, n, r, k, name):
    """Final loss and imbalance over N_LAW seeds against NumPy perturbed GD with independent noise.
    Two statistics per case, each at most 1.1e-3 (`_same_law`): false alarm <= 2.2e-3 per case,
    <= 9e-3 for the four cases, for seeds drawn at random; the seeds here are fixed."""
    variant = VARIANTS.get(name, {})
    Sigma, U0, V0 = _case(m, n, r, k, seed=2)
    U0, V0, nu = U0 / 3, V0 / 3, 0.02
    problem, options = Problem(Sigma), _options(variant, noise=nu)
    fast = [solve(problem, k, max_iter=LAW_STEPS, U0=U0, V0=V0, seed=s, options=options) for s in range(N_LAW)]
    fast = np.array([[res.history["loss"][-1], res.history["imbalance"][-1]] for res in fast]).T
    rng = np.random.default_rng(1234)
    draw = lambda t: (nu * rng.standard_normal((m, k)), nu * rng.standard_normal((n, k)))  # noqa: E731
    ref = _final_stats(
        gd_variant(Sigma, U0, V0, _lr(variant), LAW_STEPS, noise=draw, **_naive_kwargs(variant)) for _ in range(N_LAW)
    )
    _same_law(fast[0], ref[0], "final loss")
    _same_law(fast[1], ref[1], "final imbalance")


def test_noise_batch_is_exact_in_law():
    """solve_batch's perturbed GD from random starts against NumPy's (random starts of the same law,
    independent noise); false alarm <= 2.2e-3 as above."""
    m, n, r, k, nu, scale = 28, 23, 2, 3, 0.02, 0.1
    Sigma, _, _ = _case(m, n, r, k, seed=2)
    batch = solve_batch(Sigma, k, LR, LAW_STEPS, seeds=range(N_LAW), init_scale=scale, options=Options(noise=nu))
    fast_imbalance = np.array([np.linalg.norm(run.U.T @ run.U - run.V.T @ run.V) for run in batch])
    rng = np.random.default_rng(4321)
    draw = lambda t: (nu * rng.standard_normal((m, k)), nu * rng.standard_normal((n, k)))  # noqa: E731
    ref = _final_stats(
        gd_variant(Sigma, *gaussian(rng, m, n, k, scale), LR, LAW_STEPS, noise=draw) for _ in range(N_LAW)
    )
    _same_law(batch.final_loss, ref[0], "final loss")
    _same_law(fast_imbalance, ref[1], "final imbalance")


# ---------------------------------------------------------------------------------------------
# starts


@pytest.mark.parametrize("engine", ENGINES)
def test_balanced_start_is_balanced_and_runs_as_the_reference(engine):
    Sigma, _, _ = _case(6, 9, 2, 3)
    variant = VARIANTS["all"]
    start = solve(Sigma, 3, LR, 0, seed=5, init_scale=0.3, options=Options(init="balanced", **engine))
    U0, V0 = start.U, start.V
    assert np.linalg.norm(U0.T @ U0 - V0.T @ V0) < 1e-13 * np.linalg.norm(U0.T @ U0)
    res = solve(Sigma, 3, max_iter=STEPS, seed=5, init_scale=0.3, options=_options(variant, init="balanced", **engine))
    _check_run(res, gd_variant(Sigma, U0, V0, _lr(variant), STEPS, **_naive_kwargs(variant)), variant)


def test_balanced_start_in_batch():
    Sigma, _, _ = _case(6, 9, 2, 3)
    batch = solve_batch(
        Sigma, 3, LR, STEPS, seeds=[2, 8], init_scale=0.3, history=True, options=Options(init="balanced")
    )
    for i, seed in enumerate([2, 8]):
        start = solve(Sigma, 3, LR, 0, seed=seed, init_scale=0.3, init="balanced")
        assert np.linalg.norm(start.U.T @ start.U - start.V.T @ start.V) < 1e-13 * np.linalg.norm(start.U) ** 2
        loss = gd(Sigma, start.U, start.V, LR, STEPS)[0]
        np.testing.assert_allclose(batch.losses[i], loss, rtol=1e-9, atol=1e-12 * loss[0])


@pytest.mark.parametrize("name", ["plain", "balance", "precondition"])
def test_symmetric_start_stays_symmetric_on_a_symmetric_target(name):
    """U0 = V0 and Sigma = Sigma^T: every simultaneous variant keeps U = V (the gradient-flow paper's case)."""
    variant = VARIANTS.get(name, {})
    rng = np.random.default_rng(3)
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    Sigma = (Q * np.array([3.0, 2.0, 1.0, 0.5, 0.0, 0.0])) @ Q.T
    for engine in ENGINES:
        options = _options(variant, init="symmetric", **engine)
        start = solve(Sigma, 4, LR, 0, seed=1, init_scale=0.3, options=options)
        np.testing.assert_allclose(start.U, start.V, rtol=0, atol=1e-14)
        res = solve(Sigma, 4, LR, STEPS, seed=1, init_scale=0.3, options=options)
        _check_run(res, gd_variant(Sigma, start.U, start.U, LR, STEPS, **_naive_kwargs(variant)), variant)
        assert _rel(res.U, res.V) < 1e-9


@pytest.mark.parametrize("name", ["plain", "balance", "alternating", "precondition", "all"])
def test_split_start_on_a_spectrum_problem(name):
    """A start in split coordinates: U = Phi Up + W L_U with any orthonormal W in the complement. On the
    coordinate basis of a spectrum problem, W = the next k rows gives the dense start; loss and
    imbalance do not depend on W, nor do Up and L_U^T L_U."""
    variant = VARIANTS.get(name, {})
    s, m, n, k = np.array([3.0, 1.5]), 9, 7, 3
    rng = np.random.default_rng(4)
    Up, Vp, L_U, L_V = (0.3 * rng.standard_normal(shape) for shape in [(2, k), (2, k), (k, k), (k, k)])
    problem = Problem.from_spectrum(s, m, n)
    U0, V0 = np.zeros((m, k)), np.zeros((n, k))
    U0[:2], U0[2 : 2 + k], V0[:2], V0[2 : 2 + k] = Up, L_U, Vp, L_V
    loss, imbalance, U, V = gd_variant(problem.dense(), U0, V0, _lr(variant), STEPS, **_naive_kwargs(variant))
    start = fastmf.SplitStart(Up, Vp, L_U, L_V)
    for complement in ("compressed", "full"):
        res = solve(problem, k, max_iter=STEPS, start=start, options=_options(variant, complement=complement))
        np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-9, atol=1e-12 * loss[0])
        np.testing.assert_allclose(res.history["imbalance"], imbalance, rtol=1e-8, atol=1e-12 * imbalance[0])
        assert _rel(res.Up, U[:2]) < 1e-9 and _rel(res.Vp, V[:2]) < 1e-9
        assert _rel(res.L_U.T @ res.L_U, U[2:].T @ U[2:]) < 1e-9 and _rel(res.L_V.T @ res.L_V, V[2:].T @ V[2:]) < 1e-9
