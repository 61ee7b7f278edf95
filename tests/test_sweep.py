"""fastmf.sweep and `fastmf sweep`: the grid, the rows against solve, a worker killed midway,
a sweep interrupted and resumed, failures, and the command line."""

import _thread
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastmf
import fastmf.options
import fastmf.sweeps
import fastmf.table
from fastmf import invariants, schedules, theory
from fastmf.cli import main
from fastmf.sweeps import COLUMNS, grid_points, run_task, sweep

distributed = pytest.importorskip("distributed")

# 4 points x 50 seeds = 200 runs, long enough (about 0.1 s a task of 5) to kill something midway
GRID = {"m": 10**6, "n": 800_000, "d": 3, "kappa": [1.0, 3.0], "lr": [0.05, 0.1], "init_scale": 1e-6,
        "max_iter": 60_000, "delta": 1e-12, "record_every": 7, "seeds": 50}  # fmt: skip
KEY = [*list(COLUMNS)[: list(COLUMNS).index("seed") + 1]]


@pytest.fixture(scope="module")
def local_client():
    """An in-process cluster (threads): monkeypatches reach its tasks, and it starts fast."""
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as c,
        distributed.Client(c) as client,
    ):
        yield client


def _rows(table):
    """The runs of a table as tuples of their parameters and seed (NaN as None, so that equal rows compare equal)."""
    return [_nan_as_none(row) for row in zip(*(table[name].tolist() for name in KEY), strict=True)]


def _nan_as_none(row):
    return tuple(None if isinstance(v, float) and np.isnan(v) else v for v in row)


def _expected(point, seeds):
    """The runs of one grid point as fastmf.solve runs them, one at a time."""
    space = np.linspace if point["spacing"] == "linear" else np.geomspace
    s = space(point["kappa"] * point["sigma_d"], point["sigma_d"], point["d"])
    problem = fastmf.Problem.from_spectrum(s, point["m"], point["n"])
    delta, record_every, spectral_every = (None if np.isnan(point[name]) else point[name]
                                           for name in ("delta", "record_every", "spectral_every"))  # fmt: skip
    lr = schedules.parse(point["schedule"]) if point["schedule"] else point["lr"]
    return [
        fastmf.solve(problem, k=point["k"], lr=lr, max_iter=point["max_iter"], seed=seed,
                     init_scale=point["init_scale"], tol=point["tol"], record_every=record_every, delta=delta,
                     spectral_every=spectral_every or 0)
        for seed in seeds
    ]  # fmt: skip


def _check_rows_against_solve(table, point, seeds):
    rows = {row[-1]: i for i, row in enumerate(_rows(table)) if row[:-1] == _nan_as_none(point.values())}
    for seed, run in zip(seeds, _expected(point, seeds), strict=True):
        i = rows[seed]
        assert table["status"][i] == run.status and table["n_iter"][i] == run.n_iter
        for name in ("T1", "T0", "T_delta"):
            value = getattr(run.stages, name)
            assert table[name][i] == value if value is not None else np.isnan(table[name][i])
        np.testing.assert_allclose(table["final_loss"][i], run.loss, rtol=1e-8, atol=1e-12 * run.history["loss"][0])
        assert table["sigma_1"][i] == run.problem.sigma_1
        if not np.isnan(point["spectral_every"]):  # the per-run extremes, at solve's spectral stride
            for name, value in run.invariants.items():
                np.testing.assert_allclose(table[name][i], value, rtol=1e-8, err_msg=name)


def test_grid_points_resolve_defaults_theory_and_unions():
    points = grid_points([{"m": 50, "d": 2, "lr": [0.1, 0.2], "max_iter": 10, "seeds": 3},
                          {"m": 40, "n": 60, "d": 3, "kappa": 4, "spacing": "geometric", "k": 5, "init_scale": "theory",
                           "lr": "theory", "max_iter": 0, "tol": 1e-9, "seeds": [7, 2]}])  # fmt: skip
    assert len(points) == 3
    first, seeds = points[0]
    assert seeds == [0, 1, 2] and first["n"] == 50 and first["k"] == 2 and first["kappa"] == 1.0
    assert first["init_scale"] == pytest.approx(1e-3 * np.sqrt(1.0 / 100), rel=1e-15) and np.isnan(first["delta"])
    assert np.isnan(first["record_every"]) and first["tol"] == 0.0  # the default: the engine's doubling stride
    last, seeds = points[2]
    s = np.geomspace(4.0, 1.0, 3)
    assert seeds == [7, 2] and last["delta"] == 1e-9 and last["k"] == 5
    assert last["init_scale"] == theory.init_scale(s, 40, 60) and last["lr"] == theory.step_size(s, last["init_scale"])
    assert list(last) == KEY[:-1]


def test_the_grid_names_its_settings_as_solve_and_takes_the_options_defaults(monkeypatch):
    assert set(fastmf.sweeps._SETTINGS) <= {f.name for f in dataclasses.fields(fastmf.options.Options)}
    monkeypatch.setattr(fastmf.options, "DEFAULTS", dataclasses.replace(fastmf.options.DEFAULTS, lr=0.2, max_iter=123))
    ((point, _),) = grid_points({"m": 400, "n": 500, "d": 3, "kappa": 4, "seeds": 1})
    assert point["lr"] == 0.2 / 4 and point["max_iter"] == 123 and point["k"] == 3
    assert point["init_scale"] == pytest.approx(1e-3 * np.sqrt(4 / 900), rel=1e-15)


@pytest.mark.parametrize(
    "grid, error, match",
    [
        ({"m": 5, "d": 2, "lr": 0.1, "max_iter": 5, "seeds": 2, "eta": 0.1}, ValueError, "unknown grid parameter"),
        ({"m": 5, "d": 2, "eps": 0.1, "seeds": 2}, ValueError, "unknown grid parameter"),
        ({"m": 5, "d": 2, "rank": 2, "seeds": 2}, ValueError, "unknown grid parameter"),
        ({"m": 5, "lr": 0.1, "max_iter": 5, "seeds": 2}, ValueError, "must give d"),
        ({"m": 5, "d": 2, "lr": 0.1, "max_iter": 5}, ValueError, "must give seeds"),
        ({"m": 5, "d": 6, "lr": 0.1, "max_iter": 5, "seeds": 2}, ValueError, "d must be at most"),
        ({"m": 5, "d": 2, "k": 6, "seeds": 2}, ValueError, "k must be at most"),
        ({"m": 5, "d": 2, "kappa": 0.5, "lr": 0.1, "max_iter": 5, "seeds": 2}, ValueError, "kappa"),
        ({"m": 5, "d": 1, "kappa": 2, "lr": 0.1, "max_iter": 5, "seeds": 2}, ValueError, "kappa"),
        ({"m": 5, "d": 2, "lr": "fast", "max_iter": 5, "seeds": 2}, ValueError, "lr must be a positive number"),
        ({"m": 5, "d": 2, "max_iter": -1, "seeds": 2}, ValueError, "max_iter must be"),
        ({"m": 5, "d": 2, "lr": [0.1, 0.1], "max_iter": 5, "seeds": 2}, ValueError, "twice"),
        ({"m": 5, "d": 2, "lr": [], "max_iter": 5, "seeds": 2}, ValueError, "no values"),
        ({"m": 5, "d": 2, "lr": 0.1, "max_iter": 5, "seeds": [1, 1]}, ValueError, "distinct"),
        ({"m": 5, "d": 2, "lr": 0.1, "max_iter": 5, "seeds": 2, "spacing": "log"}, ValueError, "spacing"),
        ({"m": 5.0, "d": 2, "lr": 0.1, "max_iter": 5, "seeds": 2}, TypeError, "m must be an integer"),
        ("m=5", TypeError, "grid must be a dict"),
    ],
)
def test_bad_grids_name_the_parameter(grid, error, match, tmp_path):
    with pytest.raises(error, match=match):
        sweep(grid, tmp_path / "t.csv")
    assert not os.listdir(tmp_path)


def test_rows_are_solves_runs():
    point, _ = grid_points({"m": 300, "n": 200, "d": 4, "kappa": 3, "spacing": "geometric", "k": 6, "lr": 0.08,
                            "init_scale": 1e-5, "max_iter": 900, "tol": 1e-22, "delta": 1e-9, "record_every": 4,
                            "spectral_every": 8, "seeds": 1})[0]  # fmt: skip
    seeds = [11, 3, 5]
    rows = run_task(point, seeds)
    assert list(rows) == list(COLUMNS) and rows["seed"] == seeds
    assert list(COLUMNS)[-len(invariants.COLUMNS) :] == list(invariants.COLUMNS)
    table = {name: np.array(values) for name, values in rows.items()}
    _check_rows_against_solve(table, point, seeds)


def test_a_killed_worker_loses_no_run_and_duplicates_none(tmp_path):
    """200 runs on 2 worker processes; one is killed (SIGKILL) midway; after resume the
    table has each run exactly once, with solve's numbers."""
    out = os.fspath(tmp_path / "runs.csv")
    finished = []
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(fastmf.solve_batch, fastmf.Problem.from_spectrum([1.0], 2, 2), 1, 0.1, 1, seeds=[0])  # warm
        pids = list(client.run(os.getpid).values())
        runner = threading.Thread(target=lambda: finished.append(sweep(GRID, out, client=client, batch=5)))
        runner.start()
        deadline = time.monotonic() + 300
        while _lines(out) < 40:
            assert time.monotonic() < deadline and runner.is_alive(), "the sweep ended or stalled before the kill"
            time.sleep(0.01)
        os.kill(pids[0], signal.SIGKILL)
        written_at_kill = _lines(out)
        runner.join(timeout=600)
        assert not runner.is_alive()
        assert written_at_kill < 200, "the sweep ended before the kill; make the runs longer"
        first = finished[0]
        resumed = sweep(GRID, out, resume=True, client=client)
    assert first.status in ("done", "failed") and first.runs == 200
    assert resumed.status == "done" and resumed.skipped == first.ran and first.ran + resumed.ran == 200
    table = resumed.table()
    rows = _rows(table)
    assert len(rows) == 200 and len(set(rows)) == 200
    expected = {_nan_as_none((*point.values(), seed)) for point, seeds in grid_points(GRID) for seed in seeds}
    assert set(rows) == expected
    for point, seeds in grid_points(GRID):
        _check_rows_against_solve(table, point, seeds[::25])


def _lines(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return max(f.read().count(b"\n") - 1, 0)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_interrupted_sweep_resumes_with_only_the_missing_runs(suffix, tmp_path, local_client, monkeypatch):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    grid = {"m": 1000, "d": 2, "lr": [0.05, 0.1, 0.2], "init_scale": 1e-4, "max_iter": 300, "seeds": 10}
    out = tmp_path / f"runs{suffix}"
    real_append = fastmf.table.CsvTable.append if suffix == ".csv" else fastmf.table.ParquetTable.append
    calls = []

    def append_then_interrupt(self, rows):
        real_append(self, rows)
        calls.append(len(rows["seed"]))
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(type(fastmf.table.open_table(out, COLUMNS, resume=True)), "append", append_then_interrupt)
    first = sweep(grid, out, client=local_client, batch=4)
    monkeypatch.undo()
    assert first.status == "interrupted" and first.ran == sum(calls) == len(_rows(first.table()))
    assert "resume=True" in first.message and f"{30 - first.ran} runs still missing" in first.message
    with pytest.raises(FileExistsError, match="already exists"):
        sweep(grid, out, client=local_client)
    resumed = sweep(grid, out, resume=True, client=local_client, batch=4)
    assert resumed.status == "done" and resumed.ran == 30 - first.ran and resumed.skipped == first.ran
    rows = _rows(resumed.table())
    assert len(rows) == 30 and len(set(rows)) == 30


def test_a_sweep_answers_ctrl_c_within_a_second(tmp_path, local_client):
    """Ctrl-C while the sweep waits for its tasks: it cancels the rest and returns at once."""
    grid = {"m": 100_000, "d": 3, "init_scale": 1e-6, "lr": 0.05, "max_iter": 100_000, "seeds": 300}
    out = tmp_path / "runs.csv"
    sent = []

    def interrupt_after_the_first_rows():
        deadline = time.monotonic() + 120
        while _lines(out) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        sent.append(time.monotonic())
        _thread.interrupt_main()  # as Ctrl-C does

    threading.Thread(target=interrupt_after_the_first_rows, daemon=True).start()
    interrupted = sweep(grid, out, client=local_client, batch=2)
    returned = time.monotonic()
    assert interrupted.status == "interrupted" and 2 <= interrupted.ran < 300
    assert returned - sent[0] < 1.0


def test_failing_tasks_are_reported_and_retried_on_resume(tmp_path, local_client, monkeypatch):
    grid = {"m": 1000, "d": 2, "lr": [0.05, 0.1], "init_scale": 1e-4, "max_iter": 200, "seeds": 6}
    real = fastmf.sweeps.solve_batch

    def fails_for_seed_4(problem, k, lr, max_iter, *, seeds, **kwargs):
        if 4 in seeds:
            raise RuntimeError("out of luck")
        return real(problem, k, lr, max_iter, seeds=seeds, **kwargs)

    monkeypatch.setattr(fastmf.sweeps, "solve_batch", fails_for_seed_4)
    out = tmp_path / "runs.csv"
    with pytest.warns(RuntimeWarning, match="sweep failed: 4 runs in 2 tasks raised.*out of luck"):
        failed = sweep(grid, out, client=local_client, batch=2)
    assert failed.status == "failed" and failed.failed == 4 and failed.ran == 8
    monkeypatch.undo()
    resumed = sweep(grid, out, resume=True, client=local_client)
    assert resumed.status == "done" and resumed.ran == 4
    expected = [_nan_as_none((*p.values(), seed)) for p, seeds in grid_points(grid) for seed in seeds]
    assert sorted(_rows(resumed.table()), key=str) == sorted(expected, key=str)


def test_nothing_missing_starts_no_cluster(tmp_path, local_client, monkeypatch):
    grid = {"m": 100, "d": 2, "lr": 0.1, "max_iter": 50, "seeds": 3}
    out = tmp_path / "runs.csv"
    assert sweep(grid, out, client=local_client).ran == 3
    monkeypatch.setattr(distributed, "LocalCluster", None)  # would fail if called
    again = sweep(grid, out, resume=True)
    assert again.status == "done" and (again.ran, again.skipped) == (0, 3)


def test_resuming_keeps_a_last_row_without_its_newline_and_refuses_a_foreign_table(tmp_path, local_client, capsys):
    grid = {"m": 100, "d": 2, "lr": 0.1, "max_iter": 50, "seeds": 3}
    out = tmp_path / "runs.csv"
    assert sweep(grid, out, client=local_client).ran == 3
    out.write_bytes(out.read_bytes().rstrip(b"\n"))  # as an editor may save it
    before = out.read_bytes()
    again = sweep(grid, out, resume=True, client=local_client)
    assert (again.ran, again.skipped) == (0, 3) and len(again.table()["seed"]) == 3
    assert out.read_bytes() == before  # reading the table changed nothing
    more = sweep(grid | {"seeds": 4}, out, resume=True, client=local_client)
    assert (more.ran, more.skipped) == (1, 3)
    assert sorted(more.table()["seed"].tolist()) == [0, 1, 2, 3]
    assert out.read_bytes().startswith(before + b"\n") and out.read_text().count("\n") == 5  # header + 4 rows

    foreign = tmp_path / "mine.csv"
    foreign.write_text("name,age\nada,36")
    with pytest.raises(ValueError, match="mine.csv is not a fastmf sweep table"):
        sweep(grid, foreign, resume=True, client=local_client)
    (tmp_path / "s.toml").write_text("[grid]\nm = 100\nd = 2\nlr = 0.1\nmax_iter = 50\nseeds = 3\n")
    assert main(["sweep", os.fspath(tmp_path / "s.toml"), "-o", os.fspath(foreign), "--resume"]) == 2
    assert "is not a fastmf sweep table (its header is 'name,age'); choose another output" in capsys.readouterr().err
    assert foreign.read_text() == "name,age\nada,36"


def test_a_scheduler_address_runs_on_that_cluster(tmp_path, local_client, monkeypatch, capsys):
    grid = {"m": 100, "d": 2, "lr": [0.1, 0.2], "max_iter": 50, "seeds": 3}
    monkeypatch.setattr(distributed, "LocalCluster", None)  # would fail if called
    done = sweep(grid, tmp_path / "a.csv", client=local_client.scheduler.address)
    assert done.status == "done" and len(done.table()["seed"]) == 6
    (tmp_path / "s.toml").write_text("[grid]\nm = 100\nd = 2\nlr = 0.1\nmax_iter = 50\nseeds = 3\n")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "s.toml", "-o", "b.csv", "--scheduler", local_client.scheduler.address]) == 0
    assert "3 runs written to b.csv" in capsys.readouterr().out


def test_bad_arguments(tmp_path, local_client):
    grid = {"m": 100, "d": 2, "lr": 0.1, "max_iter": 50, "seeds": 3}
    with pytest.raises(ValueError, match="must end in .parquet"):
        sweep(grid, tmp_path / "t.json", client=local_client)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sweep(grid, tmp_path / "no" / "t.csv", client=local_client)
    with pytest.raises(ValueError, match="workers sets the size"):
        sweep(grid, tmp_path / "t.csv", client=local_client, workers=2)
    with pytest.raises(TypeError, match="client must be"):
        sweep(grid, tmp_path / "t.csv", client=3)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        sweep(grid, tmp_path / "t.csv", batch=0)


def test_command_line_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        'output = "eta.csv"\nbatch = 3\nworkers = 1\n[grid]\nm = 2000\nd = 2\ninit_scale = 1e-5\nlr = [0.1, 0.2]\n'
        "max_iter = 400\ndelta = 1e-9\nseeds = 4\n"
    )
    assert main(["sweep", "s.toml", "--no-progress"]) == 0
    assert "8 runs written to eta.csv" in capsys.readouterr().out
    assert main(["sweep", "s.toml"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["sweep", "s.toml", "--resume", "-q"]) == 0
    assert capsys.readouterr().out == ""
    table = fastmf.table.open_table("eta.csv", COLUMNS, resume=True).read()
    assert len(table["seed"]) == 8 and set(table["lr"]) == {0.1, 0.2}
    (tmp_path / "bad.toml").write_text("[grid]\nm = 10\nd = 2\nlr = 0.1\nmax_iter = 5\nseeds = 2\neta = 3\n")
    assert main(["sweep", "bad.toml"]) == 2
    assert "unknown grid parameter(s) eta" in capsys.readouterr().err
    (tmp_path / "nogrid.toml").write_text("m = 10\n")
    assert main(["sweep", "nogrid.toml"]) == 2
    assert "unknown setting(s) m" in capsys.readouterr().err


def test_command_line_ctrl_c_keeps_the_finished_runs(tmp_path):
    (tmp_path / "s.toml").write_text(
        "[grid]\nm = 100000\nd = 3\ninit_scale = 1e-6\nlr = [0.05, 0.1]\nmax_iter = 100000\nseeds = 20\n"
    )
    args = [sys.executable, "-m", "fastmf", "sweep", "s.toml", "-o", "runs.csv", "--workers", "2", "--batch", "2"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _lines(tmp_path / "runs.csv") < 4:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "sweep interrupted" in err and "--resume" in err
    kept = _lines(tmp_path / "runs.csv")
    assert 4 <= kept < 40, "the sweep ended before Ctrl-C; make the runs longer"
    done = subprocess.run([*args, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{40 - kept} runs written" in done.stdout
    rows = _rows(fastmf.table.open_table(tmp_path / "runs.csv", COLUMNS, resume=True).read())
    assert len(rows) == 40 and len(set(rows)) == 40


def test_a_grid_over_the_variants_reaches_the_runs(monkeypatch):
    grid = {"m": 40, "d": 2, "lr": 0.05, "max_iter": 3, "seeds": 1, "balance": [0.0, 0.5],
            "update": ["simultaneous", "alternating"], "precondition": [None, 0.1], "noise": [0.0, 1e-6],
            "init": ["gaussian", "balanced", "symmetric"]}  # fmt: skip
    points = grid_points(grid)
    assert len(points) == 2 * 2 * 2 * 2 * 3
    ran, solve_batch = [], fastmf.sweeps.solve_batch

    def recording(*args, **kwargs):
        result = solve_batch(*args, **kwargs)
        ran.append(result.options)
        return result

    monkeypatch.setattr(fastmf.sweeps, "solve_batch", recording)
    names = ("balance", "update", "precondition", "noise", "init")
    for point, seeds in points[::7]:
        rows = run_task(point, seeds)
        options = ran[-1]
        assert [rows[name][0] for name in names] == [point[name] for name in names]  # NaN is point's own object
        precondition = None if np.isnan(point["precondition"]) else point["precondition"]
        assert [getattr(options, name) for name in names] == [point[name] for name in names[:2]] + [
            precondition, point["noise"], point["init"]]  # fmt: skip


# ----------------------------------------------------------------------------- lr schedules


def test_a_grid_takes_lr_schedules_as_objects_text_or_mappings_and_keeps_their_text():
    given = [schedules.InverseSqrt(0.1, 100), "step_decay:0.1,0.5,10", {"kind": "warmup", "lr": 0.1, "steps": 5},
             "inverse_sqrt:0.25", schedules.Constant(1 / 3), 0.2]  # fmt: skip
    points = grid_points({"m": 40, "d": 2, "lr": given, "seeds": 1})
    text = ["inverse_sqrt:0.1,100", "step_decay:0.1,0.5,10", "warmup:0.1,5", "inverse_sqrt:0.25,1",
            f"constant:{1 / 3!r}", ""]  # fmt: skip
    assert [point["schedule"] for point, _ in points] == text
    lrs = [point["lr"] for point, _ in points]
    assert all(np.isnan(lrs[:-1])) and lrs[-1] == 0.2  # a schedule's lr is NaN: the column stays numbers
    built = [schedules.InverseSqrt(0.1, 100), schedules.StepDecay(0.1, 0.5, 10), schedules.Warmup(0.1, 5),
             schedules.InverseSqrt(0.25, 1), schedules.Constant(1 / 3)]  # fmt: skip
    assert [schedules.parse(point["schedule"]) for point, _ in points[:-1]] == built  # the text gives it back
    with pytest.raises(ValueError, match="twice"):  # one schedule, written three ways
        grid_points({"m": 40, "d": 2, "seeds": 1, "lr": [schedules.InverseSqrt(0.1, 100), "inverse_sqrt:0.1,100",
                                                         {"kind": "inverse_sqrt", "lr": 0.1, "t0": 100}]})  # fmt: skip
    with pytest.raises(ValueError, match="unknown grid parameter.*schedule"):  # a schedule is given as lr
        grid_points({"m": 40, "d": 2, "schedule": "inverse_sqrt:0.1,100", "seeds": 1})


@pytest.mark.parametrize(
    "lr, error, match",
    [
        (lambda t: 0.1 / np.sqrt(1 + t), TypeError, "lr must be a number, 'theory' or a built-in schedule"),
        (schedules.Custom("my_schedule"), TypeError, "lr must be a number, 'theory' or a built-in schedule"),
        ("step_decay:0.1,0.5,10.5", ValueError, "lr: step_decay's every must be an integer, got 10.5"),
        ({"kind": "warmup", "lr": 0.1, "t0": 3}, ValueError, "lr: a warmup schedule takes lr, steps"),
        ("decay:0.1", ValueError, "lr must be a positive number, 'theory' or a schedule NAME:ARGS"),
    ],
)
def test_a_grid_refuses_an_lr_a_table_cannot_hold(lr, error, match):
    with pytest.raises(error, match=match) as exc:
        grid_points({"m": 40, "d": 2, "lr": lr, "seeds": 1})
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_sweep_of_lr_schedules_writes_solves_runs_and_resumes(suffix, tmp_path, local_client):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"runs{suffix}"
    grid = {"m": 300, "d": 2, "kappa": 2, "init_scale": 1e-4, "max_iter": 400, "delta": 1e-8, "seeds": 2,
            "lr": ["inverse_sqrt:0.2,100", "step_decay:0.2,0.5,150", 0.2]}  # fmt: skip
    first = sweep(grid, out, client=local_client)
    assert first.status == "done" and first.ran == 6
    table = first.table()
    assert table["lr"].dtype == np.float64
    pairs = sorted(_nan_as_none(pair) for pair in zip(table["schedule"].tolist(), table["lr"].tolist(), strict=True))
    assert pairs == [("", 0.2)] * 2 + [("inverse_sqrt:0.2,100", None)] * 2 + [("step_decay:0.2,0.5,150", None)] * 2
    for point, seeds in grid_points(grid):
        _check_rows_against_solve(table, point, seeds)
    as_objects = grid | {"lr": [schedules.InverseSqrt(0.2, 100), {"kind": "step_decay", "lr": 0.2, "factor": 0.5,
                                                                   "every": 150}, 0.2], "seeds": 3}  # fmt: skip
    more = sweep(as_objects, out, resume=True, client=local_client)
    assert more.status == "done" and (more.ran, more.skipped) == (3, 6)  # only seed 2 of each point
    rows = _rows(more.table())
    assert len(rows) == 9 and len(set(rows)) == 9


def test_command_line_sweep_takes_a_schedule_as_text_or_a_table(tmp_path, local_client, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        '[grid]\nm = 100\nd = 2\nmax_iter = 50\nseeds = 2\nlr = [0.1, "warmup:0.1,10", '
        '{kind = "inverse_sqrt", lr = 0.1, t0 = 100}]\n'
    )
    address = local_client.scheduler.address
    assert main(["sweep", "s.toml", "-o", "runs.csv", "--scheduler", address]) == 0
    assert "6 runs written to runs.csv" in capsys.readouterr().out
    table = fastmf.table.open_table("runs.csv", COLUMNS, resume=True).read()
    pairs = {_nan_as_none(pair) for pair in zip(table["lr"].tolist(), table["schedule"].tolist(), strict=True)}
    assert pairs == {(0.1, ""), (None, "warmup:0.1,10"), (None, "inverse_sqrt:0.1,100")}
    assert main(["sweep", "s.toml", "-o", "runs.csv", "--scheduler", address, "--resume"]) == 0
    assert "0 runs written to runs.csv (6 of the grid's 6 were there already)" in capsys.readouterr().out


def test_a_plain_sweeps_parquet_table_has_a_float_lr_column_for_pandas(tmp_path, local_client):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "runs.parquet"
    done = sweep({"m": 100, "d": 2, "lr": [0.1, 0.2], "max_iter": 50, "seeds": 2}, out, client=local_client)
    frame = pd.read_parquet(out)
    assert frame["lr"].dtype == np.float64 and frame.groupby("lr").size().to_dict() == {0.1: 2, 0.2: 2}
    assert frame["schedule"].tolist() == [""] * 4
    assert done.to_frame()["lr"].dtype == np.float64


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_resuming_a_table_without_the_schedule_column_names_it(suffix, tmp_path):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    grid = {"m": 40, "d": 2, "lr": 0.1, "max_iter": 5, "seeds": 1}
    out = tmp_path / f"runs{suffix}"
    ((point, seeds),) = grid_points(grid)
    older = {name: kind for name, kind in COLUMNS.items() if name != "schedule"}  # as sweeps wrote them before
    fastmf.table.open_table(out, older, resume=False).append(run_task(point, seeds))
    with pytest.raises(ValueError, match=f"runs{suffix} lacks the column\\(s\\) schedule that this version") as exc:
        sweep(grid, out, resume=True)
    assert "\n" not in str(exc.value)
