"""The shared layout, the stage tests of the single-run and the batch kernels against each other
and against NumPy, and a batch advanced in several calls against one call."""

import numpy as np
import pytest

from fastmf import _kernels as K
from fastmf.recorder import plain_variant
from fastmf.split import diagnostic_work, plain_work

LANES = K.LANES


def test_every_record_column_has_its_name():
    assert K.N_KEYS == len(K.KEYS) == K.N_CHEAP + K.N_TRACKED + 1 and K.KEYS[-1] == "grad_fro"
    for c, key in enumerate(K.KEYS):
        assert getattr(K, key.upper()) == c, key
    info = (K.STEP, K.N_RECORDS, K.STATUS, K.BAD_STEP, K.T1, K.T0)
    summary = (K.N_ITER, K.FINAL_LOSS, K.STATUS, K.T_DELTA, K.T1, K.T0)
    assert sorted(info) == list(range(K.N_INFO)) and sorted(summary) == list(range(K.N_SUMMARY))
    assert len({K.RUNNING, K.CONVERGED, K.DIVERGED}) == 3


# -- the stage tests: single run, batch, NumPy ------------------------------------------------------


def _stacked(P, rng, dtype):
    """The stacked state [P; L] with a small random complement L (k rows): stages ignore it."""
    k = P.shape[1]
    return np.vstack([P, 1e-3 * rng.standard_normal((k, k))]).astype(dtype)


def _single(X, Y, s, T1_reached):
    """(T1 reached, T0 reached) as the single-run kernel finds them on recording the state (X, Y) at step 7."""
    r, k = s.size, X.shape[1]
    info = np.full(K.N_INFO, -1, np.int64)
    info[[K.STEP, K.N_RECORDS, K.STATUS, K.T1]] = 7, 0, K.RUNNING, 0 if T1_reached else -1
    E, D, vecs, valid = diagnostic_work(r, k)
    E = E.astype(X.dtype)
    K.run_blocks(X.copy(), Y.copy(), s, *plain_variant(X.dtype, 0.1), -1.0, 7, 7, 1, 0, np.empty_like(X),
                 np.empty_like(Y), *plain_work(X, Y), E, D, vecs, valid, np.zeros(1, np.int64), np.zeros((1, K.N_KEYS)),
                 info, None)  # fmt: skip
    assert info[K.N_RECORDS] == 1 and info[K.STATUS] == K.RUNNING
    return info[K.T1] >= 0, info[K.T0] == 7


def _plain_batch(Xs, Ys):
    """run_batch's (lr_scale, variant, noise) for plain GD with the constant steps lrs."""
    return np.ones(1, Xs.dtype), None, None


def _batch(Xs, Ys, s, T1_reached):
    """(T1 reached, T0 reached) per run, as the batch kernel finds them on recording the states at step 7."""
    runs = Xs.shape[0]
    summary = np.full((runs, K.N_SUMMARY), -1.0)
    summary[:, [K.N_ITER, K.STATUS, K.FINAL_LOSS]] = 7, K.RUNNING, np.nan
    summary[:, K.T1] = 0 if T1_reached else -1
    lrs = np.full(runs, 0.1, Xs.dtype)
    K.run_batch(Xs.copy(), Ys.copy(), s, lrs, *_plain_batch(Xs, Ys), -1.0, 7, 7, 7, 1, -1.0, summary,
                np.zeros((runs, 0)))  # fmt: skip
    assert np.all(summary[:, K.STATUS] == K.RUNNING) and np.all(np.isfinite(summary[:, K.FINAL_LOSS]))
    return summary[:, K.T1] >= 0, summary[:, K.T0] == 7


def _numpy(X, Y, s, T1_reached):
    """(T1, T0) by eigenvalues, from the state's values in float64: T1 passes when
    sigma_min(A)^2 > sigma_d / 2, then T0 when every eigenvalue of P lies in (-sigma_d / 4, sigma_d / 4)."""
    r, k = s.size, X.shape[1]
    Up, Vp, sd = X[:r].astype(np.float64), Y[:r].astype(np.float64), float(s[-1])
    A = (Up + Vp) / 2
    t1 = T1_reached or np.linalg.eigvalsh(A @ A.T if r <= k else A.T @ A)[0] > sd / 2
    E = Up @ Vp.T
    w = np.linalg.eigvalsh(np.diag(s.astype(np.float64)) - (E + E.T) / 2)
    return t1, t1 and -sd / 4 < w[0] and w[-1] < sd / 4


def _agree(states, s, T1_reached):
    """Single run, batch and NumPy agree on every state; returns NumPy's answers."""
    Xs, Ys = np.stack([X for X, _ in states]), np.stack([Y for _, Y in states])
    b1, b0 = _batch(Xs, Ys, s, T1_reached)
    expected = []
    for i, (X, Y) in enumerate(states):
        want = _numpy(X, Y, s, T1_reached)
        assert _single(X, Y, s, T1_reached) == want, (i, want)
        assert (b1[i], b0[i]) == want, (i, want)
        expected.append(want)
    return expected


DTYPES = [np.float64, np.float32]
SHAPES = [(3, 3), (2, 4), (4, 2)]  # (r, k): r = k, r < k, r > k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("r, k", SHAPES)
def test_T1_exactly_at_and_around_its_threshold(dtype, r, k):
    # Up = Vp = diag(a) (r x k): sigma_min(A)^2 = a_min^2 = 1/4 and sigma_d = 1/2 (1 + d),
    # in numbers whose every product and sum is exact in float32
    rng = np.random.default_rng(r * 10 + k)
    p = min(r, k)
    D = np.zeros((r, k))
    D[np.arange(p), np.arange(p)] = np.linspace(1.0, 0.5, p) if p > 1 else 0.5
    states = [(_stacked(D, rng, dtype), _stacked(D, rng, dtype))]
    for d, passes in ((-(2.0**-11), True), (0.0, False), (2.0**-11, False)):
        s = np.linspace(2.0, 0.5 * (1 + d), r).astype(dtype)
        s[-1] = 0.5 * (1 + d)
        assert [t1 for t1, _ in _agree(states, s, False)] == [passes]  # on the threshold: not passed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("r, k", [(3, 3), (2, 4)])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_T0_exactly_at_and_around_its_threshold(dtype, r, k, sign):
    # Up = Vp = diag(a): P = diag(s - a^2) = diag(sign sigma_d / 4 (1 + d), 0, ..., 0), sigma_d = 9/16
    rng = np.random.default_rng(r * 10 + k)
    a = np.linspace(1.25, 0.75, r)  # a^2 = 1.5625, ..., 0.5625 = sigma_d
    D = np.zeros((r, k))
    D[np.arange(r), np.arange(r)] = a
    X, Y = _stacked(D, rng, dtype), _stacked(D, rng, dtype)
    for d, passes in ((-(2.0**-8), True), (0.0, False), (2.0**-8, False)):
        s = a**2
        s[0] += sign * 9 / 64 * (1 + d)
        assert _agree([(X, Y)], s.astype(dtype), True) == [(True, passes)]
        assert _agree([(X, Y)], s.astype(dtype), False) == [(True, passes)]  # T1 passes too


def _target_P(rng, r, s, dtype, margin):
    """A state (r <= k) whose P has its extreme eigenvalue at +-sigma_d / 4 (1 + margin), with Up != Vp."""
    sd = s[-1]
    q = np.linalg.qr(rng.standard_normal((r, r)))[0]
    w = rng.uniform(-0.8, 0.8, r) * sd / 4
    w[0] = rng.choice([-1.0, 1.0]) * sd / 4 * (1 + margin)
    P0 = (q * w) @ q.T
    B = 0.05 * rng.standard_normal((r, 2 * r))
    # A A^T - B B^T = diag(s) - P0, so that P = diag(s) - (Up Vp^T + Vp Up^T) / 2 = P0 for Up, Vp = A +- B
    lam, V = np.linalg.eigh(np.diag(s) - P0 + B @ B.T)
    R = np.linalg.qr(rng.standard_normal((2 * r, 2 * r)))[0]
    A = (V * np.sqrt(lam)) @ V.T @ R[:r]
    return _stacked(A + B, rng, dtype), _stacked(A - B, rng, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_states_near_the_T0_threshold(dtype):
    # general P (not diagonal), Up != Vp, both sides of the threshold; many states in one batch
    rng = np.random.default_rng(1)
    r = 3
    s = np.geomspace(2.0, 1.0, r).astype(dtype)
    margin = 1e-7 if dtype == np.float64 else 1e-3  # far above rounding
    states = [_target_P(rng, r, s.astype(np.float64), dtype, rng.choice([-margin, margin])) for _ in range(LANES + 9)]
    got = _agree(states, s, True)
    assert 10 < sum(t0 for _, t0 in got) < len(states) - 10  # both answers, in both blocks of lanes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("r, k", SHAPES)
def test_random_states_near_the_T1_threshold(dtype, r, k):
    # random Up, Vp scaled so that sigma_min(A)^2 = sigma_d / 2 (1 +- margin); T0 answered too
    rng = np.random.default_rng(2)
    s = np.geomspace(2.0, 1.0, r).astype(dtype)
    margin = 1e-7 if dtype == np.float64 else 1e-3
    states = []
    for _ in range(LANES + 9):
        Up, Vp = rng.standard_normal((r, k)), rng.standard_normal((r, k))
        A = (Up + Vp) / 2
        g = np.linalg.eigvalsh(A @ A.T if r <= k else A.T @ A)[0]
        c = np.sqrt(float(s[-1]) / 2 * (1 + rng.choice([-margin, margin])) / g)
        states.append((_stacked(c * Up, rng, dtype), _stacked(c * Vp, rng, dtype)))
    got = _agree(states, s, False)
    assert 10 < sum(t1 for t1, _ in got) < len(states) - 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("r, k", [(3, 5), (5, 3)])
def test_a_failing_diagonal_pivot_answers_as_the_cholesky_does(dtype, r, k):
    # The single-run T1 test skips its Gram and Cholesky where a diagonal pivot shift + G_jj already fails: that
    # must be the factorization's own answer to the last bit. G = A A^T (A^T A for r > k) is exactly diagonal here
    # (disjoint supports), so the Cholesky passes by one ulp of G's smallest entry and fails on it.
    from fastmf._kernels.spectral import posdef
    from fastmf._kernels.stages import _diagonal_fails, gram_A

    rng = np.random.default_rng(3)
    A = np.zeros((r, k))
    for c in range(max(r, k)):  # entry c of the longer side in row / column c % p of the shorter one
        i, j = (c % r, c) if r <= k else (c, c % k)
        A[i, j] = rng.uniform(0.5, 1.5)
    X = Y = _stacked(A, rng, dtype)  # (X + Y) / 2 = X exactly
    n = max(r, k)
    G, T, L = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    gram_A(X, Y, r, k, G, T)
    p = min(r, k)
    assert np.count_nonzero(G[:p, :p] - np.diag(np.diag(G[:p, :p]))) == 0
    low = np.min(np.diag(G[:p, :p]))
    for shift, passes in ((-np.nextafter(low, 0.0), True), (-low, False), (-np.nextafter(low, 2 * low), False)):
        assert posdef(G, p, shift, 1.0, L) == passes
        assert _diagonal_fails(X, Y, r, k, shift) == (not passes)


# -- a batch in several calls ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("record_every", [1, 4])
def test_a_batch_in_several_calls_is_one_call(dtype, record_every):
    rng = np.random.default_rng(3)
    r, k, runs, t_final = 4, 5, LANES + 7, 203
    s = np.geomspace(3.0, 1.0, r).astype(dtype)
    Xs = (1e-2 * rng.standard_normal((runs, r + k, k))).astype(dtype)
    Ys = (1e-2 * rng.standard_normal((runs, r + k, k))).astype(dtype)
    lrs = (10 ** rng.uniform(-2.5, -0.5, runs)).astype(dtype)
    lrs[[5, LANES + 2]] = 1.2  # diverge (one in each block)
    tol = 1e-6
    n_cols = t_final // record_every + 2

    def fresh():
        summary = np.full((runs, K.N_SUMMARY), -1.0)
        summary[:, [K.N_ITER, K.STATUS, K.FINAL_LOSS]] = 0, K.RUNNING, np.nan
        return Xs.copy(), Ys.copy(), summary

    X1, Y1, one = fresh()
    losses1 = np.full((runs, n_cols), np.nan)
    K.run_batch(X1, Y1, s, lrs, *_plain_batch(X1, Y1), tol, 0, t_final, t_final, record_every, 1e-3, one, losses1)
    status = set(one[:, K.STATUS])
    assert status == {K.RUNNING, K.CONVERGED, K.DIVERGED}, status  # every ending is covered

    # boundaries on and off the stride, empty calls, the losses grown between calls as the caller does
    bounds = [0, 0, 1, 3, 4, 4, 8, 9, 17, 40, 41, 44, 100, 101, 102, 150, 199, 200, 202, 203, 203]
    X2, Y2, split = fresh()
    losses2 = np.full((runs, 0), np.nan)
    for t_start, t_stop in zip(bounds[:-1], bounds[1:], strict=True):
        running = split[:, K.STATUS] == K.RUNNING
        assert np.all(split[running, K.N_ITER] == t_start)
        cols = n_cols if t_stop == t_final else t_stop // record_every + 1
        losses2 = np.pad(losses2, ((0, 0), (0, cols - losses2.shape[1])), constant_values=np.nan)
        K.run_batch(X2, Y2, s, lrs, *_plain_batch(X2, Y2), tol, t_start, t_stop, t_final, record_every, 1e-3, split,
                    losses2)  # fmt: skip
    for a, b in ((X1, X2), (Y1, Y2), (one, split), (losses1, losses2)):
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)

    # what was recorded where: the contract, read back
    steps = np.r_[np.arange(0, t_final + 1, record_every), t_final] if t_final % record_every else None
    steps = np.arange(0, t_final + 1, record_every) if steps is None else steps
    for q in range(runs):
        n_iter, status = int(one[q, K.N_ITER]), one[q, K.STATUS]
        kept = np.flatnonzero(~np.isnan(losses1[q]))
        assert np.array_equal(steps[kept], steps[steps <= n_iter])  # every record up to the end, none after
        if status == K.CONVERGED:
            assert losses1[q, kept[-1]] <= tol < np.nanmin(losses1[q, kept[:-1]]) and steps[kept[-1]] == n_iter
        if status != K.DIVERGED:
            assert one[q, K.FINAL_LOSS] == losses1[q, kept[-1]]
