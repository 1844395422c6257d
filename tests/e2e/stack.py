"""A real Airflow 3 deployment on loopback for the end-to-end tests.

Separate processes, each in its own process group with its log file under a temporary directory:
api-server, scheduler, dag-processor and triggerer, plus the Bloom emulator started through its
command-line entry point (``python -m airflow_provider_bloom.emulator``), the same one docker-compose.yaml
runs. Two shapes: LocalExecutor with SQLite (the default), or the CeleryExecutor with a PostgreSQL metadata
database, a Redis broker (both started by the caller, see scripts/local_stack.py), an ``airflow celery
worker`` and several triggerers: docker-compose.yaml's ``celery`` profile runs the same commands and
settings. Everything started here is stopped in ``close()``.
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
PostgresCluster = _local.PostgresCluster
start_redis = _local.start_redis
ensure_system_deps = _local.ensure_system_deps
#: The Airflow components of a deployment (docker-compose.yaml runs the same four commands).
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
CELERY = "CeleryExecutor"
#: Triggerers of the CeleryExecutor deployment (and of docker-compose.yaml's ``celery`` profile).
CELERY_TRIGGERERS = 2
#: Each triggerer's wait hub budget on the shared key (connection extra ``wait_requests_per_minute``):
#: 120 / (triggerers + 1), as docs/deployment.md advises; docker-compose.yaml sets the same.
CELERY_WAIT_REQUESTS_PER_MINUTE = 120 // (CELERY_TRIGGERERS + 1)
#: What the CeleryExecutor deployment sets beyond the shared configuration and its broker/result backend
#: URLs; docker-compose.yaml's ``celery`` profile sets the same (tests/test_compose.py checks it).
CELERY_SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR": CELERY,
    # Task slots of the worker: running tasks hold one each, deferred ones none.
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
}
#: Triggerer heartbeat and the age after which a silent triggerer's triggers move to a live one
#: (Airflow's defaults: 5 s and 30 s). Both end-to-end runs and docker-compose.yaml use these.
TRIGGERER_FAILOVER = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
}


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


def component_commands(executor: str = "LocalExecutor", triggerers: int = 1) -> dict[str, list[str]]:
    """Each process of a deployment and its ``airflow`` sub-command (as docker-compose.yaml's services).

    Extra triggerers are named ``triggerer-2``, ``triggerer-3``...; the CeleryExecutor adds ``celery-worker``.
    """
    commands = {name: [name] for name in AIRFLOW_COMPONENTS}
    commands.update({f"triggerer-{n}": ["triggerer"] for n in range(2, triggerers + 1)})
    if executor == CELERY:
        commands["celery-worker"] = ["celery", "worker"]
    return commands


def celery_env(broker_url: str, result_backend: str) -> dict[str, str]:
    """The CeleryExecutor's configuration: :data:`CELERY_SETTINGS` plus where the broker and results are."""
    return {
        **CELERY_SETTINGS,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
    }


def airflow_env(
    home: Path,
    api_port: int,
    extra: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> dict[str, str]:
    """The configuration every component shares: one metadata DB, JWT secret and Fernet key.

    The metadata DB is SQLite in ``home`` unless ``database_url`` (e.g. PostgreSQL) is given.
    """
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "PYTEST_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home / 'airflow.db'}",
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
            # Log servers on free ports: not Airflow's fixed 8793/8794, taken by any other deployment.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
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
    """The Airflow processes on loopback, sharing one metadata DB (SQLite unless ``database_url``).

    ``executor="CeleryExecutor"`` adds an ``airflow celery worker`` (``extra_env`` then carries
    :func:`celery_env`); ``triggerers`` starts that many triggerers, one after the other, so that
    :attr:`triggerer_jobs` knows which triggerer job id each process runs as.
    """

    def __init__(
        self,
        home: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        executor: str = "LocalExecutor",
        database_url: str | None = None,
        triggerers: int = 1,
    ) -> None:
        self.home = home
        self.log_dir = home / "process-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.executor = executor
        extra = {"AIRFLOW__CORE__EXECUTOR": executor, **(extra_env or {})}
        self.env = airflow_env(home, self.api_port, extra, database_url)
        password = secrets.token_urlsafe(16)
        (home / "passwords.json").write_text(json.dumps({ADMIN_USER: password}))
        self.api = AirflowApi(f"http://127.0.0.1:{self.api_port}", password)
        airflow = [sys.executable, "-m", "airflow"]
        components = component_commands(executor, triggerers)
        commands = {name: [*airflow, *words] for name, words in components.items()}
        commands["api-server"] += ["--host", "127.0.0.1", "--port", str(self.api_port)]
        assert tuple(commands)[: len(AIRFLOW_COMPONENTS)] == AIRFLOW_COMPONENTS
        #: The triggerer processes, in start order.
        self.triggerers = [name for name, words in commands.items() if words[-1] == "triggerer"]
        #: Triggerer process name -> the id of the TriggererJob it runs as (``trigger.triggerer_id``).
        self.triggerer_jobs: dict[str, int] = {}
        self.processes: dict[str, Any] = {}
        for name, argv in commands.items():
            env = dict(self.env)
            if name in self.triggerers:  # each triggerer serves its trigger logs on a port of its own
                env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
            self.processes[name] = ManagedProcess(name, argv, env, self.log_dir)

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
        first, *later = self.triggerers
        for name, process in self.processes.items():
            if name not in later:
                process.start()
        wait_until("the api-server to answer", self._api_up, timeout)
        self.api.login()
        self.triggerer_jobs[first] = self._new_triggerer_job(first, timeout)
        for name in later:
            self.processes[name].start()
            self.triggerer_jobs[name] = self._new_triggerer_job(name, timeout)
        wait_until("scheduler, triggerer and dag-processor to be healthy", self._healthy, timeout)
        if "celery-worker" in self.processes:
            wait_until("the celery worker to be ready", self._worker_ready, timeout)

    def _new_triggerer_job(self, name: str, timeout: float) -> int:
        """The id of the running TriggererJob that ``name`` registered (none of the known ones)."""

        def registered() -> int | None:
            self.check_alive()
            jobs = self.api.get("/jobs", job_type="TriggererJob", job_state="running", limit=100)["jobs"]
            new = {job["id"] for job in jobs} - set(self.triggerer_jobs.values())
            return new.pop() if len(new) == 1 else None

        return wait_until(f"{name} to register its triggerer job", registered, timeout)

    def _worker_ready(self) -> bool:
        self.check_alive()
        worker = self.processes["celery-worker"]
        return worker.log_path.exists() and " ready." in worker.log_path.read_text(errors="replace")

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
