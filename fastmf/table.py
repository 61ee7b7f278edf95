"""A table on disk that grows by appending rows and survives being killed mid-write.

`fastmf.sweep` writes one row per run as runs finish, so that a sweep killed at any
moment loses only the runs in flight. Two formats, by the file name:

* ``.parquet`` (needs pyarrow): a folder of Parquet files, one per append, each written
  under a hidden name and renamed into place, so a reader never sees half a file
  (``pandas.read_parquet(folder)`` and ``pyarrow.parquet.read_table(folder)`` read them
  all as one table);
* ``.csv``: one file, a header then one line per row; each append is one write followed
  by an fsync. A last line left incomplete by a kill is ignored when reading, and removed
  (or, if it is a whole row that only lacks its newline, completed) at the next append.

Opening and reading a table never write to it; a file or folder that is not a fastmf
table is refused, untouched.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import io
import os
import uuid

import numpy as np

# column types: "int" (int64), "float" (float64, NaN allowed), "str", "bool" (written True or False)
_NUMPY = {"int": np.int64, "float": np.float64, "str": str, "bool": np.bool_}


def open_table(path, columns: dict[str, str], *, resume: bool):
    """The table at `path` with these columns (name -> type), created if it does not exist.

    An existing table is an error unless `resume` (then it must have exactly these columns).
    Nothing is written before the first `append`.
    """
    path = os.fspath(path)
    kind = os.path.splitext(path.rstrip("/" + os.sep))[1].lower()
    if kind not in (".parquet", ".csv"):
        raise ValueError(f"output must end in .parquet (needs pyarrow) or .csv, got {path!r}")
    if kind == ".csv" and os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a CSV table; choose another output")
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
        with open(path, "rb") as f:
            first = f.readline(len(self.header) + 1)
        if not self.header.encode().startswith(first):  # a prefix: the header cut short by a kill, or empty
            names = first.decode("utf-8", errors="replace").rstrip("\n").split(",")
            raise _refused(path, names, columns, f"its header is {_shown(first)}")

    def read(self) -> dict[str, np.ndarray]:
        if not os.path.exists(self.path):
            return _columns(self.columns, [])
        with open(self.path, newline="", encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.split("\n")  # fastmf writes no quoted newlines: its strings are plain words
        last = lines.pop() if len(lines) > 1 else ""  # "" when the file ends with its newline
        rows = []
        for number, line in enumerate(lines[1:], start=2):
            row = self._row(line)
            if row is None:
                raise ValueError(
                    f"{self.path} line {number} is not a row of this table: {_shown(line)}; fix or delete it"
                )
            rows.append(row)
        if (row := self._row(last)) is not None:  # a whole row without its newline; anything else: cut short
            rows.append(row)
        return _columns(self.columns, rows)

    def append(self, rows: dict[str, list]) -> None:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(
            zip(*(_format(rows[name], kind) for name, kind in self.columns.items()), strict=True)
        )
        with open(self.path, "r+b" if os.path.exists(self.path) else "wb") as f:
            start, last = _last_line(f)
            if last and self._complete(last, start):
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:  # drop a line cut short by a kill (at the top: the header itself)
                f.truncate(start)
                f.seek(start)
            f.write(((self.header if f.tell() == 0 else "") + text.getvalue()).encode())
            f.flush()
            os.fsync(f.fileno())

    def _complete(self, line: bytes, start: int) -> bool:
        """Whether `line` (at byte `start`, without its newline) is a whole header or row."""
        if start == 0:
            return line + b"\n" == self.header.encode()
        return self._row(line.decode("utf-8", errors="replace")) is not None

    def _row(self, line: str) -> tuple | None:
        """The values of one data line, or None if it is not a whole row of this table."""
        try:
            fields = next(csv.reader([line]), [])
            if len(fields) == len(self.columns):
                return tuple(_parse(v, kind) for v, kind in zip(fields, self.columns.values(), strict=True))
        except (csv.Error, ValueError):
            pass
        return None


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
        types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
        self.schema = pa.schema([(name, types[kind]) for name, kind in columns.items()])
        if not os.path.exists(path):
            return
        if not os.path.isdir(path):
            raise ValueError(f"{path} is a file, not a Parquet table folder; choose another output")
        # hidden names (".", "_": temporary parts) are skipped by readers; anything else must be a part
        foreign = sorted(n for n in os.listdir(path) if n[0] not in "._" and not fnmatch.fnmatch(n, "part-*.parquet"))
        if foreign:
            raise ValueError(
                f"{path} is not a fastmf sweep table (it holds {_shown(foreign[0])}); choose another output"
            )
        parts = self._parts()
        schema = pq.read_schema(parts[0]).remove_metadata() if parts else self.schema
        if schema != self.schema:
            raise _refused(path, schema.names, columns, f"its columns are {', '.join(schema.names)}")

    def read(self) -> dict[str, np.ndarray]:
        if not self._parts():
            return _columns(self.columns, [])
        table = self._pq.read_table(self.path, schema=self.schema)
        return {
            name: np.array(table.column(name).to_pylist(), dtype=_NUMPY[kind]) for name, kind in self.columns.items()
        }

    def append(self, rows: dict[str, list]) -> None:
        os.makedirs(self.path, exist_ok=True)
        for leftover in glob.glob(os.path.join(glob.escape(self.path), ".part-*.parquet.tmp")):  # cut short by a kill
            os.remove(leftover)
        part = f"part-{uuid.uuid4().hex}.parquet"
        temporary = os.path.join(self.path, f".{part}.tmp")
        table = self._pa.table({name: rows[name] for name in self.columns}, schema=self.schema)
        with open(temporary, "wb") as f:
            self._pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, os.path.join(self.path, part))

    def _parts(self) -> list[str]:
        return sorted(glob.glob(os.path.join(glob.escape(self.path), "part-*.parquet")))


def _columns(columns: dict[str, str], rows: list[tuple]) -> dict[str, np.ndarray]:
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return {
        name: np.array(column, dtype=_NUMPY[kind]) for (name, kind), column in zip(columns.items(), values, strict=True)
    }


def _refused(path: str, names: list[str], columns: dict[str, str], found: str) -> ValueError:
    """The error for an existing table with the columns `names`: one with some of `columns` and
    no other (an older fastmf's) is told what it lacks, anything else is not a fastmf table."""
    if set(names) < set(columns):
        missing = ", ".join(name for name in columns if name not in names)
        return ValueError(
            f"{path} lacks the column(s) {missing} that this version of fastmf writes: resume it with the version "
            "that wrote it, or choose another output"
        )
    return ValueError(f"{path} is not a fastmf sweep table ({found}); choose another output")


def _last_line(f) -> tuple[int, bytes]:
    """(where it starts, its bytes) for the last line of the open file `f` if it lacks its
    newline; (the file's size, b"") if the file is empty or ends with a newline."""
    end = f.seek(0, os.SEEK_END)
    start, tail = end, b""
    while start > 0:
        block = min(start, 1 << 16)
        start -= block
        f.seek(start)
        tail = f.read(block) + tail
        newline = tail.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1, tail[newline + 1 :]
    return 0, tail


def _shown(text) -> str:
    """Text from a file, quoted on one line and cut to a readable length."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.rstrip("\n")
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _format(values, kind) -> list[str]:
    return [repr(float(v)) if kind == "float" else str(bool(v)) if kind == "bool" else str(v) for v in values]


def _parse(text: str, kind: str):
    if kind == "bool":
        if text not in ("True", "False"):
            raise ValueError(f"not a bool: {text!r}")
        return text == "True"
    return int(text) if kind == "int" else float(text) if kind == "float" else text
