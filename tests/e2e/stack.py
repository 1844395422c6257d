"""A real Airflow 3 deployment on loopback for the end-to-end test.

Separate processes, each in its own process group with its log file under a temporary directory:
api-server, scheduler, dag-processor and triggerer (LocalExecutor, SQLite metadata DB), plus the Bloom
emulator started through its command-line entry point (``python -m airflow_provider_bloom.emulator``),
the same one docker-compose.yaml runs. Everything started here is stopped in ``close()``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the scripts folder is not a package; its modules import each other)."""
    scripts = str(REPO / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    module_name = f"bloom_scripts_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_local = load_script("local_stack")
DAGS_FOLDER: Path = _local.DAGS_FOLDER
EMULATOR_MODULE: str = _local.EMULATOR_MODULE
ManagedProcess = _local.ManagedProcess
free_port = _local.free_port
start_emulator = _local.start_emulator
wait_until = _local.wait_until
#: The Airflow components of a deployment (docker-compose.yaml runs the same four commands).
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"


#: DAGs used only by the end-to-end tests (served next to the examples).
TEST_DAGS_FOLDER = REPO / "tests" / "e2e" / "dags"


def dags_folder_with_test_dags(home: Path) -> Path:
    """A DAG folder holding the example DAGs (and their data files) plus the end-to-end test DAGs."""
    folder = home / "dags"
    folder.mkdir(exist_ok=True)
    for source in (*DAGS_FOLDER.iterdir(), *TEST_DAGS_FOLDER.glob("*.py")):
        if source.is_file() and not (folder / source.name).exists():
            (folder / source.name).symlink_to(source)
    return folder


def airflow_env(home: Path, api_port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The configuration every component shares: one metadata DB, JWT secret and Fernet key."""
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "PYTEST_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder_with_test_dags(home)),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class AirflowApi:
    """The public REST API (v2) with a token from the simple auth manager."""

    def __init__(self, base_url: str, password: str) -> None:
        self.base_url = base_url
        self.password = password
        self.client = httpx.Client(base_url=base_url, timeout=30)

    def login(self) -> None:
        answer = self.client.post("/auth/token", json={"username": ADMIN_USER, "password": self.password})
        answer.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(f"/api/v2{path}", params={k: v for k, v in params.items() if v is not None})
        answer.raise_for_status()
        return answer.json()

    def send(self, method: str, path: str, body: Any) -> Any:
        answer = self.client.request(method, f"/api/v2{path}", json=body)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    def paged(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=100, offset=len(items), **params)
            items.extend(page[key])
            if not page[key] or len(items) >= page.get("total_entries", 0):
                return items

    def close(self) -> None:
        self.client.close()


class AirflowDeployment:
    """Scheduler, dag-processor, triggerer and api-server on loopback, sharing one SQLite DB."""

    def __init__(self, home: Path, extra_env: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.log_dir = home / "process-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.env = airflow_env(home, self.api_port, extra_env)
        password = secrets.token_urlsafe(16)
        (home / "passwords.json").write_text(json.dumps({ADMIN_USER: password}))
        self.api = AirflowApi(f"http://127.0.0.1:{self.api_port}", password)
        airflow = [sys.executable, "-m", "airflow"]
        commands = {
            "api-server": [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "scheduler": [*airflow, "scheduler"],
            "dag-processor": [*airflow, "dag-processor"],
            "triggerer": [*airflow, "triggerer"],
        }
        assert tuple(commands) == AIRFLOW_COMPONENTS
        self.processes = {
            name: ManagedProcess(name, argv, self.env, self.log_dir) for name, argv in commands.items()
        }

    def migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def start(self, timeout: float = 120) -> None:
        for process in self.processes.values():
            process.start()
        wait_until("the api-server to answer", self._api_up, timeout)
        self.api.login()
        wait_until("scheduler, triggerer and dag-processor to be healthy", self._healthy, timeout)

    def _api_up(self) -> bool:
        self.check_alive()
        return self.api.client.get("/api/v2/version").status_code in (200, 401, 403)

    def _healthy(self) -> bool:
        self.check_alive()
        health = self.api.client.get("/api/v2/monitor/health").json()
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(health.get(part, {}).get("status") == "healthy" for part in parts)

    def check_alive(self, names: Iterable[str] | None = None) -> None:
        for name in names or self.processes:
            process = self.processes[name]
            if process.proc is not None and not process.alive:
                raise RuntimeError(f"airflow {name} exited ({process.proc.returncode}):\n{process.tail()}")

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict[str, Any]:
        return wait_until(f"the DAG {dag_id} to be parsed", lambda: self._dag(dag_id), timeout, interval=0.5)

    def _dag(self, dag_id: str) -> dict[str, Any] | None:
        self.check_alive()
        answer = self.api.client.get(f"/api/v2/dags/{dag_id}")
        return answer.json() if answer.status_code == 200 else None

    def logs_report(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- {name} ({process.log_path}) -----\n{process.tail(lines)}"
            for name, process in self.processes.items()
        )

    def close(self) -> None:
        self.api.close()
        for process in self.processes.values():
            process.stop()
