"""The release installs clean: the built wheel, not the checkout, in a fresh virtualenv with Airflow.

Builds the sdist and the wheel as ``make dist`` does (``python -m build``), checks both with ``twine check``,
checks what the wheel holds, installs it with uv (the local cache makes this quick) into a new virtualenv
pinned by ``constraints.txt`` (Airflow 3.3.2: what we claim), and there, outside the checkout:
``airflow providers list`` shows the provider with its version and documentation link, the ``bloom``
connection type is registered, and the README's example DAG runs with ``airflow dags test`` against the
emulator the wheel ships.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_bloom import __version__
from tests.helpers import API_KEY, REPO, conn_json, free_port

pytestmark = pytest.mark.release

UV = [sys.executable, "-m", "uv"]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def _run(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{cmd[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    build = [sys.executable, "-m", "build", "--installer", "uv", "--sdist", "--wheel", "--outdir", str(out)]
    _run([*build, "."], cwd=REPO, env=env)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel and Airflow, as constraints.txt pins them (not the checkout)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([*UV, "venv", "-q", "--python", BASE_PYTHON, str(root)])
    _run(
        [
            *UV,
            "pip",
            "install",
            "-q",
            "--python",
            str(root / "bin" / "python"),
            "-c",
            str(REPO / "constraints.txt"),
            str(dist["wheel"]),
        ],
        timeout=600,
    )
    return root


@pytest.fixture(scope="module")
def user_env(venv, tmp_path_factory) -> Iterator[dict[str, str]]:
    """An Airflow home with the README's example DAG, and the wheel's emulator on loopback."""
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    readme = (REPO / "README.md").read_text()
    example = re.search(r"## An example DAG.*?```python\n(.*?)\n```", readme, re.DOTALL)
    assert example, "the README's example DAG block moved"
    (dags / "bloom_hello.py").write_text(example.group(1) + "\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "BLOOM"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_BLOOM_DEFAULT=conn_json(f"http://127.0.0.1:{port}"),
    )
    emulator = subprocess.Popen(
        [
            str(venv / "bin" / "python"),
            "-m",
            "airflow_provider_bloom.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--generation-seconds",
            "0.5",
        ],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert emulator.poll() is None and time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.2)
        yield {**env, "EMULATOR_URL": f"http://127.0.0.1:{port}"}
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def test_twine_accepts_the_sdist_and_the_wheel(dist):
    twine = [sys.executable, "-m", "twine", "check", "--strict"]
    result = _run([*twine, str(dist["wheel"]), str(dist["sdist"])])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_the_package_the_emulator_and_the_spec_and_no_tests(dist):
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    assert dist["wheel"].name == f"airflow_provider_bloom-{__version__}-py3-none-any.whl"
    for member in (
        "airflow_provider_bloom/__init__.py",
        "airflow_provider_bloom/hooks/bloom.py",
        "airflow_provider_bloom/operators/images.py",
        "airflow_provider_bloom/triggers/hub.py",
        "airflow_provider_bloom/emulator/app.py",
        "airflow_provider_bloom/emulator/__main__.py",
        "airflow_provider_bloom/openapi/openapi.json",
        "airflow_provider_bloom/py.typed",
    ):
        assert member in names, member
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"airflow_provider_bloom", f"airflow_provider_bloom-{__version__}.dist-info"}, top
    assert not [n for n in names if re.search(r"(^|/)(tests?|conftest\.py|test_[^/]*\.py)($|/)", n)]


def test_airflow_lists_the_installed_provider(venv, user_env):
    airflow = str(venv / "bin" / "airflow")
    cwd = user_env["AIRFLOW_HOME"]  # not the checkout: only the wheel can be imported
    python = str(venv / "bin" / "python")
    where = _run(
        [python, "-c", "import airflow_provider_bloom as p; print(p.__file__)"], cwd=cwd, env=user_env
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    providers = json.loads(_run([airflow, "providers", "list", "-o", "json"], cwd=cwd, env=user_env).stdout)
    (ours,) = [p for p in providers if p["package_name"] == "airflow-provider-bloom"]
    assert ours["version"] == __version__
    hooks = _run([airflow, "providers", "hooks", "-o", "json"], cwd=cwd, env=user_env).stdout
    assert re.search(r'"connection_type":\s*"bloom"', hooks), hooks[:2000]
    urls = "from importlib.metadata import metadata; print(metadata('airflow-provider-bloom'))"
    metadata = _run([python, "-c", urls], cwd=cwd, env=user_env).stdout
    assert "Project-URL: Documentation, https://airflow-provider-bloom.readthedocs.io/" in metadata


def test_the_readme_example_runs_in_the_fresh_airflow(venv, user_env):
    airflow = str(venv / "bin" / "airflow")
    cwd = user_env["AIRFLOW_HOME"]
    _run([airflow, "db", "migrate"], cwd=cwd, env=user_env)
    result = _run([airflow, "dags", "test", "bloom_hello"], cwd=cwd, env=user_env, timeout=300)
    output = result.stdout + result.stderr
    assert re.search(r"DagRun Finished: dag_id=bloom_hello,[^\n]*state=success", output), output[-3000:]
    assert API_KEY not in output
    import httpx

    counters = httpx.get(user_env["EMULATOR_URL"] + "/_emulator/requests").json()
    assert counters["paid_posts"] == 2, counters  # two prompts, each generated once
    assert counters["by_operation"].get("images.list", 0) >= 1  # and waited for
