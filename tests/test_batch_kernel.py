"""The batch kernel's pieces against plain NumPy, lane by lane: its register tiles, its record and its stage tests."""

import numpy as np
import pytest

from fastmf._kernels import batch as kb
from fastmf._kernels.batch import passes_lanes


def _lanes_state(rng, rows, k, dtype):
    """A random block state, rows x k x lanes, aligned as the kernel's own."""
    X = kb.aligned_empty((rows, k, kb.lanes(dtype)), dtype)
    X[:] = rng.standard_normal(X.shape)
    return X


def _record_lanes(X, Y, s):
    """The batch record of the block state X, Y (its Grams and Up Vp^T by the kernel's own tiles):
    (blocks, loss), the cross blocks with their bounds and each lane's loss."""
    r, k, lanes = s.shape[0], X.shape[1], X.shape[2]
    N, Nc, M, Mc = (kb.aligned_empty((k, k, lanes), X.dtype) for _ in range(4))
    kb._grams(X, r, N, Nc)
    kb._grams(Y, r, M, Mc)
    E, blocks, loss = kb.aligned_empty((r, r, lanes), X.dtype), np.empty((6, lanes)), np.empty(lanes)
    kb._product(X, Y, r, E)
    kb._record(X, Y, s, N, M, Nc, Mc, E, blocks, loss)
    return blocks, loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows, k, r", [(2, 1, 1), (5, 3, 2), (7, 5, 3), (9, 6, 3), (20, 10, 10), (14, 11, 3)])
def test_grams_and_product_are_numpys(rows, k, r, dtype):
    """Every entry of the Grams (complement and whole) and of Up Vp^T, whatever k and r leave
    to the last tile of a row pair (one, two or three columns)."""
    rng = np.random.default_rng(rows * k)
    lanes, tol = kb.lanes(dtype), (1e-13 if dtype == np.float64 else 2e-5)
    X, Y = _lanes_state(rng, rows, k, dtype), _lanes_state(rng, rows, k, dtype)
    G, Gc, E = (kb.aligned_empty(shape + (lanes,), dtype) for shape in ((k, k), (k, k), (r, r)))
    kb._grams(X, r, G, Gc)
    kb._product(X, Y, r, E)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    np.testing.assert_allclose(G, np.einsum("iaq,ibq->abq", X64, X64), rtol=tol, atol=tol * rows)
    np.testing.assert_allclose(Gc, np.einsum("iaq,ibq->abq", X64[r:], X64[r:]), rtol=tol, atol=tol * rows)
    np.testing.assert_allclose(E, np.einsum("icq,jcq->ijq", X64[:r], Y64[:r]), rtol=tol, atol=tol * k)
    assert np.array_equal(G, G.transpose(1, 0, 2)) and np.array_equal(Gc, Gc.transpose(1, 0, 2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_record_is_the_loss_of_each_lane(dtype):
    """The loss of every lane (float32 widened to float64 register by register), including a lane
    whose cross block cancels and is summed again from the rows."""
    rng = np.random.default_rng(3)
    r, k, rows, lanes = 3, 4, 7, kb.lanes(dtype)
    s = np.array([3.0, 2.0, 1.0], dtype)
    X, Y = _lanes_state(rng, rows, k, dtype), _lanes_state(rng, 5, k, dtype)
    X[r:, :, 0], Y[r:, :, 0] = 0, 0
    X[3, 3, 0], Y[3, 2, 0] = 0.5, 0.25  # lane 0: L_U L_V^T = 0, its Gram bound not
    blocks, loss = _record_lanes(X, Y, s)
    Sigma = np.zeros((rows, 5))
    Sigma[:r, :r] = np.diag(s)
    want = [0.5 * np.sum((X[:, :, q].astype(np.float64) @ Y[:, :, q].T.astype(np.float64) - Sigma) ** 2)
            for q in range(lanes)]  # fmt: skip
    np.testing.assert_allclose(loss, want, rtol=1e-13 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_record_sums_cancelling_cross_blocks_from_the_rows(dtype):
    """Up and L_V (and L_U and Vp) in orthogonal directions of a random rotation: the exact cross blocks
    of the stored state are at the level of its rounding, far below their Gram form's own rounding
    (for float32 Grams, about 1e-7 of the bound): each lane's block must be its rows' sum of squares."""
    rng = np.random.default_rng(5)
    r, k, rows, lanes = 2, 4, 4, kb.lanes(dtype)
    s = np.array([2.0, 1.0], dtype)
    X, Y = np.zeros((rows, k, lanes)), np.zeros((rows, k, lanes))
    for q in range(lanes):
        Q = np.linalg.qr(rng.standard_normal((k, k)))[0]
        X[:r, :r, q], Y[:r, :r, q] = rng.uniform(0.5, 1.5, (2, r, r))
        X[r:, r:, q], Y[r:, r:, q] = rng.uniform(0.1, 0.3, (2, rows - r, k - r))
        X[:, :, q], Y[:, :, q] = X[:, :, q] @ Q, Y[:, :, q] @ Q
    X, Y = (np.ascontiguousarray(A, dtype) for A in (X, Y))
    blocks, loss = _record_lanes(X, Y, s)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)  # the stored state, exactly
    up_lv = np.einsum("icq,jcq->ijq", X64[:r], Y64[r:])
    lu_vp = np.einsum("icq,jcq->ijq", X64[r:], Y64[:r])
    for block, product in ((0, up_lv), (1, lu_vp)):
        want = np.sum(product**2, axis=(0, 1))
        assert np.all(want < 1e-3 * np.finfo(dtype).eps * blocks[3 + block])  # far below the Gram form's rounding
        np.testing.assert_allclose(blocks[block], want, rtol=1e-9, atol=1e-40)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stage_tests_answer_only_for_active_pending_lanes(dtype):
    """X = Y = [sqrt(diag(s)); 0] passes T1 and T0 (A = Up, P = 0); a stopped lane, a lane with
    nothing pending and a lane whose diagonal fails (a zero state) are answered no."""
    s = np.array([4.0, 2.0, 1.0], dtype)
    r, k, rows, lanes = 3, 3, 6, kb.lanes(dtype)
    X = np.zeros((rows, k, lanes), dtype)
    X[:r, :, :] = np.diag(np.sqrt(s))[:, :, None]
    X[:, :, 3] = 0
    Y = X.copy()
    E = np.einsum("icq,jcq->ijq", X[:r], Y[:r]).astype(dtype)
    A, L = np.empty((r, r, lanes)), np.empty((r, r, lanes))
    active = np.arange(lanes) != 1
    pend1, pend0 = np.arange(lanes) != 2, np.arange(lanes) != 2
    ok1, ok0 = np.zeros(lanes, bool), np.zeros(lanes, bool)
    passes_lanes(X, Y, s, E, A, L, active, pend1, pend0, ok1, ok0)
    want = np.ones(lanes, bool)
    want[[1, 2, 3]] = False
    np.testing.assert_array_equal(ok1, want)
    np.testing.assert_array_equal(ok0, want)
