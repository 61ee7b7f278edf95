"""The command line: runs, outputs, exit codes, bad arguments, and a run killed and resumed
in a subprocess giving exactly the numbers of one left alone."""

import argparse
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastmf
import fastmf.options
from fastmf import cli
from fastmf.cli import main
from fastmf.driver import Control
from fastmf.options import FlowOptions, Options

SPECTRUM = ["--spectrum", "4,3,2,1.5,1", "--shape", "100000x100000"]
LONG = SPECTRUM + ["--lr", "0.01", "--max-iter", "1500000", "--init-scale", "1e-5", "--seed", "7",
                   "--record-every", "1000", "--no-progress"]  # fmt: skip


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _json(path):
    with open(path) as f:
        return json.load(f)


def _same_run(a, b):
    a, b = fastmf.load(a), fastmf.load(b)
    assert a.n_iter == b.n_iter and a.stages == b.stages and a.status == b.status
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
    for name in ("Up", "Vp", "L_U", "L_V"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_run_writes_result_and_summary(capsys):
    code = main(["run", *SPECTRUM, "--lr", "0.05", "--max-iter", "3000", "--init-scale", "1e-5", "--seed", "0",
                 "--tol", "1e-24", "-o", "run.npz"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "converged" in out and "run.npz" in out
    result = fastmf.load("run.npz")
    direct = fastmf.solve(fastmf.Problem.from_spectrum([4, 3, 2, 1.5, 1], 10**5, 10**5), k=5, lr=0.05,
                          max_iter=3000, init_scale=1e-5, seed=0, tol=1e-24)  # fmt: skip
    np.testing.assert_array_equal(result.history["loss"], direct.history["loss"])
    summary = _json("run.json")
    assert summary["status"] == "converged" and summary["success"] is True and summary["n_iter"] == direct.n_iter
    assert summary["stages"]["T0"] == direct.stages.T0 and summary["k"] == 5 and summary["method"] == "split"
    options = summary["options"]  # resolved: what the run used
    assert (options["seed"], options["lr"], options["init_scale"], options["max_iter"]) == (0, 0.05, 1e-5, 3000)
    assert options["tol"] == 1e-24 and options["delta"] == 1e-24
    assert summary["problem"]["shape"] == [100000, 100000] and summary["problem"]["sigma_d"] == 1.0


def test_matrix_files_config_and_flow(capsys):
    rng = np.random.default_rng(0)
    Sigma = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 40))
    np.save("sigma.npy", Sigma)
    np.savez("both.npz", Sigma=Sigma, other=np.eye(2))
    assert main(["run", "sigma.npy", "--lr", "0.01", "--max-iter", "200", "--seed", "1", "-q", "-o", "a.npz"]) == 0
    assert main(["run", "both.npz", "--key", "Sigma", "--lr", "0.01", "--max-iter", "200", "--seed", "1", "-q",
                 "-o", "b.npz"]) == 0  # fmt: skip
    _same_run("a.npz", "b.npz")
    assert fastmf.load("a.npz").k == 3  # default k: the rank of Sigma
    with open("exp.toml", "w") as f:
        f.write('input = "sigma.npy"\nlr = 0.01\nmax_iter = 200\nseed = 1\noutput = "c.npz"\n')
    assert main(["run", "--config", "exp.toml", "-q"]) == 0
    _same_run("a.npz", "c.npz")
    assert main(["run", "--config", "exp.toml", "--max-iter", "100", "-q"]) == 0  # flags win
    assert fastmf.load("c.npz").n_iter == 100
    assert capsys.readouterr().out == ""

    assert main(["flow", *SPECTRUM, "--t-max", "40", "--init-scale", "1e-5", "--seed", "0", "-o", "f.npz"]) == 0
    flow = fastmf.load("f.npz")
    assert isinstance(flow, fastmf.FlowResult) and flow.t == 40.0 and flow.history["t"].size == 1001
    assert _json("f.json")["t"] == 40.0 and _json("f.json")["options"]["ode_method"] == "LSODA"


def test_a_full_rank_dense_input_may_run_on_the_direct_path(capsys):
    """The CLI hands the matrix itself to solve, whose method="auto" takes the direct path for a
    full-rank matrix: the summary says so and has no spectrum (the run never computes one)."""
    Sigma = np.random.default_rng(0).standard_normal((60, 40))
    np.save("noisy.npy", Sigma)
    assert main(["run", "noisy.npy", "-k", "3", "--lr", "0.01", "--max-iter", "50", "--seed", "0", "-q"]) == 0
    summary = _json("fastmf-run.json")
    assert summary["method"] == "direct" and "problem" not in summary and summary["k"] == 3
    result = fastmf.load("fastmf-run.npz")
    assert result.n_iter == 50 and result.problem is None
    direct = fastmf.solve(Sigma, k=3, lr=0.01, max_iter=50, seed=0, method="direct")
    np.testing.assert_array_equal(result.history["loss"], direct.history["loss"])
    # its file does not hold Sigma: a resumed direct run takes INPUT again
    assert main(["run", "noisy.npy", "-k", "3", "--lr", "0.01", "--max-iter", "20", "--seed", "0", "-q"]) == 0
    assert main(["run", "--resume", "fastmf-run.npz", "noisy.npy", "--max-iter", "50", "-q", "-o", "more.npz"]) == 0
    more = fastmf.load("more.npz")
    assert more.n_iter == 50 and more.method == "direct"
    np.testing.assert_array_equal(more.history["loss"], direct.history["loss"])
    assert main(["run", "--resume", "fastmf-run.npz", "-q", "-o", "again.npz"]) == 2  # without INPUT
    assert "give INPUT again" in capsys.readouterr().err


def test_flow_time_limit_exits_3_and_resumes_to_the_same_numbers():
    flow = [
        *SPECTRUM,
        "--t-max",
        "40",
        "--init-scale",
        "1e-5",
        "--seed",
        "0",
        "--ode-method",
        "DOP853",
        "--no-progress",
        "-q",
    ]  # fmt: skip  (DOP853: an LSODA flow resumes only with SciPy >= 1.17)
    assert main(["flow", *flow, "-o", "whole.npz"]) == 0
    assert main(["flow", *flow, "--time-limit", "1e-9", "-o", "part.npz"]) == 3  # stops after its first chunk
    part = fastmf.load("part.npz")
    assert part.status == "time_limit" and part.t < 40.0
    assert main(["flow", "--resume", "part.npz", "-q", "-o", "more.npz"]) == 0
    whole, more = fastmf.load("whole.npz"), fastmf.load("more.npz")
    assert more.status == whole.status and more.t == 40.0
    for key in whole.history:
        np.testing.assert_array_equal(more.history[key], whole.history[key], err_msg=key)


# ----------------------------------------------------------------------------- flags from the options

_GOOD = {"int>=1": 2, "int>=0": 3, "int>=2": 5, "float>0": 0.5, "float>=0": 0.25, "number|theory": "theory",
         "seed": 7}  # fmt: skip
_BAD = {"int>=1": "0", "int>=0": "-1", "int>=2": "1", "float>0": "0", "float>=0": "-1", "number|theory": "fast",
        "seed": "-1"}  # fmt: skip
_CONTROL = {"time_limit": 0.5, "checkpoint": "ckpt.npz", "checkpoint_every": 4, "progress": False}
_OPTIONS = {"run": Options, "flow": FlowOptions}


def _settings(command):
    """(field, a valid value of its kind other than its default, an invalid one) for each setting."""
    for f in dataclasses.fields(_OPTIONS[command]):
        kind = f.metadata["kind"]
        choices = kind.split("|")
        yield f, _GOOD.get(kind, choices[-1]), _BAD.get(kind, "nope")


def _actions(command):
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {flag: action for action in sub.choices[command]._actions for flag in action.option_strings}


@pytest.mark.parametrize("command", ["run", "flow"])
def test_every_setting_has_its_flag_with_the_fields_help(command):
    actions = _actions(command)
    for f, _, _ in _settings(command):
        action = actions[f"--{f.name.replace('_', '-')}"]
        assert action.dest == f.name and action.default is None  # unset: not passed, the field's default applies
        assert action.help.startswith(cli._BY_NAME[f.name][2] if f.name in cli._BY_NAME else f.metadata["help"]), f.name
        if f.default is not None:
            assert action.help.endswith(f"[default: {f.default:g}]" if isinstance(f.default, float) else
                                        f"[default: {f.default}]"), f.name  # fmt: skip
    controls = {f.name for f in dataclasses.fields(Control)} - {"callback"}
    assert controls == set(_CONTROL) and all(actions[f"--{name.replace('_', '-')}"].dest == name for name in controls)
    assert actions["-k"] is actions["--k"]


def _capture(monkeypatch, command):
    """Replace the library call of `command` by one that records its arguments and raises _Called."""
    calls = []

    def record(Sigma, **kwargs):
        calls.append(kwargs)
        raise _Called

    monkeypatch.setattr(fastmf, "solve" if command == "run" else "gradient_flow", record)
    return calls


class _Called(Exception):
    pass


@pytest.mark.parametrize("via", ["flags", "config"])
@pytest.mark.parametrize("command", ["run", "flow"])
def test_every_setting_reaches_the_library_from_a_flag_or_a_toml_key(command, via, monkeypatch):
    calls = _capture(monkeypatch, command)
    values = {f.name: good for f, good, _ in _settings(command)} | _CONTROL
    if via == "flags":
        argv = [f"--{name.replace('_', '-')}={value}" for name, value in values.items() if name != "progress"]
        argv.append("--no-progress")
    else:
        with open("all.toml", "w") as f:
            f.writelines(f"{name} = {json.dumps(value)}\n" for name, value in values.items())
        argv = ["--config", "all.toml"]
    with pytest.raises(_Called):
        main([command, "--spectrum", "4,3", *argv])
    (kwargs,) = calls
    assert kwargs.pop("options") == _OPTIONS[command](**{f.name: good for f, good, _ in _settings(command)})
    assert kwargs == _CONTROL


@pytest.mark.parametrize("command", ["run", "flow"])
def test_a_bad_value_of_any_setting_is_refused_naming_its_flag(command, capsys):
    actions = _actions(command)
    for f, _, bad in _settings(command):
        action = actions[f"--{f.name.replace('_', '-')}"]
        with pytest.raises(SystemExit) as exc:
            main([command, "--spectrum", "4,3", action.option_strings[-1], bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"argument {'/'.join(action.option_strings)}: " in err, (f.name, err)


def test_an_unset_flag_takes_the_options_default(monkeypatch):
    monkeypatch.setattr(fastmf.options, "DEFAULTS", dataclasses.replace(fastmf.options.DEFAULTS, lr=0.2, max_iter=123))
    assert main(["run", "--spectrum", "4,2", "--seed", "0", "-q"]) == 0
    result = fastmf.load("fastmf-run.npz")
    assert result.n_iter == 123 and result.options.lr == 0.2 / 4 and result.options.max_iter == 123
    assert _json("fastmf-run.json")["options"]["lr"] == 0.05


def test_theory_plot_warmup_info(capsys):
    assert main(["theory", *SPECTRUM, "--delta", "1e-6", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    expected = fastmf.theory.prescriptions([4, 3, 2, 1.5, 1], 10**5, 10**5, 1e-6)
    assert found["lr"] == expected["lr"] and found["T_total"] == expected["T_total"]
    assert main(["theory", *SPECTRUM]) == 0 and "Theorem 1.1" in capsys.readouterr().out

    pytest.importorskip("matplotlib")
    for seed in ("0", "1"):
        main(["run", *SPECTRUM, "--lr", "0.05", "--max-iter", "1000", "--seed", seed, "-q", "-o", f"s{seed}.npz"])
    assert main(["plot", "s0.npz"]) == 0 and os.path.getsize("s0.png") > 10_000
    assert main(["plot", "s0.npz", "s1.npz", "-o", "both.svg", "--labels", "a,b"]) == 0
    with open("both.svg") as f:
        assert "<svg" in f.read(2000)

    assert main(["warmup", "--dtype", "float64"]) == 0
    assert "kernels ready" in capsys.readouterr().out
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert fastmf.__version__ in out and "numba" in out and "cache" in out


@pytest.fixture
def files():
    """Inputs, good and bad, in the test's folder."""
    with open("notes.txt", "w") as f:
        f.write("not a matrix\n")
    with open("bad.toml", "w") as f:
        f.write("lr = = 1\n")
    with open("unknown.toml", "w") as f:
        f.write("colour = 'red'\n")
    with open("k.toml", "w") as f:
        f.write('spectrum = "4,3"\nk = "abc"\n')
    with open("sweep.toml", "w") as f:
        f.write("workers = 0\n[grid]\nm = 10\nd = 2\nlr = 0.1\nmax_iter = 5\nseeds = 2\n")
    os.mkdir("folder")
    np.savez("sigma.npz", Sigma=np.diag([4.0, 3.0, 2.0]))
    with open("sigma.npz", "rb") as f:
        data = f.read()
    with open("half.npz", "wb") as f:
        f.write(data[: len(data) // 2])
    with open("garbage.npz", "wb") as f:
        f.write(b"PK\x03\x04" + bytes(range(256)) * 4)
    fastmf.solve(fastmf.Problem.from_spectrum([2.0, 1.0], 5, 5), 2, 0.1, 2000, seed=0, tol=1e-20).save("done.npz")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run"], "exactly one"),
        (["run", "--spectrum", "4,x"], "argument --spectrum: must be comma-separated finite numbers"),
        (["run", "--spectrum", "4,3", "--shape", "10by5"], "argument --shape: must be M x N"),
        (["run", "missing.npy"], "no such matrix file"),
        (["run", "notes.txt"], "neither a .npy nor an .npz"),
        (["run", "--spectrum", "4,3", "--lr", "-1"], "argument --lr: must be a positive number, 'theory' or a"),
        (["run", "--spectrum", "4,3", "-k", "9"], "k must be at most"),
        (["run", "--spectrum", "4,3", "--init-scale", "big"], "argument --init-scale: must be"),
        (["run", "--spectrum", "4,3", "--config", "missing.toml"], "no such config file"),
        (["run", "--spectrum", "4,3", "--config", "bad.toml"], "not valid TOML"),
        (["run", "--spectrum", "4,3", "--config", "unknown.toml"], "unknown setting(s) colour"),
        (["run", "--spectrum", "4,3", "-o", "no/such/dir/out.npz"], "does not exist"),
        (["run", "--spectrum", "4,3", "--checkpoint-every", "5"], "needs a checkpoint file"),
        (["run", "--resume", "notes.txt"], "not a readable fastmf result"),
        (["run", "--resume", "done.npz", "--lr", "1"], "drop --lr"),
        (["run", "--resume", "done.npz", "--spectrum", "4,3", "--method", "split"], "drop --spectrum, --method"),
        (["flow", "--resume", "done.npz", "--rtol", "1e-8"], "drop --rtol"),
        (["run", "--resume", "done.npz"], "nothing to resume"),
        (["flow", "--spectrum", "4,3"], "--t-max is required"),
        (["flow", "--spectrum", "4,3", "--t-max", "1", "--ode-method", "Euler"], "argument --ode-method: invalid"),
        (["flow", "--spectrum", "4,3", "--t-max", "1", "--method", "RK45"], "unrecognized arguments: --method"),
        (["run", "--spectrum", "4,3", "--rank", "2"], "unrecognized arguments: --rank"),
        (["plot", "missing.npz"], "no such result"),
        (["run", "--spectrum", "4,3", "--max-iter", "1.5"], "argument --max-iter: must be an integer >= 0, got '1.5'"),
        (["run", "--bogus"], "unrecognized arguments"),
        (["bogus"], "invalid choice"),
        # each of these crashed with a traceback, ran with a changed value, or ran at all
        (["run", "half.npz"], "half.npz does not load as a .npy or .npz file (corrupt or truncated?)"),
        (["run", "garbage.npz"], "garbage.npz does not load as a .npy or .npz file (corrupt or truncated?)"),
        (["theory", "half.npz"], "half.npz does not load"),
        (["run", "folder"], "INPUT folder is a folder"),
        (["run", "--spectrum", "4,3", "--shape", "infx5"], "argument --shape: must be M x N with integers >= 1"),
        (["run", "--spectrum", "4,3", "--shape", "2.7x3.9"], "argument --shape: must be M x N with integers >= 1"),
        (["run", "--spectrum", "4,3", "--shape", "0x5"], "argument --shape: must be M x N with integers >= 1"),
        (["theory", "--spectrum", "4,3", "--shape", "infx5"], "argument --shape: must be M x N"),
        (["run", "--spectrum", "4,3", "--k", "0"], "argument -k/--k: must be an integer >= 1, got '0'"),
        (["run", "--spectrum", "4,3", "-k", "-2"], "argument -k/--k: must be an integer >= 1, got '-2'"),
        (["flow", "--spectrum", "4,3", "--t-max", "1", "-k", "0"], "argument -k/--k: must be an integer >= 1"),
        (["run", "--spectrum", "4,3", "--seed", "-1"], "argument --seed: must be an integer >= 0"),
        (["run", "--spectrum", "", "-k", "1"], "argument --spectrum: must be comma-separated finite numbers"),
        (["run", "--spectrum", "4,3", "--key", "Sigma"], "a --spectrum problem has none, drop --key"),
        (["run", "--spectrum", "4,3", "-o", ""], "argument -o/--output: must be a file name, got ''"),
        (["run", "--spectrum", "4,3", "-o", "folder"], "-o/--output folder is a folder; give a file name"),
        (["run", "--spectrum", "4,3", "--summary", "folder"], "--summary folder is a folder; give a file name"),
        (["run", "--spectrum", "4,3", "--checkpoint", "folder"], "--checkpoint folder is a folder"),
        (["flow", "--spectrum", "4,3", "--t-max", "1", "-o", "folder"], "-o/--output folder is a folder"),
        (["run", "--config", "k.toml"], "k.toml: k must be an integer >= 1, got 'abc'"),
        (["run", "--spectrum", "4,3", "--config", "folder"], "cannot read the config file folder"),
        (["flow", "--spectrum", "4,3", "--t-max", "nan"], "argument --t-max: must be a finite number > 0"),
        (
            ["flow", "--spectrum", "4,3", "--t-max", "1", "--n-times", "1"],
            "argument --n-times: must be an integer >= 2",
        ),
        (["theory", "--spectrum", "4,3", "--c-T", "-1"], "argument --c-T: must be a finite number > 0"),
        (["theory", "--spectrum", "4,3", "--delta", "inf"], "argument --delta: must be a finite number > 0"),
        (["plot", "done.npz", "-o", "folder"], "-o/--output folder is a folder"),
        (["sweep", "sweep.toml"], "sweep.toml: workers must be an integer >= 1, got 0"),
        (["sweep", "folder"], "cannot read the config file folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, files, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("fastmf")  # no usage block either


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "sigma.npz", "-o", "sigma.npz"], "-o/--output and INPUT both name sigma.npz"),
        (["run", "sigma.npz", "-o", "./sub/../sigma.npz"], "-o/--output and INPUT both name"),
        (["run", "sigma.npz", "--summary", "sigma.npz"], "--summary and INPUT both name sigma.npz"),
        (["run", "sigma.npz", "--checkpoint", "sigma.npz"], "--checkpoint and INPUT both name sigma.npz"),
        (["run", "link.npz", "-o", "sigma.npz"], "-o/--output and INPUT both name sigma.npz"),
        (["run", "hard.npz", "-o", "sigma.npz"], "-o/--output and INPUT both name sigma.npz"),
        (["run", "sigma.npz", "-o", "r.npz", "--summary", "r.npz"], "--summary and -o/--output both name r.npz"),
        (["run", "sigma.npz", "-o", "r.npz", "--checkpoint", "r.npz"], "--checkpoint and -o/--output both name"),
        (["run", "sigma.npz", "-o", "r.json"], "--summary and -o/--output both name r.json"),  # the default summary
        (["run", "--config", "exp.toml"], "-o/--output and INPUT both name sigma.npz"),
        (["run", "sigma.npz", "--config", "other.toml", "-o", "other.toml"], "-o/--output and --config both name"),
        (["run", "--resume", "done.npz", "-o", "done.npz"], "-o/--output and --resume both name done.npz"),
        (["run", "--resume", "done.npz", "--summary", "done.npz"], "--summary and --resume both name done.npz"),
        (["flow", "sigma.npz", "--t-max", "1", "-o", "sigma.npz"], "-o/--output and INPUT both name sigma.npz"),
        (["flow", "sigma.npz", "--t-max", "1", "--summary", "sigma.npz"], "--summary and INPUT both name"),
        (["plot", "done.npz", "-o", "done.npz"], "-o/--output and RESULT both name done.npz"),
        (["sweep", "grid.csv", "-o", "grid.csv", "--resume"], "-o/--output and CONFIG both name grid.csv"),
    ],
)
def test_no_output_overwrites_an_input_or_another_output(argv, message, files, capsys):
    os.symlink("sigma.npz", "link.npz")
    os.link("sigma.npz", "hard.npz")
    os.mkdir("sub")
    with open("exp.toml", "w") as f:
        f.write('input = "sigma.npz"\noutput = "sigma.npz"\n')
    with open("other.toml", "w") as f:
        f.write("max_iter = 5\n")
    with open("grid.csv", "w") as f:
        f.write("[grid]\nm = 10\nd = 2\nlr = 0.1\nmax_iter = 5\nseeds = 2\n")
    names = ["sigma.npz", "done.npz", "exp.toml", "other.toml", "grid.csv"]
    before = {name: pathlib.Path(name).read_bytes() for name in names}
    listing = sorted(os.listdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "choose another file for" in err and len(err.strip().splitlines()) == 1
    assert {name: pathlib.Path(name).read_bytes() for name in names} == before
    assert sorted(os.listdir()) == listing  # refused before any work: nothing written


def test_a_resumed_run_may_keep_checkpointing_to_its_file():
    part = fastmf.solve(fastmf.Problem.from_spectrum([2.0, 1.0], 5, 5), 2, 0.1, 10, seed=0)
    part.save("ckpt.npz")
    assert main(["run", "--resume", "ckpt.npz", "--checkpoint", "ckpt.npz", "--max-iter", "30", "-q"]) == 0
    assert fastmf.load("ckpt.npz").n_iter == 30 and fastmf.load("fastmf-run.npz").n_iter == 30


@pytest.mark.parametrize(
    "breakage",
    [
        "A.indices[0] = 1000",
        "A.indices[0] = -1",
        "A.indptr[5] = A.indptr[-1]",  # not monotone
        "A = A.tocsc(); A.indices[0] = 1000",
        "A = A.tocoo(); A.row[0] = 1000",
        "A = A.tocoo(); A.col[0] = -5",
    ],
)
def test_a_malformed_sparse_matrix_is_refused_not_a_crash(breakage):
    """Problem(A) raises a one-line ValueError and `fastmf run A.npz` exits 2; before, both could
    read out of bounds (exit 139, a segfault), so both run in a subprocess."""
    script = (
        "import scipy.sparse as sp, fastmf\n"
        "A = sp.random(20, 10, density=0.3, format='csr', random_state=0)\n"
        f"{breakage}\n"
        "sp.save_npz('bad.npz', A, compressed=False)\n"
        "try:\n    fastmf.Problem(A)\nexcept ValueError as exc:\n    print(exc)\n"
    )
    made = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0 and made.stderr == "", made.stderr
    assert made.stdout.startswith("Sigma (sparse) is malformed") and made.stdout.count("\n") == 1
    ran = subprocess.run([sys.executable, "-m", "fastmf", "run", "bad.npz", "--max-iter", "5", "-q"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.startswith("fastmf run: error: ") and ran.stderr.count("\n") == 1, ran.stderr


def test_diverged_run_exits_1(capsys):
    assert main(["run", "--spectrum", "4,3", "--lr", "5", "--max-iter", "1000", "--seed", "0", "-q"]) == 1
    assert fastmf.load("fastmf-run.npz").status == "diverged"


def test_time_limit_exits_3_and_resumes():
    assert main(["run", *LONG, "--time-limit", "0.3", "-q", "-o", "part.npz"]) == 3
    part = fastmf.load("part.npz")
    assert part.status == "time_limit" and 0 < part.n_iter < 1_500_000
    assert main(["run", "--resume", "part.npz", "--max-iter", str(part.n_iter + 5000), "-q", "-o", "more.npz"]) == 0
    assert fastmf.load("more.npz").n_iter == part.n_iter + 5000


def _cli(*args):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "fastmf", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "unbroken.npz"
    assert main(["run", *LONG, "-q", "-o", os.fspath(path)]) == 0  # also compiles and caches the kernels
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_killed_run_resumes_to_the_same_numbers(sig, unbroken):
    proc = _cli("run", *LONG, "--checkpoint", "ckpt.npz", "--checkpoint-every", "100000", "-o", "out.npz")
    _wait_for("ckpt.npz", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig), err
    assert "Traceback" not in err
    saved = fastmf.load("ckpt.npz")
    assert 0 < saved.n_iter < 1_500_000, "the signal came after the run ended; make the run longer"
    if sig == signal.SIGKILL:
        assert saved.status == "running" and not os.path.exists("out.npz")
    else:
        assert saved.status == "interrupted" and fastmf.load("out.npz").n_iter == saved.n_iter
        assert "interrupted" in out
    assert not [f for f in os.listdir() if f.endswith(".tmp")]
    resumed = _cli("run", "--resume", "ckpt.npz", "-o", "resumed.npz")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    _same_run("resumed.npz", unbroken)
    _same_run("ckpt.npz", unbroken)  # the resumed run kept checkpointing to the same file


def test_missing_extras_give_the_install_hint(monkeypatch, capsys):
    import builtins

    fastmf.solve(fastmf.Problem.from_spectrum([2.0, 1.0], 5, 5), 2, 0.1, 20, seed=0).save("r.npz")
    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name.split(".")[0] in ("matplotlib", "tqdm"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    assert main(["plot", "r.npz"]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err
    assert main(["run", "--spectrum", "2,1", "--progress"]) == 2
    assert "pip install tqdm" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the GD variants


@pytest.mark.parametrize("via", ["flag", "config"])
def test_lr_takes_a_schedule_by_name(via, monkeypatch):
    calls = _capture(monkeypatch, "run")
    if via == "flag":
        argv = ["--lr", "inverse_sqrt:0.1,100"]
    else:
        with open("s.toml", "w") as f:
            f.write('lr = "inverse_sqrt:0.1,100"\n')
        argv = ["--config", "s.toml"]
    with pytest.raises(_Called):
        main(["run", "--spectrum", "4,3", *argv])
    assert calls[0]["options"].lr == fastmf.schedules.InverseSqrt(0.1, 100.0)


@pytest.mark.parametrize("value", ["inverse_sqrt:fast", "warmup:", "decay:0.1"])
def test_a_bad_schedule_is_refused_naming_lr(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--spectrum", "4,3", "--lr", value])
    assert exc.value.code == 2 and "argument --lr: " in capsys.readouterr().err


@pytest.mark.parametrize("value, field", [("step_decay:0.1,0.5,10.5", "step_decay's every"),
                                          ("warmup:0.1,1.5", "warmup's steps")])  # fmt: skip
def test_a_schedule_s_integer_argument_is_not_truncated(value, field, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--spectrum", "4,3", "--lr", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert f"argument --lr: {field} must be an integer, got {value.rpartition(',')[2]}" in err


def test_a_config_takes_a_schedule_as_the_summary_writes_it(monkeypatch, capsys):
    assert main(["run", "--spectrum", "4,3", "--lr", "step_decay:0.1,0.5,10", "--max-iter", "3", "-q"]) == 0
    written = _json("fastmf-run.json")["options"]["lr"]
    assert written == {"kind": "step_decay", "lr": 0.1, "factor": 0.5, "every": 10}
    with open("s.toml", "w") as f:
        f.write("[lr]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in written.items()))
    calls = _capture(monkeypatch, "run")
    with pytest.raises(_Called):
        main(["run", "--spectrum", "4,3", "--config", "s.toml"])
    assert calls[0]["options"].lr == fastmf.schedules.StepDecay(0.1, 0.5, 10)
    with open("bad.toml", "w") as f:
        f.write('[lr]\nkind = "warmup"\nlr = 0.1\nt0 = 3\n')
    assert main(["run", "--spectrum", "4,3", "--config", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.toml: lr a warmup schedule takes lr, steps (lr required), got lr, t0" in err


def test_lr_help_gives_both_defaults_and_every_schedule():
    text = _actions("run")["--lr"].help
    lr = fastmf.options.DEFAULTS.lr
    assert f"default {lr:g} / sigma_1, or {lr:g} with --precondition" in text
    assert all(name in text for name in ("constant", "inverse_sqrt", "step_decay", "warmup", "NAME:ARGS"))


def test_the_variants_reach_the_run_and_round_trip_through_the_summary():
    argv = ["--balance", "0.5", "--update", "alternating", "--precondition", "0.1", "--noise", "1e-6",
            "--init", "balanced", "--lr", "0.05", "--max-iter", "3", "--seed", "2", "-q"]  # fmt: skip
    assert main(["run", "--spectrum", "4,3", *argv]) == 0
    options = fastmf.load("fastmf-run.npz").options
    assert (options.balance, options.update, options.precondition, options.noise, options.init) == (
        0.5, "alternating", 0.1, 1e-6, "balanced")  # fmt: skip
    assert fastmf.checkpoint.options_from_json(Options, _json("fastmf-run.json")["options"]) == options
