"""fastmf.table: rows round-trip exactly, a table cut short by a kill opens cleanly, and reading
never changes a file."""

import os
import sys

import numpy as np
import pytest

from fastmf.table import open_table

COLUMNS = {"seed": "int", "status": "str", "loss": "float"}
ROWS = {"seed": [3, 1], "status": ["converged", "max_iter"], "loss": [1 / 3, float("nan")]}
MORE = {"seed": [2**62], "status": ["diverged"], "loss": [5e-324]}

SUFFIXES = [".csv", pytest.param(".parquet", marks=pytest.mark.skipif(
    not __import__("importlib").util.find_spec("pyarrow"), reason="pyarrow is not installed"))]  # fmt: skip


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_rows_round_trip_exactly(suffix, tmp_path):
    path = tmp_path / f"t{suffix}"
    table = open_table(path, COLUMNS, resume=False)
    assert not os.path.exists(path)  # nothing is written before the first rows
    assert all(len(column) == 0 for column in table.read().values())
    table.append(ROWS)
    table.append(MORE)
    got = open_table(path, COLUMNS, resume=True).read()
    order = np.argsort(got["seed"])  # Parquet parts come back in any order
    np.testing.assert_array_equal(got["seed"][order], [1, 3, 2**62])
    np.testing.assert_array_equal(got["status"][order], ["max_iter", "converged", "diverged"])
    np.testing.assert_array_equal(got["loss"][order], [float("nan"), 1 / 3, 5e-324])
    assert got["seed"].dtype == np.int64 and got["loss"].dtype == np.float64


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_text_with_commas_and_colons_and_empty_text_round_trip(suffix, tmp_path):
    columns = {"seed": "int", "schedule": "str", "lr": "float"}
    path = tmp_path / f"t{suffix}"
    open_table(path, columns, resume=False).append(
        {"seed": [0, 1], "schedule": ["step_decay:0.1,0.5,10", ""], "lr": [float("nan"), 1 / 3]}
    )  # commas and a colon: CSV quotes them
    got = open_table(path, columns, resume=True).read()
    order = np.argsort(got["seed"])
    assert got["schedule"][order].tolist() == ["step_decay:0.1,0.5,10", ""]
    assert got["lr"].dtype == np.float64 and np.isnan(got["lr"][order][0]) and got["lr"][order][1] == 1 / 3


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_table_lacking_columns_is_refused_naming_them(suffix, tmp_path):
    path = tmp_path / f"t{suffix}"
    older = {"seed": "int", "loss": "float"}  # COLUMNS less status, as an older version wrote them
    open_table(path, older, resume=False).append({"seed": ROWS["seed"], "loss": ROWS["loss"]})
    before = sorted(os.listdir(path)) if suffix == ".parquet" else path.read_bytes()
    refusal = r"t\.\w+ lacks the column\(s\) status that this version of fastmf writes: resume it with the version"
    with pytest.raises(ValueError, match=refusal + " that wrote it, or choose another output$"):
        open_table(path, COLUMNS, resume=True)
    assert before == (sorted(os.listdir(path)) if suffix == ".parquet" else path.read_bytes())


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_an_existing_table_needs_resume_and_the_same_columns(suffix, tmp_path):
    path = tmp_path / f"t{suffix}"
    open_table(path, COLUMNS, resume=False).append(ROWS)
    with pytest.raises(FileExistsError, match="already exists"):
        open_table(path, COLUMNS, resume=False)
    with pytest.raises(ValueError, match="is not a fastmf sweep table .*; choose another output"):
        open_table(path, {"seed": "int", "status": "str"}, resume=True)


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _seeds(path):
    return open_table(path, COLUMNS, resume=True).read()["seed"].tolist()


def test_csv_a_line_cut_short_by_a_kill_is_ignored_and_removed_at_the_next_append(tmp_path):
    path = tmp_path / "t.csv"
    open_table(path, COLUMNS, resume=False).append(ROWS)
    with open(path, "a") as f:
        f.write("7,conv")  # a kill in the middle of an append
    before = _bytes(path)
    table = open_table(path, COLUMNS, resume=True)
    assert table.read()["seed"].tolist() == [3, 1]
    assert _bytes(path) == before  # opening and reading write nothing
    table.append(MORE)
    assert _seeds(path) == [3, 1, 2**62]
    assert _bytes(path) == before[: -len("7,conv")] + b"%d,diverged,5e-324\n" % 2**62


def test_csv_a_last_row_without_its_newline_is_a_row_and_stays_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"seed,status,loss\n3,converged,0.25\n1,max_iter,nan")  # as an editor may save it
    before = _bytes(path)
    table = open_table(path, COLUMNS, resume=True)
    assert table.read()["seed"].tolist() == [3, 1]
    assert _seeds(path) == [3, 1] and _bytes(path) == before
    table.append(MORE)
    assert _seeds(path) == [3, 1, 2**62]
    assert _bytes(path).startswith(before + b"\n")


def test_csv_with_its_header_cut_short_starts_again(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("seed,sta")
    table = open_table(path, COLUMNS, resume=True)
    assert _seeds(path) == [] and path.read_text() == "seed,sta"
    table.append(ROWS)
    assert path.read_text().splitlines()[0] == "seed,status,loss"
    np.testing.assert_array_equal(table.read()["seed"], [3, 1])


@pytest.mark.parametrize(
    "text",
    ["name,age\nada,36\n", "seed,loss,status\n", "seed,status,loss,extra\n", "\x00\x01binary"],
    ids=["foreign", "reordered", "more-columns", "binary"],
)
def test_csv_that_is_not_a_fastmf_table_is_refused_and_left_alone(text, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"t.csv is not a fastmf sweep table \(its header is .*\); choose another"):
        open_table(path, COLUMNS, resume=True)
    assert path.read_text() == text


def test_csv_a_corrupt_row_in_the_middle_names_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("seed,status,loss\n3,converged,0.25\nthree,converged,0.5\n1,max_iter,nan\n")
    with pytest.raises(ValueError, match="t.csv line 3 is not a row of this table"):
        open_table(path, COLUMNS, resume=True).read()


def test_parquet_ignores_a_part_cut_short_and_removes_it_only_when_writing(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    open_table(path, COLUMNS, resume=False).append(ROWS)
    (path / ".part-dead.parquet.tmp").write_bytes(b"PAR1 half a file")
    table = open_table(path, COLUMNS, resume=True)
    assert sorted(table.read()["seed"]) == [1, 3]
    assert ".part-dead.parquet.tmp" in os.listdir(path)  # reading leaves the folder as it is
    table.append(MORE)
    assert not [name for name in os.listdir(path) if name.endswith(".tmp")]
    assert sorted(table.read()["seed"]) == [1, 3, 2**62]


def test_parquet_folder_that_is_not_a_fastmf_table_is_refused_and_left_alone(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    path.mkdir()
    pq.write_table(pa.table({"name": ["ada"]}), path / "part-0.parquet")
    with pytest.raises(ValueError, match=r"t.parquet is not a fastmf sweep table \(its columns are name\)"):
        open_table(path, COLUMNS, resume=True)
    other = tmp_path / "u.parquet"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"u.parquet is not a fastmf sweep table \(it holds 'notes.txt'\)"):
        open_table(other, COLUMNS, resume=True)
    assert sorted(os.listdir(path)) == ["part-0.parquet"] and os.listdir(other) == ["notes.txt"]


def test_bad_outputs(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="must end in .parquet .* or .csv"):
        open_table(tmp_path / "t.xlsx", COLUMNS, resume=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_table(tmp_path / "missing" / "t.csv", COLUMNS, resume=False)
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(ValueError, match="is a folder, not a CSV table"):
        open_table(tmp_path / "d.csv", COLUMNS, resume=True)
    (tmp_path / "f.parquet").write_text("not a folder")
    if "pyarrow" in sys.modules or __import__("importlib").util.find_spec("pyarrow"):
        with pytest.raises(ValueError, match="is a file, not a Parquet table folder"):
            open_table(tmp_path / "f.parquet", COLUMNS, resume=True)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install pyarrow .*or write a .csv table"):
        open_table(tmp_path / "new.parquet", COLUMNS, resume=False)
