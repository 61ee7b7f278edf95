"""The on-disk format of results and checkpoints: one .npz file, written atomically.

A file holds the problem's basis (s, Phi, Psi or the coordinate indices; not Sigma
itself), the state in split form, the recorded history and, for a GD run, the kernel's
bookkeeping (step, stage flags, the tracked eigenvectors), so that `fastmf.resume`
continues bit for bit. Everything that is not an array is one JSON string ("meta"),
so files load with ``allow_pickle=False``.

Writes go to a temporary file in the same folder, are flushed to disk, and then renamed
over the target (``os.replace``, atomic on POSIX and Windows): a run killed mid-write
leaves the previous file whole, and its temporary file is removed by the next write to
the same path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import numbers
import os
import tempfile
import zipfile
import zlib

import numpy as np

from . import schedules
from .init import Factor
from .problem import CoordinateBasis, DenseBasis, Problem

FORMAT = "fastmf-result"
VERSION = 2


class CheckpointError(ValueError):
    """A file that is not a readable fastmf result or checkpoint."""


def write(path, arrays: dict, meta: dict) -> None:
    """Save `arrays` and the JSON-able `meta` to `path` atomically, first removing the
    temporary files that writes to `path` killed midway left behind."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.tmp")):
        if "." not in os.path.basename(stale)[len(prefix) : -len(".tmp")]:  # with a dot: a temporary of name.x
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps({"format": FORMAT, "version": VERSION} | meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read(path) -> tuple[dict, dict]:
    """(arrays, meta) from a file written by `write`; CheckpointError if it is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such result or checkpoint file: {path}")
    try:
        with open(path, "rb") as f:  # our own handle: np.load leaks its own when the zip is bad
            magic = f.read(6)
            if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
                raise OSError("not an .npz (zip) file")
            f.seek(0)
            data = np.load(f, allow_pickle=False)
            arrays = {name: data[name] for name in data.files} if isinstance(data, np.lib.npyio.NpzFile) else None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(
            f"{path} is not a readable fastmf result or checkpoint (corrupt or truncated?): {exc}"
        ) from None
    if arrays is None:
        raise CheckpointError(f"{path} holds a single array (.npy), not a fastmf result (.npz)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is an .npz file but not a fastmf result or checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} was written in format version {meta.get('version')}; this fastmf reads version {VERSION}"
        )
    return arrays, meta


def problem_fields(problem: Problem) -> tuple[dict, dict]:
    """Arrays and meta describing a problem's basis."""
    arrays = {"s": problem.s}
    meta = {"kind": problem.kind, "shape": list(problem.shape), "dtype": problem.dtype.name,
            "basis_residual": problem.basis_residual}  # fmt: skip
    for side, basis in (("left", problem.left), ("right", problem.right)):
        if isinstance(basis, DenseBasis):
            arrays[f"{side}.Phi"] = basis.Phi
        else:
            arrays[f"{side}.index"] = basis.index
    return arrays, {"problem": meta}


def problem_from(arrays: dict, meta: dict) -> Problem:
    """The Problem saved by `problem_fields` (Sigma itself is not saved: `problem.Sigma` is None)."""
    info = meta["problem"]
    m, n = info["shape"]
    bases = []
    for side, dim in (("left", m), ("right", n)):
        if f"{side}.Phi" in arrays:
            bases.append(DenseBasis(arrays[f"{side}.Phi"]))
        else:
            bases.append(CoordinateBasis(arrays[f"{side}.index"], dim))
    return Problem.from_basis(info["kind"], (m, n), np.dtype(info["dtype"]), arrays["s"], *bases,
                              info["basis_residual"])  # fmt: skip


def factor_fields(side: str, factor: Factor) -> tuple[dict, dict]:
    """Arrays and meta of one factor in split form (W: array, None or a SeedSequence)."""
    arrays = {f"{side}.principal": factor.principal, f"{side}.L": factor.L}
    W = factor.W
    if isinstance(W, np.ndarray):
        arrays[f"{side}.W"] = W
        return arrays, {f"{side}.W": "array"}
    return arrays, {f"{side}.W": seed_to_json(W)}


def factor_from(side: str, arrays: dict, meta: dict) -> Factor:
    W = meta[f"{side}.W"]
    W = arrays[f"{side}.W"] if W == "array" else seed_from_json(W)
    return Factor(arrays[f"{side}.principal"], arrays[f"{side}.L"], W)


def seed_to_json(seed):
    """An int, a list of ints, None or a SeedSequence, as JSON (Python ints are exact in JSON)."""
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy if isinstance(seed.entropy, int) else [int(e) for e in seed.entropy]
        return {"entropy": entropy, "spawn_key": [int(k) for k in seed.spawn_key], "pool_size": seed.pool_size}
    if seed is None or isinstance(seed, numbers.Integral):
        return None if seed is None else int(seed)
    return [int(e) for e in np.asarray(seed).ravel()]


def seed_from_json(seed):
    if isinstance(seed, dict):
        return np.random.SeedSequence(seed["entropy"], spawn_key=seed["spawn_key"], pool_size=seed["pool_size"])
    return seed


def options_to_json(options) -> dict | None:
    """A resolved `Options` or `FlowOptions` as JSON (the seed as `seed_to_json` writes it)."""
    if options is None:
        return None
    extra = {"lr": schedules.to_json(options.lr)} if hasattr(options, "lr") else {}
    return dataclasses.asdict(options) | {"seed": seed_to_json(options.seed)} | extra


def options_from_json(kind, saved: dict | None):
    """The `kind` (Options or FlowOptions) saved by `options_to_json`."""
    if saved is None:
        return None
    extra = {"lr": schedules.from_json(saved["lr"])} if "lr" in saved else {}
    return kind(**(saved | {"seed": seed_from_json(saved["seed"])} | extra))


def fingerprint(S: np.ndarray) -> dict:
    """What identifies a dense Sigma that a file does not hold (a direct-path run's): its
    shape, dtype and a CRC-32 of its bytes, checked by `fastmf.resume`."""
    S = np.ascontiguousarray(S)
    return {"shape": list(S.shape), "dtype": S.dtype.name, "crc32": zlib.crc32(memoryview(S).cast("B"))}
