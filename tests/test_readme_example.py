"""The README's "In your own tests" example runs as written: copied verbatim into a fresh project and run
with pytest in a fresh ``AIRFLOW_HOME`` (only the package's own pytest plugin, not this suite's conftest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### In your own tests") :]
    match = re.search(r"```python\n(# test_my_dag\.py.*?)```", section, re.DOTALL)
    assert match, "the README's example block moved"
    return match.group(1)


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    code = readme_example()
    assert "AIRFLOW_HOME=$(mktemp -d) pytest test_my_dag.py" in code
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_my_dag.py").write_text(code)
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BLOOM_TESTS", "PYTEST"))}
    env["AIRFLOW_HOME"] = str(home)  # what $(mktemp -d) gives: an empty directory
    env["PYTHONPATH"] = str(REPO)  # this checkout's package (the venv has it installed editable)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "test_my_dag.py", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
    assert (home / "airflow.db").exists()  # the runner migrated the fresh home's database
