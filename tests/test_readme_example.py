"""The README's example DAG is the tested snippet and runs; the emulator page's pytest example runs.

The README's example is ``docs/snippets/hello_dag.py`` (the docs include it from there): the two must not
drift. It runs here with ``dag.test()`` against the emulator; ``tests/test_release.py`` runs it again with
``airflow dags test`` in a fresh virtualenv that has only the built wheel. The pytest example of the
emulator page (``docs/snippets/test_my_dag.py``) is copied verbatim into a fresh project and run with
pytest in a fresh ``AIRFLOW_HOME`` (only the package's own pytest plugin, not this suite's conftest).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, load_module

SNIPPETS = REPO / "docs" / "snippets"


def marked(path: Path, name: str) -> str:
    """The text between ``# [START name]`` and ``# [END name]`` in ``path``."""
    text = path.read_text()
    match = re.search(rf"# \[START {name}\]\n(.*?)\n# \[END {name}\]", text, re.DOTALL)
    assert match, f"{path.name}: no [START {name}] / [END {name}] markers"
    return match.group(1)


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## An example DAG") :]
    match = re.search(r"```python\n(.*?)\n```", section, re.DOTALL)
    assert match, "the README's example DAG block moved"
    return match.group(1)


def test_the_readme_example_is_the_tested_snippet():
    assert readme_example() == marked(SNIPPETS / "hello_dag.py", "readme_example"), (
        "README.md's example DAG and docs/snippets/hello_dag.py differ: change both the same way"
    )


def test_the_readme_example_dag_runs(bloom_conn, dag_run):
    module = load_module(SNIPPETS / "hello_dag.py", "readme_hello_dag")
    outcome = dag_run(module.dag)
    assert outcome.state == "success", outcome.errors
    images = outcome.xcom("wait")
    assert [image["status"] for image in images] == ["completed", "completed"]
    assert bloom_conn.requests()["paid_posts"] == 2


def test_the_pytest_example_runs_as_written(tmp_path: Path) -> None:
    code = (SNIPPETS / "test_my_dag.py").read_text()
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
