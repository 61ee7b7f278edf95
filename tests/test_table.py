"""fastmf.table: rows round-trip exactly, and a table cut short by a kill opens cleanly."""

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
def test_an_existing_table_needs_resume_and_the_same_columns(suffix, tmp_path):
    path = tmp_path / f"t{suffix}"
    open_table(path, COLUMNS, resume=False).append(ROWS)
    with pytest.raises(FileExistsError, match="already exists"):
        open_table(path, COLUMNS, resume=False)
    with pytest.raises(ValueError, match="not a table with the columns seed, status"):
        open_table(path, {"seed": "int", "status": "str"}, resume=True)


def test_csv_drops_a_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "t.csv"
    open_table(path, COLUMNS, resume=False).append(ROWS)
    with open(path, "a") as f:
        f.write("7,conv")  # a kill in the middle of an append
    table = open_table(path, COLUMNS, resume=True)
    np.testing.assert_array_equal(table.read()["seed"], [3, 1])
    table.append(MORE)
    np.testing.assert_array_equal(open_table(path, COLUMNS, resume=True).read()["seed"], [3, 1, 2**62])


def test_csv_with_its_header_cut_short_starts_again(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("seed,sta")
    table = open_table(path, COLUMNS, resume=True)
    table.append(ROWS)
    assert path.read_text().splitlines()[0] == "seed,status,loss"
    np.testing.assert_array_equal(table.read()["seed"], [3, 1])


def test_parquet_ignores_and_removes_a_part_cut_short(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    open_table(path, COLUMNS, resume=False).append(ROWS)
    (path / ".part-dead.parquet.tmp").write_bytes(b"PAR1 half a file")
    table = open_table(path, COLUMNS, resume=True)
    assert os.listdir(path) == [name for name in os.listdir(path) if not name.endswith(".tmp")]
    assert sorted(table.read()["seed"]) == [1, 3]


def test_bad_outputs(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="must end in .parquet .* or .csv"):
        open_table(tmp_path / "t.xlsx", COLUMNS, resume=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_table(tmp_path / "missing" / "t.csv", COLUMNS, resume=False)
    (tmp_path / "f.parquet").write_text("not a folder")
    if "pyarrow" in sys.modules or __import__("importlib").util.find_spec("pyarrow"):
        with pytest.raises(ValueError, match="is a file, not a Parquet table folder"):
            open_table(tmp_path / "f.parquet", COLUMNS, resume=True)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install pyarrow .*or write a .csv table"):
        open_table(tmp_path / "new.parquet", COLUMNS, resume=False)
