"""The kernels once more as plain Python (NUMBA_DISABLE_JIT=1), so coverage and tracebacks see them;
their on-disk cache; which of them have
a Python wrapper."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmf

SUBSET = (
    "test_matches_plain_gd and (30-50-3-3 or 12-12-12-12 or 9-14-3-8) or test_divergence or test_record_every"
    " or test_diagnostics_match_numpy_on_rebuilt_matrices and 20-35-2-4-compressed or test_stages_are_exact"
    " or test_each_run_is_solves_run"
)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="already running without the JIT")
def test_kernels_without_jit_match_plain_gd():
    here = Path(__file__).parent
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(here / "test_solver.py"),
            str(here / "test_direct.py"),
            str(here / "test_batch.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            SUBSET,
            # the divergence test overflows on purpose; interpreted numpy warns where compiled code does not
            "-W",
            "ignore:overflow encountered:RuntimeWarning",
            "-W",
            "ignore:invalid value encountered:RuntimeWarning",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "deselected" in proc.stdout


PROBE = """
import json, numpy as np, fastmf
from fastmf._kernels import cache_dir
res = fastmf.solve(fastmf.Problem.from_spectrum([2.0, 1.0, 0.5], 6, 5), 3, 0.2, 40, seed=0, record_every=40)
sv = np.linalg.svd((res.Up + res.Vp) / 2, compute_uv=False)
print(json.dumps(dict(file=fastmf.__file__, cache=cache_dir(), recorded=res.history["sigma_min_A"][-1],
                      smallest=sv[-1], largest=sv[0])))
"""


def _probe(site, code=PROBE, **env):
    """Run code with fastmf imported from site (and Numba's cache where it would be by default, unless env says)."""
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"} | env
    proc = subprocess.run([sys.executable, "-c", code], env=env | {"PYTHONPATH": str(site)}, cwd=site,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compiled code to cache")
def test_an_edit_of_one_kernel_file_recompiles_the_kernels_that_call_it(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(Path(fastmf.__file__).parent, site / "fastmf", ignore=shutil.ignore_patterns("__pycache__"))
    first = _probe(site)
    assert first["file"] == str(site / "fastmf" / "__init__.py")
    cache = Path(first["cache"])
    assert cache.parent == site / "fastmf" / "_kernels" / "__pycache__" and re.fullmatch("[0-9a-f]{16}", cache.name)
    assert any(cache.glob("blocks.run_blocks-*.nbi"))
    np.testing.assert_allclose(first["recorded"], first["smallest"], rtol=1e-9)
    # run_blocks (blocks.py) compiles the parts of a record (diagnostics.py) into its code: edit diagnostics.py alone
    with open(site / "fastmf" / "_kernels" / "diagnostics.py", "a") as f:
        f.write("\n_LARGEST = (True,) * len(_LARGEST)  # every tracked eigenvalue the largest\n")
    second = _probe(site)
    np.testing.assert_allclose(second["recorded"], second["largest"], rtol=1e-9)
    assert Path(second["cache"]).parent == cache.parent and not cache.exists()  # a new folder, the old one gone


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compiled code to cache")
def test_numba_cache_dir_holds_the_kernels_cache(tmp_path):
    code = "import json, numpy as np; from fastmf import _kernels as K; K.absmax(np.ones((2, 2))); "
    code += "print(json.dumps(K.cache_dir()))"
    where = Path(_probe(Path(fastmf.__file__).parent.parent, code, NUMBA_CACHE_DIR=str(tmp_path)))
    assert where.parent.parent == tmp_path and re.fullmatch("[0-9a-f]{16}", where.name)
    assert any(where.glob("direct.absmax-*.nbi"))


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1" or os.name != "posix", reason="compiled code, libc")
def test_a_kernel_numba_cannot_cache_warns_and_runs(tmp_path):
    # a ctypes call embeds its address in the code ("dynamic globals"): Numba warns that it cannot
    # cache the function, and the warning reads the cache locator's source file
    site = tmp_path / "site"
    shutil.copytree(Path(fastmf.__file__).parent, site / "fastmf", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "fastmf" / "_kernels" / "probe.py").write_text(
        "import ctypes\nfrom ._jit import kernel\n_labs = ctypes.CDLL(None).labs\n"
        "_labs.restype, _labs.argtypes = ctypes.c_long, [ctypes.c_long]\n\n\n"
        "@kernel\ndef probe(x):\n    return _labs(x)\n"
    )
    code = "import warnings; from fastmf._kernels.probe import probe\n"
    code += "with warnings.catch_warnings(record=True) as seen:\n    warnings.simplefilter('always')\n"
    code += "    print(probe(-5), any('Cannot cache' in str(w.message) for w in seen))"
    proc = subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONPATH": str(site)}, cwd=site,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["5", "True"]


def _view_sum(A, rows):
    total = 0.0
    for i in range(rows):
        B = A[i] if i % 2 else A[rows - 1 - i]  # a view: with Numba's runtime, a reference to count
        total += B[0]
    return total


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="compiled code")
def test_kernels_compile_without_numbas_reference_counting():
    from numba import njit

    from fastmf._kernels._jit import kernel

    A = np.arange(6.0).reshape(3, 2)
    plain, ours = njit(_view_sum), kernel(cache=False)(_view_sum)
    assert plain(A, 3) == ours(A, 3) == 6.0
    assert "@NRT_" in "".join(plain.inspect_llvm().values())  # (the test can see the runtime's calls)
    assert "@NRT_" not in "".join(ours.inspect_llvm().values())


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="compiled code")
def test_inner_kernels_have_no_python_wrapper_and_still_answer_from_python():
    from fastmf._kernels._jit import kernel

    A = np.arange(6.0).reshape(3, 2)
    inner, entry = kernel(cache=False)(_view_sum), kernel(cache=False, entry=True)(_view_sum)
    assert inner(A, 3) == entry(A, 3) == 6.0  # the inner one through a compiled trampoline
    assert inner(A, 2) == inner(A, rows=2) == inner(rows=2, A=A) == 4.0  # (the trampoline kept; keywords)
    assert "@_ZN7cpython" in "".join(entry.inspect_llvm().values())  # Numba's Python wrapper, by its name
    assert "@_ZN7cpython" not in "".join(inner.inspect_llvm().values())


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="compiled code")
def test_every_kernel_the_package_calls_from_python_is_an_entry(monkeypatch):
    # a kernel called from Python without a wrapper goes through a trampoline: correct, but a
    # compilation and a Python call more on each use; no path of the package may need one
    from fastmf._kernels import _jit

    def refuse(inner, n_args):
        raise AssertionError(f"{inner.py_func.__qualname__} is called from Python: make it kernel(entry=True)")

    monkeypatch.setattr(_jit, "_trampoline", refuse)
    p = fastmf.Problem.from_spectrum([2.0, 1.0, 0.5], 7, 6)
    fastmf.solve(p, 3, 0.2, 30, seed=0)
    fastmf.solve(np.diag([2.0, 1.0, 0.5, 0.1]), 2, 0.2, 10, seed=0, method="direct")
    fastmf.solve_batch(p, 3, 0.2, 30, seeds=range(3))
    fastmf.gradient_flow(p, 3, 2.0, seed=0)
