"""The claims framework (`fastmf.claims`, ``fastmf reproduce``) and the claims of stage one's
lemmas (`fastmf.claims.whp`), checked against the lemmas' own formulas."""

import csv
import os
import signal
from signal import SIGINT

import numpy as np
import pytest

import fastmf
from fastmf import claims
from fastmf.claims import whp
from fastmf.cli import main


def test_every_claim_is_named_sourced_and_stated():
    found = claims.claims()
    names = [c.name for c in found]
    assert len(names) == len(set(names)) and "lemmas" in names
    for c in found:
        assert c.name.isascii() and " " not in c.name
        assert c.source and c.statement and callable(c.run)


def test_unknown_claim_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="no claim named 'nope'.*lemmas.*--list"):
        fastmf.reproduce("nope", output=tmp_path)


def test_csv_columns_must_have_one_length(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        claims.write_csv(tmp_path / "t.csv", {"a": [1, 2], "b": [1]})
    claims.write_csv(tmp_path / "t.csv", {"a": [1, 2], "b": [0.1, np.nan]})
    with open(tmp_path / "t.csv") as f:
        rows = list(csv.reader(f))
    assert rows == [["a", "b"], ["1", "0.1"], ["2", "nan"]]


def test_cli_lists_every_claim(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(c.name in out and c.source in out for c in claims.claims())


def test_cli_needs_a_name_or_all(capsys):
    assert main(["reproduce"]) == 2
    assert "give one claim's NAME or --all" in capsys.readouterr().err


def test_lemmas_along_real_trajectories(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["reproduce", "lemmas", "--quick", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lemmas: agrees: measured") and "lemmas.csv" in out and "lemmas.png" in out
    with open(tmp_path / "lemmas.csv") as f:
        header = next(csv.reader(f))
    assert {"step", "s", "s_bound", "s_map", "s_next", "p_bound", "p_next"} <= set(header)
    assert (tmp_path / "lemmas.png").stat().st_size > 10_000


def test_lemma_verdict_against_the_lemmas_formulas(tmp_path):
    verdict = fastmf.reproduce("lemmas", quick=True, output=tmp_path, figure=False)
    assert verdict.png is None and verdict.holds
    t = verdict.outcome.table
    s, lr, beta = np.array([3.0, 2.0, 1.5, 1.0]), 0.8 * 0.5 / 24, 0.5
    slack = (8 + 6 * beta) / (1 - beta) * 27 * lr**2
    on2, on3 = t["lemma_3_2"].astype(bool), t["lemma_3_3"].astype(bool)
    assert on2.sum() > 500 and on3.sum() > 500
    # the bounds as the lemmas print them, written out here
    np.testing.assert_allclose(t["s_bound"][on2], (1 + lr * (s[-1] - t["s"][on2])) ** 2 * t["s"][on2] - slack)
    p = t["p"][on3]
    np.testing.assert_allclose(t["p_bound"][on3], np.where(p < 0, (1 - lr * s[-1]) ** 2 * p - slack, 0.0))
    # the lemmas' conclusions, on the maps of real states
    assert np.all(t["s_map"][on2] >= t["s_bound"][on2] - 1e-12)
    assert np.all(t["p_map"][on3] >= t["p_bound"][on3] - 1e-12)
    assert verdict.values["steps_3_2"] == on2.sum() and verdict.values["worst_map_3_2"] >= 0


def test_trajectory_is_one_run_step_by_step():
    problem = fastmf.Problem.from_spectrum(np.array([2.0, 1.0]), 9, 7)
    states = whp.trajectory(problem, 2, 0.05, 1e-2, 3, 25)
    run = fastmf.solve(problem, k=2, lr=0.05, max_iter=25, init_scale=1e-2, seed=3)
    assert len(states) == 26
    np.testing.assert_array_equal(states[-1][0], run.Up)
    np.testing.assert_array_equal(states[-1][1], run.Vp)


@pytest.fixture
def extra_claim():
    """Register claims for one test only."""
    added = []

    def register(name, run):
        claims.claim(name, "a test", "a statement")(run)
        added.append(name)

    yield register
    for name in added:
        del claims._REGISTRY[name]


def test_ctrl_c_stops_the_claim_and_writes_nothing(tmp_path, extra_claim):
    after = []

    def run(quick):
        problem = fastmf.Problem.from_spectrum(np.array([2.0, 1.0]), 50, 40)
        # a run catches Ctrl-C and returns what it has: the claim must not go on with it
        fastmf.solve(problem, k=2, lr=0.1, max_iter=10**8, seed=0, callback=lambda state: os.kill(os.getpid(), SIGINT))
        after.append(True)
        return claims.Outcome({"x": [1.0]}, "x", True)

    extra_claim("interrupted", run)
    with pytest.raises(KeyboardInterrupt, match="stopped by signal"):
        fastmf.reproduce("interrupted", output=tmp_path)
    assert after == [] and not (tmp_path / "interrupted.csv").exists()
    assert signal.getsignal(SIGINT) is signal.default_int_handler  # restored


def test_outputs_are_checked_before_the_experiment_runs(tmp_path, extra_claim):
    ran = []
    extra_claim("tiny", lambda quick: ran.append(1) or claims.Outcome({"x": [1.0]}, "x", True))
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="output must be a folder"):
        fastmf.reproduce("tiny", output=tmp_path / "file")
    (tmp_path / "tiny.png").mkdir()
    with pytest.raises(ValueError, match="is a folder, where reproduce writes a file"):
        fastmf.reproduce("tiny", output=tmp_path)
    assert ran == []


def test_a_stale_figure_is_removed(tmp_path, extra_claim):
    extra_claim("plain", lambda quick: claims.Outcome({"x": [1.0]}, "x", True, draw=lambda fig: None))
    (tmp_path / "plain.png").write_bytes(b"old")
    verdict = fastmf.reproduce("plain", output=tmp_path, figure=False)
    assert verdict.png is None and not (tmp_path / "plain.png").exists()


def test_table_columns_must_be_1d(tmp_path):
    with pytest.raises(ValueError, match="must be 1-D; not so: b"):
        claims.write_csv(tmp_path / "t.csv", {"a": [1, 2], "b": [[1, 2]]})


def test_cli_exit_code_says_whether_every_verdict_agrees(tmp_path, extra_claim, capsys):
    extra_claim("holds", lambda quick: claims.Outcome({"x": [1.0]}, "1", True))
    extra_claim("differs", lambda quick: claims.Outcome({"x": [2.0]}, "2", False))
    assert main(["reproduce", "holds", "-o", str(tmp_path)]) == 0
    assert main(["reproduce", "differs", "-o", str(tmp_path)]) == 1
    assert "differs: DIFFERS: measured 2; a test: a statement" in capsys.readouterr().out


def test_whp_invariants_from_its_table(tmp_path):
    verdict = fastmf.reproduce("whp-invariants", quick=True, output=tmp_path, figure=False)
    t, s = verdict.outcome.table, np.geomspace(2.0, 1.0, 5)
    d, m, eps = 5, 10**4, None
    # the section 3.1 constant of seed 3's start, from its factors in plain NumPy
    run = fastmf.solve(fastmf.Problem.from_spectrum(s, m, m), k=d, lr=0.01, max_iter=0, seed=3)
    eps = run.init_scale
    A, B = (run.Up + run.Vp) / 2, (run.Up - run.Vp) / 2
    sv = np.linalg.svd(A, compute_uv=False)
    ratios = [eps / (np.sqrt(d) * sv[-1]), sv[0] / (eps * np.sqrt(d)), np.linalg.norm(B) / (d * eps)]
    ratios += [np.linalg.norm(L, 2) / (eps * np.sqrt(m - d)) for L in (run.L_U, run.L_V)]
    assert t["lr0.02_c0"][3] == pytest.approx(max(ratios), rel=1e-9)
    # the verdict's numbers, recomputed from the table with the paper's bounds written out
    c = np.quantile(t["lr0.02_c0"], 0.99)
    assert verdict.values["c"] == pytest.approx(c)
    for lr in (0.02, 0.1):
        broken = (
            (t[f"lr{lr}_max_lambda_AAt_2S"] > 0)
            | (t[f"lr{lr}_c_B"] > 2 * c)
            | (t[f"lr{lr}_c_JK"] > c * (1 + 1e-12))
            | ~(t[f"lr{lr}_min_sigma_A"] >= np.sqrt(s[-1] / 2))
            | ~(t[f"lr{lr}_min_sigma_UV"] >= np.sqrt(s[-1] / 2))
            | ~(t[f"lr{lr}_max_Delta_ratio"] <= 1)
        )
        assert broken.mean() <= 0.02  # w.h.p.: the 1% of starts outside the event, and 1% more
    assert verdict.holds and verdict.values["worst_failure_rate"] <= 0.02
