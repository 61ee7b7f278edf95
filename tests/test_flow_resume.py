"""A gradient flow stopped, saved and resumed is bit for bit the flow never stopped, for every ODE method."""

import os
import shutil
import signal

import numpy as np
import pytest
import scipy

import fastmf._kernels
from fastmf import Problem, gradient_flow, load, resume
from fastmf.options import ODE_METHODS
from naive import flow

# SciPy < 1.17 runs the Fortran LSODA, part of whose state Python cannot save (fastmf.flow.resume_flow)
OLD_LSODA = tuple(int(x) for x in scipy.__version__.split(".")[:2]) < (1, 17)
METHODS = [
    pytest.param(m, marks=pytest.mark.skipif(OLD_LSODA, reason="LSODA resumes with SciPy >= 1.17"))
    if m == "LSODA"
    else m
    for m in ODE_METHODS
]
PROBLEM = Problem.from_spectrum([2.0, 1.0, 0.5], 30, 20)
# T1 ~ 11.9 and T0 ~ 13.0 for this start: stops at t > 6 and t > 12.5 leave each stage pending
RUN = dict(k=3, t_max=20.0, seed=0, init_scale=1e-2)


def _stop_after(t):
    return lambda state: state.t > t


def _unbroken(method):
    full = gradient_flow(PROBLEM, ode_method=method, **RUN)
    assert full.status == "t_max" and full.stages.T0 is not None  # the stages are reached, and compared
    return full


def assert_same_run(a, b):
    """The same state, history and stages, bit for bit."""
    assert (a.status, a.t, a.n_iter, a.nfev) == (b.status, b.t, b.n_iter, b.nfev)
    for name in ("Up", "Vp", "L_U", "L_V"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
    assert a.stages == b.stages


@pytest.mark.parametrize("method", METHODS)
def test_stopped_flow_resumes_bit_for_bit(method, tmp_path):
    full = _unbroken(method)
    every = max(1, full.n_iter // 100)  # a callback at least every `every` solver steps
    path = str(tmp_path / "flow.npz")
    first = gradient_flow(
        PROBLEM, ode_method=method, callback=_stop_after(6.0), checkpoint=path, checkpoint_every=every, **RUN
    )
    assert first.status == "stopped" and 6.0 < first.t < full.stages.T1
    assert first.history["t"][-1] == first.t  # the state reached is recorded
    assert_same_run(resume(first), full)  # from memory

    second = resume(first, callback=_stop_after(12.5), checkpoint_every=every, checkpoint=path)
    assert second.status == "stopped" and full.stages.T1 < second.t < full.stages.T0
    assert load(path).status == "stopped"
    assert_same_run(resume(path), full)  # from the file


@pytest.mark.parametrize("method", METHODS)
def test_mid_run_checkpoints_resume_bit_for_bit(method, tmp_path):
    full = _unbroken(method)
    every = max(1, full.n_iter // 10)
    path, kept = tmp_path / "flow.npz", tmp_path / "mid.npz"

    def keep_one(state):  # the checkpoint written just before this call, mid-run
        if state.t > 6.0 and not kept.exists():
            shutil.copy(path, kept)
        return False

    end = gradient_flow(PROBLEM, ode_method=method, callback=keep_one, checkpoint=path, checkpoint_every=every, **RUN)
    assert_same_run(end, full)
    assert_same_run(load(path), full)
    mid = load(kept)
    assert mid.status == "running" and mid.n_iter % every == 0 and 0 < mid.n_iter < full.n_iter
    assert_same_run(resume(kept, checkpoint=False), full)


def test_float32_flow_resumes_from_its_float64_state():
    """The flow runs in float64 and returns float32 factors: resume continues the solver's own state."""
    single = Problem.from_spectrum(np.float32([2.0, 1.0, 0.5]), 30, 20)
    full = gradient_flow(single, ode_method="RK45", **RUN)
    stopped = gradient_flow(single, ode_method="RK45", callback=lambda state: True, **RUN)
    assert stopped.status == "stopped" and stopped.U.dtype == np.float32
    assert_same_run(resume(stopped), full)


def test_exception_in_callback_writes_the_checkpoint_and_propagates(tmp_path):
    full = _unbroken("BDF")
    path = tmp_path / "flow.npz"

    def fails(state):
        if state.t > 6.0:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        gradient_flow(PROBLEM, ode_method="BDF", callback=fails, checkpoint=path, checkpoint_every=10, **RUN)
    saved = load(path)
    assert saved.status == "running" and 6.0 < saved.t < 20.0
    assert_same_run(resume(path), full)


def test_keyboard_interrupt_in_callback_keeps_the_state_reached():
    full = _unbroken("RK45")

    def interrupt(state):
        if state.t > 6.0:
            raise KeyboardInterrupt

    res = gradient_flow(PROBLEM, ode_method="RK45", callback=interrupt, **RUN)
    assert res.status == "interrupted" and 6.0 < res.t < 20.0 and 0 < res.n_iter < full.n_iter
    assert res.history["t"][-1] == res.t and np.all(np.isfinite(res.U)) and np.all(np.isfinite(res.V))
    assert "resume" in res.message
    assert_same_run(resume(res), full)


def test_ctrl_c_inside_a_solver_step_lands_after_it(monkeypatch):
    """A SIGINT arriving while the ODE solver steps is answered once the step is done: the
    flow is interrupted between two steps and resumes bit for bit."""
    full = _unbroken("Radau")
    real, calls = fastmf._kernels.flow_rhs, []

    def rhs(*args):
        calls.append(1)
        if len(calls) == 3000:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(fastmf._kernels, "flow_rhs", rhs)
    res = gradient_flow(PROBLEM, ode_method="Radau", **RUN)
    monkeypatch.undo()
    assert res.status == "interrupted" and 0 < res.t < 20.0
    assert_same_run(resume(res), full)


def test_exception_inside_a_solver_step_is_not_resumed(monkeypatch, tmp_path):
    """An exception raised inside a step (here by the right-hand side) leaves SciPy's solver
    half updated: the state of the last whole step is returned, and resume refuses."""
    real, calls = fastmf._kernels.flow_rhs, []

    def rhs(*args):
        calls.append(1)
        if len(calls) == 500:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(fastmf._kernels, "flow_rhs", rhs)
    res = gradient_flow(PROBLEM, ode_method="RK45", checkpoint=tmp_path / "flow.npz", **RUN)
    assert res.status == "interrupted" and 0 < res.t < 20.0 and res.history["t"][-1] == res.t
    assert "resume" not in res.message
    monkeypatch.undo()
    for saved in (res, tmp_path / "flow.npz"):
        with pytest.raises(ValueError, match="cannot be resumed exactly"):
            resume(saved)


def test_larger_t_max_continues_the_flow(tmp_path):
    rng = np.random.default_rng(0)
    U0, V0 = 0.1 * rng.standard_normal((30, 3)), 0.1 * rng.standard_normal((20, 3))
    first = gradient_flow(PROBLEM, 3, 5.0, U0=U0, V0=V0, rtol=1e-12, ode_method="DOP853")
    first.save(tmp_path / "flow.npz")
    res = resume(tmp_path / "flow.npz", t_max=12.0)
    assert res.status == "t_max" and res.t == 12.0 and res.options.t_max == 12.0
    t = res.history["t"]
    assert np.all(np.diff(t) > 0) and t[-1] == 12.0
    np.testing.assert_array_equal(t[t <= 5.0], first.history["t"])
    np.testing.assert_allclose(np.diff(t[t > 5.0]), 12.0 / 1000, rtol=1e-9)  # the default grid of [0, 12]
    U, V = flow(PROBLEM.dense(), U0, V0, 12.0)
    assert np.linalg.norm(res.U - U) < 1e-7 * np.linalg.norm(U) and np.linalg.norm(res.V - V) < 1e-7 * np.linalg.norm(V)
    with pytest.raises(ValueError, match="t_max must be at least the time the flow reached"):
        resume(first, t_max=4.0)


def test_resume_needs_the_scipy_that_saved_it():
    first = gradient_flow(PROBLEM, ode_method="RK23", callback=lambda state: True, **RUN)
    first.resume_state["scipy"] = np.array("0.1.0")
    with pytest.raises(ValueError, match="saved under SciPy 0.1.0"):
        resume(first)


@pytest.mark.skipif(not OLD_LSODA, reason="SciPy >= 1.17 keeps all of LSODA's state in arrays")
def test_lsoda_flow_does_not_resume_on_old_scipy():
    first = gradient_flow(PROBLEM, callback=lambda state: True, **RUN)
    assert first.status == "stopped"
    with pytest.raises(ValueError, match="Fortran LSODA"):
        resume(first)
