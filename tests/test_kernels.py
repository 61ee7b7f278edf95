"""The kernels once more as plain Python (NUMBA_DISABLE_JIT=1), so coverage and tracebacks see them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SUBSET = (
    "test_matches_plain_gd and (30-50-3-3 or 12-12-12-12 or 9-14-3-8) or test_divergence or test_record_every"
    " or test_diagnostics_match_numpy_on_rebuilt_matrices and 20-35-2-4-compressed or test_stages_are_exact"
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
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            SUBSET,
            # the divergence test overflows on purpose; interpreted numpy warns where compiled code does not
            "-W",
            "ignore:overflow encountered:RuntimeWarning",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "deselected" in proc.stdout
