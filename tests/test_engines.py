"""One engine model: every engine behind one driver (chunks, callbacks, time limits, Ctrl-C,
checkpoints, resume), one result type, defaults defined once, bounded histories, no import cycles."""

import ast
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastmf
import fastmf.driver
import fastmf.options
from fastmf import Options, Problem, SolveResult, resume, solve, solve_batch
from naive import gd, low_rank

SPECTRUM = Problem.from_spectrum(np.geomspace(3.0, 1.0, 4), 1000, 800)
PACKAGE = pathlib.Path(fastmf.__file__).parent


def test_solve_returns_one_type_whatever_the_engine(tmp_path):
    rng = np.random.default_rng(0)
    low = low_rank(rng, 60, 40, [3.0, 2.0, 1.0])
    full = rng.standard_normal((60, 40))
    split, direct = solve(low, 3, 0.05, 50, seed=0), solve(full, 3, 0.01, 50, seed=0)
    assert (split.method, direct.method) == ("split", "direct")
    for res in (split, direct):
        assert type(res) is SolveResult and res.success and res.status == "max_iter" and res.n_iter == 50
        assert res.loss == res.history["loss"][-1] and res.message and res.stages.T_delta is None
        assert res.U.shape == (60, 3) and res.V.shape == (40, 3) and res.options.lr in (0.05, 0.01)
        res.save(tmp_path / f"{res.method}.npz")
        back = fastmf.load(tmp_path / f"{res.method}.npz")
        assert type(back) is SolveResult and back.method == res.method and back.options == res.options
        np.testing.assert_array_equal(back.U, res.U)
    assert direct.problem is None and direct.Up is None and direct.complement is None
    assert split.problem.rank == 3 and split.Up.shape == (3, 3)


def test_a_default_is_defined_once(monkeypatch):
    """Changing a default in `fastmf.options.DEFAULTS` changes it for solve, the batch and the estimator."""
    new = dataclasses.replace(fastmf.options.DEFAULTS, lr=0.2, init_scale=1e-2, max_iter=37)
    monkeypatch.setattr(fastmf.options, "DEFAULTS", new)
    s1, (m, n) = SPECTRUM.sigma_1, SPECTRUM.shape
    res = solve(SPECTRUM, 4, seed=0, tol=1e-6)
    assert res.n_iter == 37 and res.options.lr == 0.2 / s1 and res.options.delta == 1e-6
    assert res.init_scale == pytest.approx(1e-2 * np.sqrt(s1 / (m + n)), rel=1e-15)
    batch = solve_batch(SPECTRUM, 4, seeds=[0, 1], tol=1e-6)
    assert np.all(batch.n_iter == 37) and np.all(batch.lr == 0.2 / s1) and batch.options.delta == 1e-6
    np.testing.assert_allclose(batch.init_scale, 1e-2 * np.sqrt(s1 / (m + n)), rtol=1e-15)
    pytest.importorskip("sklearn")
    from fastmf.sklearn import GradientDescentMF

    X = low_rank(np.random.default_rng(1), 30, 20, [2.0, 1.0])
    with pytest.warns(fastmf.sklearn.ConvergenceWarning, match="max_iter=37"):
        est = GradientDescentMF(2, tol=0.0, random_state=0).fit(X)
    sigma_1 = np.linalg.norm(X, 2)
    assert est.n_iter_ == 37 and est.lr_ == pytest.approx(0.2 / sigma_1, rel=1e-12)
    assert est.init_scale_ == pytest.approx(100 * 1e-2 * np.sqrt(sigma_1 / 50), rel=1e-12)


def test_options_check_every_field_and_fill_every_default():
    with pytest.raises(ValueError, match="lr must be > 0"):
        Options(lr=-1.0)
    with pytest.raises(TypeError, match="k must be an integer"):
        Options(k=2.5)
    with pytest.raises(ValueError, match="complement must be one of"):
        Options(complement="half")
    with pytest.raises(ValueError, match="t_max is required"):
        fastmf.FlowOptions()
    with pytest.raises(TypeError, match="seed must be None, an integer >= 0"):
        Options(seed=-1)
    with pytest.raises(TypeError, match="seed must be None"):
        Options(seed=True)
    with pytest.raises(TypeError, match="options must be a fastmf.Options"):
        solve(SPECTRUM, options=fastmf.FlowOptions(t_max=1.0))
    assert Options(tol=None, method=None) == Options()  # None asks for the default
    given = Options(k=2, tol=1e-8)
    full = given.resolve(SPECTRUM.shape, SPECTRUM.sigma_1, SPECTRUM.s)
    assert full.delta == 1e-8 and full.max_iter == fastmf.options.DEFAULTS.max_iter and full.seed is not None
    assert solve(SPECTRUM, options=full.resolve(SPECTRUM.shape, SPECTRUM.sigma_1, SPECTRUM.s)).options == full


# ------------------------------------------------------------------------- bounded histories


def test_the_default_stride_doubles_and_keeps_the_history_bounded(monkeypatch):
    monkeypatch.setattr(fastmf.options, "DEFAULTS", dataclasses.replace(fastmf.options.DEFAULTS, max_records=64))
    assert [fastmf.options.record_stride(t) for t in (0, 63, 64, 127, 128, 255, 256)] == [1, 1, 2, 2, 4, 4, 8]
    rng = np.random.default_rng(2)
    Sigma = low_rank(rng, 25, 35, np.array([2.0, 1.0]))
    U0, V0 = 0.2 * rng.standard_normal((25, 2)), 0.2 * rng.standard_normal((35, 2))
    res = solve(Sigma, 2, 0.1, 1000, U0=U0, V0=V0)
    steps = res.history["step"]
    assert steps.size <= 2 * 64 + 2 and steps[-1] == 1000
    assert np.all(steps[:-1] % 16 == 0) and np.all(np.diff(steps[steps < 512]) == 16)  # thinned to the stride
    loss, *_ = gd(Sigma, U0, V0, 0.1, 1000)
    np.testing.assert_allclose(res.history["loss"], loss[steps], rtol=1e-9, atol=1e-22 * np.sum(Sigma**2))
    # the stride is a function of the step alone: chunks and resumes change nothing
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)
    monkeypatch.setattr(fastmf.driver, "_FIRST_CHUNK", 1)
    chunked = solve(Sigma, 2, 0.1, 1000, U0=U0, V0=V0)
    part = solve(Sigma, 2, 0.1, 1000, U0=U0, V0=V0, callback=lambda state: state.step >= 200)
    for other in (chunked, resume(part)):
        np.testing.assert_array_equal(other.history["step"], steps)
        np.testing.assert_array_equal(other.history["loss"], res.history["loss"])
        np.testing.assert_array_equal(other.U, res.U)
    batch = solve_batch(Problem(Sigma), 2, 0.1, 1000, seeds=[0, 1], history=True)
    assert batch.losses.shape[1] <= 2 * 64 + 2 and batch.steps[-1] == 1000 and np.all(batch.steps[:-1] % 16 == 0)
    one = solve(Problem(Sigma), 2, 0.1, 1000, seed=1, spectral_every=0)
    np.testing.assert_allclose(batch[1].history["loss"], one.history["loss"], rtol=1e-9, atol=1e-20)


def test_batch_cost_and_memory_follow_the_steps_run_not_max_iter():
    batch = solve_batch(SPECTRUM, 4, 0.1, 10**8, seeds=range(3), tol=1e-6, history=True, init_scale=0.1)
    assert np.all(batch.status == "converged") and batch.n_iter.max() < 1000
    assert batch.steps.size == batch.n_iter.max() + 1 and batch.losses.shape == (3, batch.steps.size)


# ------------------------------------------------------------------------- the batch as an engine


def test_batch_is_a_sequence_of_solve_results():
    batch = solve_batch(SPECTRUM, 4, 0.2, 300, seeds=[3, 5], record_every=3, history=True)
    assert len(batch) == 2 and [run.seed for run in batch] == [3, 5] and batch[-1].seed == 5
    with pytest.raises(IndexError):
        batch[2]
    run = batch[1]
    ref = solve(SPECTRUM, 4, 0.2, 300, seed=5, record_every=3, spectral_every=0)
    assert type(run) is SolveResult and run.status == ref.status and run.n_iter == ref.n_iter
    assert run.stages.T1 == ref.stages.T1 and run.stages.T0 == ref.stages.T0
    np.testing.assert_array_equal(run.history["step"], ref.history["step"])
    np.testing.assert_allclose(run.history["loss"], ref.history["loss"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(run.U, ref.U, rtol=1e-8, atol=1e-12)  # rebuilt with its start's complement basis
    np.testing.assert_allclose(run.V, ref.V, rtol=1e-8, atol=1e-12)
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from fastmf.plot import plot_runs

    assert len(plot_runs(batch).axes[0].lines) >= 2


def test_batch_stops_checkpoints_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)
    monkeypatch.setattr(fastmf.driver, "_FIRST_CHUNK", 7)
    kw = dict(seeds=range(40), record_every=5, history=True, tol=1e-10)
    unbroken = solve_batch(SPECTRUM, 4, 0.2, 400, **kw)
    path = tmp_path / "batch.npz"
    part = solve_batch(SPECTRUM, 4, 0.2, 400, **kw, checkpoint=path, checkpoint_every=25,
                       callback=lambda state: state.step >= 60)  # fmt: skip
    assert 60 <= part.resume_state["step"] < 400 and "interrupted" not in part.message
    assert set(part.status) <= {"stopped", "converged"} and "stopped" in part.status
    for source in (part, path):
        again = resume(source, checkpoint=False)
        for name in ("n_iter", "status", "final_loss", "T1", "T0", "T_delta", "steps", "losses"):
            np.testing.assert_array_equal(getattr(again, name), getattr(unbroken, name), err_msg=name)
        np.testing.assert_array_equal(again.resume_state["Xs"], unbroken.resume_state["Xs"])
    timed = solve_batch(SPECTRUM, 4, 0.2, 10**9, seeds=range(4), time_limit=0.2)
    assert set(timed.status) == {"time_limit"} and "fastmf.resume()" in timed.message


def test_batch_answers_sigint_with_its_partial_results(tmp_path):
    """256 seeds for 10**7 steps: Ctrl-C returns the batch as it stands (before the batch ran as
    one compiled call, which answered only when it ended and then lost every result)."""
    script = textwrap.dedent(
        """
        import sys, time
        import numpy as np, fastmf
        problem = fastmf.Problem.from_spectrum(np.geomspace(3.0, 1.0, 8), 10**6, 10**6)
        fastmf.solve_batch(problem, 8, 0.1, 3, seeds=[0])  # compile outside the timing
        print("ready", flush=True)
        batch = fastmf.solve_batch(problem, 8, 0.1, 10**7, seeds=range(256))
        print("done", time.perf_counter(), batch.status[0], batch.n_iter.min(), batch.resume_state["step"], flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    _, answered, status, n_iter, step = out.split()
    assert status == "interrupted" and 0 < int(n_iter) == int(step) < 10**7
    assert float(answered) - sent < 30  # about 0.05 s here; before, minutes


# ------------------------------------------------------------------------- the package


def test_import_star_works_without_scikit_learn():
    script = "import sys; sys.modules['sklearn'] = None\nfrom fastmf import *\nprint(solve.__name__, Options.__name__)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["solve", "Options"]
    assert "GradientDescentMF" not in fastmf.__all__


def _imports(path: pathlib.Path) -> set[str]:
    """The fastmf modules a module imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found |= {name.split(".")[0] for name in names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastmf."):
            found.add(node.module.split(".")[1])
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    graph = {path.stem: _imports(path) for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "__main__")}
    graph = {name: {other for other in deps if other in graph and other != name} for name, deps in graph.items()}
    state = {}

    def visit(name, path):
        if state.get(name) == "open":
            raise AssertionError(f"import cycle: {' -> '.join([*path, name])}")
        if state.get(name) != "done":
            state[name] = "open"
            for other in sorted(graph[name]):
                visit(other, [*path, name])
            state[name] = "done"

    for name in sorted(graph):
        visit(name, [])
    assert os.path.exists(PACKAGE / "driver.py") and "driver" in graph["solver"]  # the walk saw the edges


# ------------------------------------------------------------------------- the driver's edges


class _Instant:
    """An engine whose steps take no time: the driver's chunk must stay bounded."""

    def __init__(self, steps):
        self.work = self.position = 0
        self.steps, self.chunks, self.saved = steps, [], 0

    done = property(lambda self: self.work >= self.steps)

    def advance(self, n):
        self.chunks.append(n)
        self.work = self.position = min(self.work + n, self.steps)

    def latest(self):
        return {}

    def stage_positions(self):
        return None, None

    def finish(self, status):
        return status

    def result(self, status):
        engine = self

        class Saved:
            def save(self, path):
                engine.saved += 1

        return Saved()


def test_the_chunk_starts_at_one_step_and_stays_bounded(tmp_path):
    engine = _Instant(2000)
    fastmf.driver.drive(
        engine, fastmf.driver.Control(checkpoint=str(tmp_path / "c.npz"), checkpoint_every=1), 1, "step"
    )
    assert max(engine.chunks) == 1 and engine.saved == 2000  # the chunk used to overflow after ~510 checkpoints
    engine = _Instant(10**9)
    fastmf.driver.drive(engine, fastmf.driver.Control(), 1, "step")
    assert engine.chunks[:3] == [1, 4, 16] and max(engine.chunks) <= 2**40
    seen = []
    solve(SPECTRUM, 4, 0.1, 100, seed=0, callback=lambda state: seen.append(state.step))
    assert seen[0] == 1  # a costly step is never run 64 times before the first callback


def test_a_checkpoint_must_name_a_file(tmp_path):
    for bad in ("", str(tmp_path)):
        with pytest.raises(ValueError, match="checkpoint must name a file"):
            solve(SPECTRUM, 4, 0.1, 3, seed=0, checkpoint=bad)


def test_batch_extended_past_its_max_iter_is_the_longer_batch():
    kw = dict(seeds=range(8), lr=np.linspace(0.01, 0.1, 8), record_every=50, tol=1e-12, history=True)
    ref = solve_batch(SPECTRUM, 4, max_iter=3000, **kw)
    for short in (299, 1000):  # off the stride (runs 4 and 5 meet tol at its final record), and on it
        more = resume(solve_batch(SPECTRUM, 4, max_iter=short, **kw), max_iter=3000)
        for name in ("n_iter", "status", "final_loss", "T1", "T0", "T_delta", "steps", "losses"):
            np.testing.assert_array_equal(getattr(more, name), getattr(ref, name), err_msg=f"{short}: {name}")


def test_an_interrupted_batch_with_a_diverging_run_resumes_bit_for_bit(monkeypatch):
    """Stopped off the stride one step before a run diverges: the saved losses must not keep the
    final record of that step for a run that never records the next column."""
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)  # a chunk of one step, a callback after each
    kw = dict(seeds=range(12), lr=np.linspace(0.05, 0.5, 12), init_scale=1e-3, record_every=50, history=True)
    ref = solve_batch(SPECTRUM, 4, max_iter=500, **kw)
    first = int(ref.n_iter[ref.status == "diverged"].min())
    assert (first - 1) % 50 and first % 50  # the stop and the divergence fall inside one stride

    def interrupt(state):
        if state.step >= first - 1:
            raise KeyboardInterrupt

    part = solve_batch(SPECTRUM, 4, max_iter=500, callback=interrupt, **kw)
    assert "interrupted" in part.status and part.resume_state["step"] == first - 1
    more = resume(part)
    for name in ("n_iter", "status", "final_loss", "T1", "T0", "T_delta", "steps", "losses"):
        np.testing.assert_array_equal(getattr(more, name), getattr(ref, name), err_msg=name)


def test_batch_results_have_every_result_field_and_refuse_what_they_cannot():
    batch = solve_batch(SPECTRUM, 4, max_iter=0, seeds=[0, 1], options=Options(lr=0.01, init_scale=0.01))
    assert np.all(batch.lr == 0.01) and np.all(batch.init_scale == 0.01) and batch.k == 4
    assert np.all(np.isfinite(batch.final_loss)) and np.array_equal(batch.loss, batch.final_loss)
    assert batch[0].loss == batch.final_loss[0]
    assert batch[0].loss == pytest.approx(solve(SPECTRUM, 4, 0.01, 0, seed=0, init_scale=0.01).loss, rel=1e-13)
    assert np.array_equal(batch.history["step"], [0, 0]) and batch.stages.T1.shape == (2,)
    assert "resume" not in batch[0].message
    with pytest.raises(ValueError, match="resume the batch itself"):
        resume(batch[0])
    with pytest.raises(ValueError, match="one seed per run in seeds="):
        solve_batch(SPECTRUM, 4, 0.1, 3, seeds=[0], options=Options(seed=1))
    with pytest.raises(ValueError, match="integers >= 0"):
        solve_batch(SPECTRUM, 4, 0.1, 3, seeds=[-1])


def test_direct_path_theory_values_name_the_fix():
    rng = np.random.default_rng(0)
    S, U0, V0 = rng.standard_normal((20, 15)), rng.standard_normal((20, 3)), rng.standard_normal((15, 3))
    with pytest.raises(ValueError, match="lr='theory' needs the singular values"):
        solve(S, max_iter=5, method="direct", lr="theory", U0=U0, V0=V0)
    assert solve(S, max_iter=2, lr=0.01, method="direct", U0=U0, V0=V0).k == 3  # k from the start's width
