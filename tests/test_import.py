"""`import fastmf` loads no Numba, llvmlite or SciPy's ODE solvers (nor does the command line before it
computes); every public name still resolves, as an attribute, through ``from fastmf import ...`` and for
type checkers."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastmf

ROOT = Path(fastmf.__file__).resolve().parents[1]
HEAVY = ["numba", "llvmlite", "scipy.integrate", "scipy.optimize"]


def _fresh(code):
    """Run `code` in a new interpreter that imports this tree's fastmf; return what it printed, parsed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_loads_nothing_heavy():
    loaded = _fresh(f"import json, sys; import fastmf; print(json.dumps([m for m in {HEAVY} if m in sys.modules]))")
    assert loaded == []


def test_the_command_line_and_the_kernels_layout_load_no_numba():
    # `fastmf --help` and the like need only the names of the kernels' slots, not the kernels
    code = "import json, sys; import fastmf.cli; from fastmf._kernels import KEYS, layout; "
    code += "print(json.dumps([m for m in ['numba', 'llvmlite'] if m in sys.modules]))"
    assert _fresh(code) == []


def test_kernels_resolve_on_first_use():
    from fastmf import _kernels as K
    from fastmf._kernels import batch, blocks, direct

    assert (K.run_blocks, K.run_batch, K.absmax) == (blocks.run_blocks, batch.run_batch, direct.absmax)
    with pytest.raises(AttributeError, match="no attribute 'run_block'"):
        K.run_block  # noqa: B018


def test_gd_solvers_load_no_ode_solver():
    code = (
        "import json, sys; from fastmf import solve, solve_batch, resume, load; "
        "print(json.dumps([m for m in ['scipy.integrate', 'scipy.optimize'] if m in sys.modules]))"
    )
    assert _fresh(code) == []


def test_star_import_gives_all_public_names_in_a_fresh_process():
    code = (
        "import json; from fastmf import *; import fastmf; "
        "print(json.dumps({'star': sorted(n for n in dir() if not n.startswith('_') and n not in {'json', 'fastmf'}), "
        "'all': fastmf.__all__, 'dir': dir(fastmf)}))"
    )
    names = _fresh(code)
    assert names["star"] == sorted(n for n in names["all"] if n != "__version__")
    assert set(names["all"]) <= set(names["dir"])


@pytest.mark.parametrize("name", fastmf.__all__)
def test_public_names_resolve_to_their_modules(name):
    value = getattr(fastmf, name)
    if name == "__version__":
        assert isinstance(value, str) and value
        return
    defined_in = value.__module__
    assert defined_in.startswith("fastmf.") and getattr(sys.modules[defined_in], value.__name__) is value
    namespace = {}
    exec(f"from fastmf import {name} as got", namespace)
    assert namespace["got"] is value


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'solv'"):
        fastmf.solv  # noqa: B018
    assert not hasattr(fastmf, "GradientDescent")


def test_optional_estimator_stays_out_of_all():
    pytest.importorskip("sklearn")
    from fastmf.sklearn import GradientDescentMF

    assert fastmf.GradientDescentMF is GradientDescentMF and "GradientDescentMF" not in fastmf.__all__


def test_type_checkers_see_every_public_name():
    tree = ast.parse((ROOT / "fastmf" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    seen = {a.asname or a.name for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}
    seen |= {n.target.id for n in block.body if isinstance(n, ast.AnnAssign)}
    assert seen == set(fastmf.__all__) | {"GradientDescentMF"}
    assert (ROOT / "fastmf" / "py.typed").exists()


def test_all_lists_the_lazy_names():
    assert set(fastmf.__all__) == set(fastmf._LAZY) - {"GradientDescentMF"} | {"__version__"}
