"""A table on disk that grows by appending rows and survives being killed mid-write.

`fastmf.sweep` writes one row per run as runs finish, so that a sweep killed at any
moment loses only the runs in flight. Two formats, by the file name:

* ``.parquet`` (needs pyarrow): a folder of Parquet files, one per append, each written
  under a hidden name and renamed into place, so a reader never sees half a file
  (``pandas.read_parquet(folder)`` and ``pyarrow.parquet.read_table(folder)`` read them
  all as one table);
* ``.csv``: one file, a header then one line per row; each append is one write followed
  by an fsync, and a line left incomplete by a kill is dropped when the table is opened
  again.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import uuid

import numpy as np

# column types: "int" (int64), "float" (float64, NaN allowed), "str"
_NUMPY = {"int": np.int64, "float": np.float64, "str": str}


def open_table(path, columns: dict[str, str], *, resume: bool):
    """The table at `path` with these columns (name -> type), created if it does not exist.

    An existing table is an error unless `resume` (then it must have exactly these columns).
    Nothing is written before the first `append`.
    """
    path = os.fspath(path)
    kind = os.path.splitext(path.rstrip("/" + os.sep))[1].lower()
    if kind not in (".parquet", ".csv"):
        raise ValueError(f"output must end in .parquet (needs pyarrow) or .csv, got {path!r}")
    if os.path.exists(path) and not resume:
        raise FileExistsError(f"{path} already exists: resume the sweep that wrote it, or choose another output")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    return (ParquetTable if kind == ".parquet" else CsvTable)(path, columns)


class CsvTable:
    """One CSV file: a header line, then one line per row (floats written exactly, by repr)."""

    def __init__(self, path: str, columns: dict[str, str]):
        self.path, self.columns = path, columns
        self.header = ",".join(columns) + "\n"
        if not os.path.exists(path):
            return
        with open(path, "rb+") as f:
            first = f.readline()
            if self.header.encode().startswith(first) and not first.endswith(b"\n"):
                f.truncate(0)  # the header itself was cut short
                return
            if first != self.header.encode():
                raise ValueError(f"{path} is not a table with the columns {', '.join(columns)}; choose another output")
            end = f.seek(0, os.SEEK_END)
            while end > 0:  # drop a last line cut short by a kill
                f.seek(end - 1)
                if f.read(1) == b"\n":
                    break
                end -= 1
            f.truncate(end)

    def read(self) -> dict[str, np.ndarray]:
        rows = []
        if os.path.exists(self.path):
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))[1:]
        values = list(zip(*rows, strict=True)) if rows else [()] * len(self.columns)
        return {
            name: np.array([_parse(v, kind) for v in column], dtype=_NUMPY[kind])
            for (name, kind), column in zip(self.columns.items(), values, strict=True)
        }

    def append(self, rows: dict[str, list]) -> None:
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        text = io.StringIO(self.header if new else "")
        text.seek(0, io.SEEK_END)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerows(zip(*(_format(rows[name], kind) for name, kind in self.columns.items()), strict=True))
        self._write(text.getvalue(), "a")

    def _write(self, text: str, mode: str) -> None:
        with open(self.path, mode) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


class ParquetTable:
    """A folder of Parquet files, one per append, all with the same schema."""

    def __init__(self, path: str, columns: dict[str, str]):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                "a .parquet output needs pyarrow: pip install pyarrow (or the fastmf-gd[parquet] extra), "
                "or write a .csv table"
            ) from None
        self.path, self.columns, self._pa, self._pq = path, columns, pa, pq
        types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
        self.schema = pa.schema([(name, types[kind]) for name, kind in columns.items()])
        if not os.path.exists(path):
            return
        if not os.path.isdir(path):
            raise ValueError(f"{path} is a file, not a Parquet table folder; choose another output")
        for leftover in glob.glob(os.path.join(path, ".*.tmp")):  # a part cut short by a kill
            os.remove(leftover)
        parts = self._parts()
        if parts and pq.read_schema(parts[0]).remove_metadata() != self.schema:
            raise ValueError(f"{path} is not a table with the columns {', '.join(columns)}; choose another output")

    def read(self) -> dict[str, np.ndarray]:
        if not self._parts():
            return {name: np.array([], dtype=_NUMPY[kind]) for name, kind in self.columns.items()}
        table = self._pq.read_table(self.path, schema=self.schema)
        return {
            name: np.array(table.column(name).to_pylist(), dtype=_NUMPY[kind]) for name, kind in self.columns.items()
        }

    def append(self, rows: dict[str, list]) -> None:
        os.makedirs(self.path, exist_ok=True)
        part = f"part-{uuid.uuid4().hex}.parquet"
        temporary = os.path.join(self.path, f".{part}.tmp")
        table = self._pa.table({name: rows[name] for name in self.columns}, schema=self.schema)
        with open(temporary, "wb") as f:
            self._pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, os.path.join(self.path, part))

    def _parts(self) -> list[str]:
        return glob.glob(os.path.join(self.path, "part-*.parquet"))


def _format(values, kind) -> list[str]:
    return [repr(float(v)) if kind == "float" else str(v) for v in values]


def _parse(text: str, kind: str):
    return int(text) if kind == "int" else float(text) if kind == "float" else text
