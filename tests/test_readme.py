"""The README's examples run as written, in order: the Python blocks, and the command lines."""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from fastmf.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.filterwarnings("ignore:Increasing number of chunks")  # dask's hint on the example's X @ Y.T
def test_readme_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)  # the examples write files
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 5
    sweeps = [block for block in blocks if "fastmf.sweep(" in block]
    assert sweeps and all('if __name__ == "__main__":' in block for block in sweeps)  # Dask's workers import scripts
    namespace = {"__name__": "__main__"}  # as when the blocks run as one script
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["result"].status == "converged"
    assert namespace["flow"].status == "converged"
    assert namespace["run"].status == "stopped" and namespace["more"].n_iter == 20_000
    assert (tmp_path / "stages.png").stat().st_size > 10_000
    assert namespace["mf"].status_ == "converged"
    assert namespace["done"].status == "done" and len(namespace["table"]) == namespace["done"].runs
    assert (tmp_path / "eta-sweep.png").stat().st_size > 10_000
    assert namespace["huge"].rank == 8 and namespace["huge"].basis_residual < 1e-12


def test_readme_command_lines_run(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("distributed")
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("fastmf ")]
    assert len(lines) >= 3
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    assert (tmp_path / "run.png").stat().st_size > 10_000
