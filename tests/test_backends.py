"""The BLAS backends (FASTMF_BLAS): each runs the kernels to the same numbers as plain GD, and
neither a backend that cannot be bound nor a cache that cannot be written breaks import."""

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmf
from naive import gd, low_rank

HERE = Path(__file__).parent
SUBSET = "test_matches_plain_gd and (30-50-3-3 or 12-12-12-12 or 9-14-3-8 or 25-20-20-4) or test_float32"
INFO = "import fastmf, json; print(json.dumps(fastmf.blas_info()))"
BOGUS = "atlas"


def _env(backend, **extra):
    """This environment with FASTMF_BLAS set to `backend` (None: unset) and `extra` added."""
    env = {key: value for key, value in os.environ.items() if key != "FASTMF_BLAS"}
    return env | ({} if backend is None else {"FASTMF_BLAS": backend}) | extra


def _python(code, backend, *args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-c", code, *args], env=env or _env(backend), cwd=cwd,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _info(backend):
    proc = _python(INFO, backend)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@functools.cache
def _mkl_missing():
    """Why FASTMF_BLAS=mkl cannot be bound here, as fastmf itself tells (None: it can)."""
    return _info("mkl")["error"]


def _needs_mkl(backend):
    if backend == "mkl" and _mkl_missing():
        pytest.skip(f"mkl is not installed here: {_mkl_missing()}")


@pytest.mark.parametrize("backend", ["loops", "mkl"])
def test_backend_matches_plain_gd(backend):
    _needs_mkl(backend)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "test_solver.py"), str(HERE / "test_direct.py"), "-q",
         "-p", "no:cacheprovider", "-k", SUBSET],
        env=_env(backend), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
    assert _info(backend)["backend"] == backend


_RUN = """
import sys, numpy as np, fastmf
case = np.load(sys.argv[1])
out = {"backend": fastmf.blas_info()["backend"]}
for name, Sigma, kwargs in [("compressed", case["Sigma"], {"complement": "compressed"}),
                            ("full", case["Sigma"], {"complement": "full"}),
                            ("direct", case["Sigma"], {"method": "direct"}),
                            ("float32", case["Sigma"].astype(np.float32), {})]:
    res = fastmf.solve(Sigma, 4, 0.05, 100, U0=case["U0"], V0=case["V0"], **kwargs)
    out[name] = res.U.astype(np.float64) @ res.V.T.astype(np.float64)
np.savez(sys.argv[2], **out)
"""


def test_backends_agree_on_a_run(tmp_path):
    rng = np.random.default_rng(5)
    Sigma = low_rank(rng, 30, 20, [3.0, 2.0, 1.0])
    U0, V0 = 0.3 * rng.standard_normal((30, 4)), 0.3 * rng.standard_normal((20, 4))
    np.savez(tmp_path / "case.npz", Sigma=Sigma, U0=U0, V0=V0)
    *_, U, V = gd(Sigma, U0, V0, 0.05, 100)
    plain = U @ V.T
    products = {}
    for backend in ("scipy", "mkl", "loops"):
        if backend == "mkl" and _mkl_missing():
            continue
        proc = _python(_RUN, backend, str(tmp_path / "case.npz"), str(tmp_path / f"{backend}.npz"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        products[backend] = dict(np.load(tmp_path / f"{backend}.npz"))
        assert products[backend].pop("backend") == backend
    for backend, runs in products.items():
        for name, product in runs.items():
            tol = 1e-4 if name == "float32" else 1e-10
            assert np.linalg.norm(product - plain) <= tol * np.linalg.norm(plain), (backend, name)
            if name != "float32":  # float64 backends differ only in the rounding of the products
                other = products["scipy"][name]
                assert np.linalg.norm(product - other) <= 1e-12 * np.linalg.norm(other), (backend, name)


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd to list what SciPy's cython_blas links")
def test_default_backend_is_the_blas_scipy_calls():
    import scipy.linalg.cython_blas

    info = _info(None)
    assert info["backend"] == "scipy" and info["error"] is None
    ldd = subprocess.run(["ldd", scipy.linalg.cython_blas.__file__], capture_output=True, text=True).stdout
    linked = {
        os.path.realpath(line.split("=>")[1].split("(")[0].strip()) for line in ldd.splitlines() if "=> /" in line
    }
    assert info["library"] in linked, (info, ldd)
    assert info["threads"] is None or info["threads"] >= 1


@pytest.mark.parametrize(
    "setting, backend",
    [("", "scipy"), ("SciPy", "scipy"), ("OpenBLAS", "scipy"), ("openblas", "scipy"), ("Loops", "loops"),
     ("MKL", "mkl")],
)  # fmt: skip
def test_setting_in_any_case(setting, backend):
    _needs_mkl(backend)
    info = _info(setting)
    assert info["backend"] == backend and info["error"] is None, info


def test_unknown_backend_is_one_line_naming_the_choices():
    solve = (
        "import numpy as np\n"
        "try:\n"
        "    fastmf.solve(fastmf.Problem.from_spectrum(np.array([2.0, 1.0]), 6, 5), 2, 0.1, 3)\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)"
    )
    proc = _python(INFO + "\n" + solve, BOGUS)
    assert proc.returncode == 0, proc.stderr
    info, raised = proc.stdout.splitlines()
    reason = json.loads(info)["error"]
    assert "FASTMF_BLAS" in reason and repr(BOGUS) in reason and "\n" not in reason
    assert all(name in reason for name in ("scipy", "mkl", "loops"))
    assert raised == f"BackendError {reason}"


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "fastmf", *args], env=env, capture_output=True, text=True, timeout=600)


def test_cli_help_and_info_work_when_the_backend_cannot_be_bound(tmp_path):
    env = _env(BOGUS)
    for args in (["--help"], ["run", "--help"]):
        proc = _cli(*args, env=env)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: fastmf"), proc.stderr
    proc = _cli("info", env=env)
    assert proc.returncode == 0, proc.stderr
    kernels = [line for line in proc.stdout.splitlines() if line.startswith("kernels")]
    assert len(kernels) == 1 and "cannot run" in kernels[0] and repr(BOGUS) in kernels[0]
    proc = _cli("run", "--spectrum", "2,1", "--shape", "6x5", "--max-iter", "3", "-o", str(tmp_path / "r.npz"), env=env)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and repr(BOGUS) in proc.stderr, proc.stderr
    assert not (tmp_path / "r.npz").exists()


def test_mkl_missing_says_how_to_install(tmp_path):
    # an environment without MKL: fastmf looks for libmkl_rt under sys.prefix, here an empty folder
    code = f"import sys; sys.prefix = {str(tmp_path)!r}; "
    proc = _python(code + INFO, "mkl")
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "fastmf-gd[mkl]"' in json.loads(proc.stdout)["error"]
    proc = _python(code + "from fastmf.cli import main; sys.exit(main(['run', '--spectrum', '2,1', '--max-iter', '3',"
                   f" '-o', {str(tmp_path / 'r.npz')!r}]))", "mkl")  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert 'pip install "fastmf-gd[mkl]"' in proc.stderr


def test_import_and_solve_without_a_writable_cache(tmp_path):
    site, home = tmp_path / "site", tmp_path / "home"
    shutil.copytree(Path(fastmf.__file__).parent, site / "fastmf", ignore=shutil.ignore_patterns("__pycache__"))
    # files where Numba would make its cache folders (beside the sources, ~/.cache): no one,
    # not even root, can create them; read-only permissions add the usual case
    home.write_text("")
    for folder in (site / "fastmf", site / "fastmf" / "_kernels"):
        (folder / "__pycache__").write_text("")
    for path in [site, *site.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    rng = np.random.default_rng(0)
    Sigma, U0, V0 = np.diag([2.0, 1.0, 0.5]), 0.3 * rng.standard_normal((3, 2)), 0.3 * rng.standard_normal((3, 2))
    np.savez(tmp_path / "case.npz", Sigma=Sigma, U0=U0, V0=V0)
    env = _env("loops", PYTHONPATH=str(site), HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    for key in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        env.pop(key, None)
    code = (
        "import sys, numpy as np, fastmf; case = np.load(sys.argv[1]); print(fastmf.__file__); "
        "print(fastmf.solve(case['Sigma'], 2, 0.1, 20, U0=case['U0'], V0=case['V0']).history['loss'].tolist())"
    )
    try:
        proc = _python(code, None, str(tmp_path / "case.npz"), env=env, cwd=tmp_path)
    finally:
        for path in [site, *site.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, losses = proc.stdout.splitlines()
    assert where == str(site / "fastmf" / "__init__.py")
    assert proc.stderr.count("RuntimeWarning: fastmf: Numba cannot write its cache here") == 1, proc.stderr
    np.testing.assert_allclose(json.loads(losses), gd(Sigma, U0, V0, 0.1, 20)[0], rtol=1e-9)


def test_mkl_runs_the_split_engine_on_one_thread():
    # MKL would spread the split engine's L2-sized products over its threads, at a loss: the kernel
    # runs with MKL's thread-local count at 1, and the caller's setting comes back afterwards
    _needs_mkl("mkl")
    code = """
import ctypes, json, fastmf
from fastmf import _kernels as K
from fastmf._kernels import blas
mkl = ctypes.CDLL(blas._bound["path"])
seen, run_blocks = [], K.run_blocks
def probe(*args):
    seen.append(mkl.mkl_get_max_threads())
    return run_blocks(*args)
K.run_blocks = probe
fastmf.solve(fastmf.Problem.from_spectrum([2.0, 1.0], 6, 5), 2, 0.1, 20, seed=0)
print(json.dumps([seen, mkl.mkl_get_max_threads()]))
"""
    proc = _python(code, "mkl", env=_env("mkl", MKL_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stderr
    seen, after = json.loads(proc.stdout)
    assert seen and set(seen) == {1} and after == 2
