"""An Airflow api-server with this provider installed, and the Bloom emulator, for the browser test.

Used by tests/browser/test_connection_ui.py and runnable by hand to look at the form:
``PYTHONPATH=$PWD python -m tests.browser.uistack`` prints the URLs and waits for Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.e2e.stack import REPO, load_script
from tests.helpers import conn_json

_local = load_script("local_stack")
ManagedProcess = _local.ManagedProcess
free_port = _local.free_port
start_emulator = _local.start_emulator
wait_until = _local.wait_until

CHROMIUM = os.environ.get("BLOOM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class UiStack:
    """``airflow api-server`` (every user an admin, testing connections enabled) plus the emulator."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.logs = home / "process-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.dags = home / "dags"
        self.dags.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list = []
        self.emulator_url = ""
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "PYTEST_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> UiStack:
        migrated = self.airflow("db", "migrate")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        emulator, self.emulator_url = start_emulator(self.logs, "--generation-seconds", "0.5")
        self.processes.append(emulator)
        api = ManagedProcess(
            "api-server", [sys.executable, "-m", "airflow", "api-server"], self.env, self.logs
        ).start()
        self.processes.append(api)

        def up() -> bool:
            if not api.alive:
                raise RuntimeError(f"the api-server exited:\n{api.tail()}")
            try:
                return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until("the api-server to answer", up, 180, interval=0.5)
        return self

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        """The REST API as the (all-admin) UI user."""
        token = httpx.get(f"{self.url}/auth/token", timeout=30).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def stored_connection(self, conn_id: str) -> dict:
        """The connection as stored in the metadata DB (decrypted): host, password, extra."""
        code = (
            "import json, sys; from airflow.models import Connection; "
            "c = Connection.get_connection_from_secrets(sys.argv[1]); "
            "print('CONN' + json.dumps({'host': c.host, 'port': c.port, 'password': c.password, "
            "'extra': c.extra}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, conn_id], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout[done.stdout.index("CONN") + 4 :])

    def connection_saved(self, conn_id: str) -> bool:
        return self.airflow("connections", "get", conn_id).returncode == 0

    def add_connection(self, conn_id: str, key: str) -> None:
        """The connection the browser test saves through the form, added by the CLI instead."""
        conn = conn_json(self.emulator_url, key)
        added = self.airflow("connections", "add", conn_id, "--conn-json", conn)
        assert added.returncode == 0, added.stderr[-2000:]

    def tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(60)}" for p in self.processes)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()


if __name__ == "__main__":  # pragma: no cover - by hand
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stack = UiStack(Path(tempfile.mkdtemp(prefix="bloom-ui-"))).start()
    print(f"Airflow: {stack.url}  emulator: {stack.emulator_url}  home: {stack.home}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.close()
