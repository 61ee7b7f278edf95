"""Between chunks: callbacks, the progress bar and the time limit, which never change the numbers."""

import builtins

import numpy as np
import pytest

import fastmf
import fastmf.driver
from fastmf import Problem, gradient_flow, solve
from fastmf.monitor import RunState
from fastmf.stages import name as stage

P = Problem.from_spectrum(np.linspace(2.0, 1.0, 4), 1000, 800)
KW = dict(k=4, lr=0.1, max_iter=3000, seed=1, init_scale=1e-4, record_every=5)


def test_callback_sees_the_run_and_does_not_change_it(monkeypatch):
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)
    plain = solve(P, **KW)
    states = []
    res = solve(P, **KW, callback=lambda state: states.append(state))
    for key in plain.history:
        np.testing.assert_array_equal(res.history[key], plain.history[key])
    assert len(states) > 10 and all(isinstance(s, RunState) for s in states)
    steps = [s.step for s in states]
    assert steps == sorted(steps) and steps[-1] == 3000
    h = res.history
    for s in states:
        j = np.searchsorted(h["step"], s.diagnostics["step"])
        assert h["step"][j] <= s.step <= h["step"][j] + 5
        assert s.loss == h["loss"][j] and s.diagnostics["B_fro"] == h["B_fro"][j]
        assert s.stage == stage(s.step, s.T1, s.T0) and s.t is None
    assert [s.stage for s in states][-1] == "linear" and states[-1].T0 == res.stages.T0
    assert {s.stage for s in states} >= {"warm-up", "linear"}


def test_stage_names():
    assert stage(5, None, None) == "warm-up"
    assert stage(5, 5, None) == "alignment"
    assert stage(9, 5, 9) == "linear"
    assert stage(4, 5, 9) == "warm-up"


def test_callback_stops_the_run(monkeypatch):
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)
    res = solve(P, **KW, callback=lambda state: state.stage == "linear")
    assert res.status == "stopped" and "callback" in res.message
    assert res.stages.T0 is not None and res.n_iter >= res.stages.T0
    assert res.n_iter < 3000


def test_time_limit():
    res = solve(P, **(KW | {"max_iter": 10**9}), time_limit=0.2)
    assert res.status == "time_limit" and 0 < res.n_iter < 10**9 and "time limit" in res.message
    assert res.history["step"][-1] == res.n_iter
    flow = gradient_flow(P, 4, 1e6, seed=0, time_limit=1e-9)
    assert flow.status == "time_limit" and 0 < flow.t < 1e6


def test_flow_callback(monkeypatch):
    monkeypatch.setattr(fastmf.driver, "_CHUNK_SECONDS", 1e-9)  # a callback after every solver step
    times = []
    res = gradient_flow(P, 4, 50.0, seed=0, callback=lambda s: times.append((s.t, s.step, s.stage)))
    assert res.status == "t_max" and len(times) > 5
    assert all(step is None for _, step, _ in times) and times[-1][0] <= 50.0
    assert times[-1][2] == "linear"
    stopped = gradient_flow(P, 4, 50.0, seed=0, callback=lambda s: s.t > 10)
    assert stopped.status == "stopped" and 10 < stopped.t < 50 and stopped.history["t"][-1] == stopped.t


def test_progress_bar(capsys):
    pytest.importorskip("tqdm")
    solve(P, **KW, progress=True)
    err = capsys.readouterr().err
    assert "fastmf" in err and "3000/3000" in err and "stage=" in err
    solve(P, **KW, progress=False)
    solve(P, **KW)  # automatic: stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_progress_without_tqdm(monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("No module named 'tqdm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with pytest.raises(ImportError, match="pip install tqdm"):
        solve(P, **KW, progress=True)
    assert solve(P, **KW).status == "max_iter"  # automatic progress just goes without


def test_bad_hook_arguments():
    with pytest.raises(TypeError, match="callback must be callable"):
        solve(P, **KW, callback=3)
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        solve(P, **KW, progress="yes")
    with pytest.raises(ValueError, match="time_limit must be > 0"):
        solve(P, **KW, time_limit=0)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        solve(P, **KW, checkpoint=3)
