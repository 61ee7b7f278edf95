"""The BLAS backends (FASTMF_BLAS): each runs the kernels to the same numbers as plain GD."""

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastmf

HERE = Path(__file__).parent
SUBSET = "test_matches_plain_gd and (30-50-3-3 or 12-12-12-12 or 9-14-3-8 or 25-20-20-4) or test_float32"


def _has_mkl():
    return bool(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))


def _python(code, backend):
    env = dict(os.environ, FASTMF_BLAS=backend)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_default_backend_is_scipys_openblas():
    info = fastmf.blas_info()
    assert info["backend"] == "openblas"
    if info["library"] is not None and info["library"] != "openblas":  # threadpoolctl found it
        assert "openblas" in os.path.basename(info["library"]) and info["threads"] >= 1


@pytest.mark.parametrize(
    "backend",
    ["loops", pytest.param("mkl", marks=pytest.mark.skipif(not _has_mkl(), reason="mkl not installed"))],
)
def test_backend_matches_plain_gd(backend):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "test_solver.py"), str(HERE / "test_direct.py"), "-q",
         "-p", "no:cacheprovider", "-k", SUBSET],
        env=dict(os.environ, FASTMF_BLAS=backend), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
    ran = _python("import fastmf, json; print(json.dumps(fastmf.blas_info()))", backend)
    assert f'"backend": "{backend}"' in ran.stdout, ran.stderr
    if backend == "mkl":
        assert "mkl" in ran.stdout


def test_unknown_backend_names_the_setting():
    proc = _python("import fastmf", "atlas")
    assert proc.returncode != 0
    assert "FASTMF_BLAS must be one of openblas, mkl, loops, got 'atlas'" in proc.stderr


@pytest.mark.skipif(_has_mkl(), reason="mkl is installed here")
def test_mkl_missing_says_how_to_install():
    proc = _python("import fastmf", "mkl")
    assert proc.returncode != 0 and 'pip install "fastmf-gd[mkl]"' in proc.stderr
