"""Saving, loading and resuming runs: a stopped run resumed gives exactly the numbers of one
that never stopped, and bad files give clear errors."""

import os

import numpy as np
import pytest

import fastmf
import fastmf.checkpoint
import fastmf.driver
from fastmf import Problem, load, resume, solve
from fastmf.checkpoint import CheckpointError
from naive import gd, low_rank


def _problems():
    rng = np.random.default_rng(5)
    dense = low_rank(rng, 40, 30, np.array([3.0, 2.0, 1.0]))
    return {
        # spectrum: a Bartlett start whose W is left to a seed; k > r; float32
        "spectrum": (Problem.from_spectrum(np.linspace(2.0, 1.0, 4), 10**6, 10**6), 6),
        "dense": (Problem(dense), 3),
        "float32": (Problem(dense.astype(np.float32)), 3),
    }


def _same(a, b):
    assert a.n_iter == b.n_iter and a.stages == b.stages
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)  # NaN == NaN here
    for name in ("Up", "Vp", "L_U", "L_V"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


KW = dict(lr=0.1, max_iter=1500, seed=3, init_scale=1e-3, record_every=7, spectral_every=14)


@pytest.mark.parametrize("name", ["spectrum", "dense", "float32"])
@pytest.mark.parametrize("complement", ["compressed", "full"])
def test_stopped_then_resumed_is_bitwise_the_unbroken_run(name, complement, tmp_path, monkeypatch):
    problem, k = _problems()[name]
    if complement == "full" and name == "spectrum":
        problem = Problem.from_spectrum(problem.s, 300, 200)
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)  # many short chunks
    kw = KW | {"complement": complement}
    unbroken = solve(problem, k, **kw)
    assert unbroken.stages.T0 is not None  # the stages are crossed along the way

    part = solve(problem, k, **kw, callback=lambda state: state.step >= 300)
    assert part.status == "stopped" and 300 <= part.n_iter < 1500
    assert part.history["step"][-1] == part.n_iter  # the state reached is recorded
    _same(resume(part), unbroken)  # from memory

    path = tmp_path / "run.npz"
    part.save(path)
    _same(resume(path), unbroken)  # from the file

    short = solve(problem, k, **(kw | {"max_iter": 601}))  # 601: an off-stride final record
    assert short.history["step"][-1] == 601
    _same(resume(short, max_iter=1500), unbroken)


def test_checkpoints_during_the_run_and_on_interrupt(tmp_path, monkeypatch):
    problem, k = _problems()["spectrum"]
    unbroken = solve(problem, k, **KW)
    path = tmp_path / "ckpt.npz"
    seen = []

    def interrupt_after_a_checkpoint(state):
        if os.path.exists(path):
            seen.append(load(path))
            raise KeyboardInterrupt

    res = solve(problem, k, **KW, checkpoint=path, checkpoint_every=100, callback=interrupt_after_a_checkpoint)
    mid = seen[0]
    assert mid.status == "running" and mid.n_iter % 100 == 0 and "resume" in mid.message
    assert res.status == "interrupted"
    final = load(path)  # the end of the run replaced the mid-run checkpoint
    assert final.status == "interrupted" and final.n_iter == res.n_iter
    assert final.checkpoint_every == 100  # and resume(path) keeps it
    _same(resume(path), unbroken)
    _same(resume(mid), unbroken)  # as a run killed right after its checkpoint would be
    assert load(path).status == "max_iter"  # resume kept checkpointing to the same file
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_loaded_result_matches_the_saved_one(tmp_path):
    problem, k = _problems()["dense"]
    res = solve(problem, k, **KW)
    res.save(tmp_path / "r.npz")
    back = load(tmp_path / "r.npz")
    assert isinstance(back, fastmf.SolveResult) and back.status == res.status and back.message == res.message
    _same(back, res)
    np.testing.assert_array_equal(back.U, res.U)
    np.testing.assert_array_equal(back.problem.s, problem.s)
    assert back.problem.Sigma is None and back.seed == res.seed and back.lr == res.lr

    flow = fastmf.gradient_flow(problem, k, 5.0, seed=1, t_eval=np.linspace(0, 5, 11))
    flow.save(tmp_path / "f.npz")
    fback = load(tmp_path / "f.npz")
    assert isinstance(fback, fastmf.FlowResult) and fback.t == flow.t and fback.stages == flow.stages
    np.testing.assert_array_equal(fback.history["imbalance_drift"], flow.history["imbalance_drift"])
    np.testing.assert_array_equal(fback.V, flow.V)


def test_a_seed_sequence_survives_the_file(tmp_path):
    problem, k = _problems()["spectrum"]
    seq = np.random.SeedSequence(2**90 + 7, spawn_key=(1, 2))
    res = solve(problem, k, 0.1, 10, seed=seq)
    res.save(tmp_path / "r.npz")
    back = load(tmp_path / "r.npz")
    assert back.seed.entropy == seq.entropy and back.seed.spawn_key == seq.spawn_key
    np.testing.assert_array_equal(back.U[:50], res.U[:50])  # W drawn from the saved stream


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    problem, k = _problems()["dense"]
    path = tmp_path / "ckpt.npz"
    good = solve(problem, k, 0.1, 50, seed=0, checkpoint=path)
    before = path.read_bytes()

    def dies_mid_write(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(fastmf.checkpoint.np, "savez", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        good.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    monkeypatch.undo()
    assert load(path).n_iter == 50


def test_a_write_removes_the_temporary_files_of_killed_writes_to_that_path(tmp_path):
    stale = [".run.npz.k1ll3d_x.tmp", ".run.npz.abcdefgh.tmp"]  # what a write killed midway leaves
    others = [".run.npz.x.abcdefgh.tmp", ".other.npz.abcdefgh.tmp", "run.npz.abcdefgh.tmp"]  # not run.npz's
    for name in stale + others:
        (tmp_path / name).write_bytes(b"PK\x03\x04 half a zip file")
    fastmf.checkpoint.write(tmp_path / "run.npz", {"x": np.arange(3.0)}, {"note": "kept"})
    assert sorted(os.listdir(tmp_path)) == sorted(["run.npz", *others])
    arrays, meta = fastmf.checkpoint.read(tmp_path / "run.npz")
    np.testing.assert_array_equal(arrays["x"], [0.0, 1.0, 2.0])
    assert meta["note"] == "kept"


def test_a_write_that_cannot_replace_its_target_leaves_no_temporary_file(tmp_path):
    (tmp_path / "run.npz").mkdir()
    with pytest.raises(IsADirectoryError):
        fastmf.checkpoint.write(tmp_path / "run.npz", {"x": np.arange(3.0)}, {})
    assert os.listdir(tmp_path) == ["run.npz"] and os.listdir(tmp_path / "run.npz") == []


def test_bad_files_give_clear_errors(tmp_path):
    problem, k = _problems()["dense"]
    path = tmp_path / "r.npz"
    solve(problem, k, 0.1, 20, seed=0).save(path)
    data = path.read_bytes()

    cases = {
        "truncated.npz": data[: len(data) // 2],
        "text.npz": b"not a zip file at all\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load(tmp_path / name)
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    with pytest.raises(CheckpointError, match="not a fastmf result"):
        load(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.arange(3))
    with pytest.raises(CheckpointError, match="single array"):
        load(tmp_path / "single.npy")
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"format": "fastmf-result"}], dtype=object))
    with pytest.raises(CheckpointError, match="allow_pickle"):
        load(tmp_path / "pickled.npz")
    with pytest.raises(FileNotFoundError, match="no such result"):
        load(tmp_path / "missing.npz")

    arrays, meta = fastmf.checkpoint.read(path)
    fastmf.checkpoint.write(tmp_path / "future.npz", arrays, meta | {"version": 99})
    with pytest.raises(CheckpointError, match="format version 99"):
        load(tmp_path / "future.npz")
    del meta["options"]
    fastmf.checkpoint.write(tmp_path / "partial.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="missing or bad fields"):
        load(tmp_path / "partial.npz")


def test_resume_refuses_what_cannot_continue(tmp_path):
    problem, k = _problems()["dense"]
    done = solve(problem, k, 0.1, 5000, seed=0, tol=1e-20)
    assert done.status == "converged"
    with pytest.raises(ValueError, match="nothing to resume"):
        resume(done)
    short = solve(problem, k, 0.1, 100, seed=0)
    with pytest.raises(ValueError, match="at least the saved run's step 100"):
        resume(short, max_iter=50)
    assert resume(short).n_iter == 100  # already at max_iter: nothing more to do
    fastmf.gradient_flow(problem, k, 1.0, seed=0).save(tmp_path / "f.npz")
    with pytest.raises(ValueError, match="pass t_max, not max_iter"):
        resume(tmp_path / "f.npz", max_iter=10)
    assert resume(tmp_path / "f.npz").t == 1.0  # already at t_max: nothing more to do
    with pytest.raises(ValueError, match="checkpoint_every needs a checkpoint"):
        solve(problem, k, 0.1, 10, checkpoint_every=5)
    with pytest.raises(ValueError, match="does not exist"):
        solve(problem, k, 0.1, 10, checkpoint=tmp_path / "no" / "such" / "dir.npz")


def test_resumed_run_matches_plain_gd():
    """The resume path against the independent reference, not only against itself."""
    rng = np.random.default_rng(9)
    Sigma = low_rank(rng, 25, 35, np.array([2.0, 1.0]))
    U0, V0 = 0.2 * rng.standard_normal((25, 2)), 0.2 * rng.standard_normal((35, 2))
    loss, _, U, V = gd(Sigma, U0, V0, 0.1, 400)
    part = solve(Sigma, 2, 0.1, 400, U0=U0, V0=V0, callback=lambda state: True)
    assert part.status == "stopped" and part.n_iter < 400
    res = resume(part)
    np.testing.assert_allclose(res.history["loss"], loss, rtol=1e-9, atol=1e-22 * np.sum(Sigma**2))
    np.testing.assert_allclose(res.U, U, rtol=1e-9, atol=1e-12)


def test_resume_from_a_file_writes_back_to_that_file(tmp_path, monkeypatch):
    """The path saved inside a checkpoint is relative to where the run started: resuming a copy
    from elsewhere must update the copy, never that other file."""
    p, k = _problems()["dense"]
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    solve(p, k, 0.1, 200, seed=0, checkpoint="run.npz")
    original = (tmp_path / "a" / "run.npz").read_bytes()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.npz").write_bytes(original)
    (tmp_path / "backup.npz").write_bytes(original)
    monkeypatch.chdir(tmp_path / "b")
    more = resume(tmp_path / "backup.npz", max_iter=300)
    assert load(tmp_path / "backup.npz").n_iter == more.n_iter == 300
    assert (tmp_path / "b" / "run.npz").read_bytes() == original  # the file named inside: untouched
    assert (tmp_path / "a" / "run.npz").read_bytes() == original


def test_an_exception_in_a_run_writes_the_checkpoint_then_propagates(tmp_path):
    p, k = _problems()["dense"]
    path = tmp_path / "run.npz"

    def fails(state):
        if state.step >= 300:
            raise RuntimeError("the callback broke")
        return False

    with pytest.raises(RuntimeError, match="the callback broke"):
        solve(p, k, 0.1, 10**7, seed=0, checkpoint=path, callback=fails)
    saved = load(path)
    assert saved.status == "running" and saved.n_iter >= 300
    unbroken = solve(p, k, 0.1, saved.n_iter + 50, seed=0)
    _same(resume(path, max_iter=saved.n_iter + 50, checkpoint=False), unbroken)
