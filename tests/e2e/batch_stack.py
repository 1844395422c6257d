"""A real Airflow deployment for the batch operator's end-to-end tests and benchmark.

The same deployment as tests/e2e/stack.py's (api-server, scheduler, dag-processor and triggerer as
separate processes, LocalExecutor, SQLite), with the Bloom emulator started by its command line, plus what
a batch run needs: one Bloom connection per pace (``requests_per_minute`` is a connection extra), a rows
file, the task's process (to kill it, or to sample its memory), its logs and its XCom.
"""

from __future__ import annotations

import csv
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_provider_bloom.emulator import EmulatorClient
from tests.e2e.checks import count_429, run_path
from tests.e2e.stack import AirflowDeployment, ManagedProcess, start_emulator, wait_until
from tests.helpers import conn_json


@dataclass
class BatchStack:
    airflow: AirflowDeployment
    emulator_process: ManagedProcess
    emulator: EmulatorClient
    api_key: str
    home: Path

    def report(self) -> str:
        return "\n".join(
            [
                self.airflow.logs_report(),
                f"----- emulator ({self.emulator_process.log_path}) -----",
                self.emulator_process.tail(),
            ]
        )

    # -- runs -----------------------------------------------------------------------------------
    def trigger(self, dag_id: str, **conf: Any) -> str:
        run = self.airflow.api.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def run_path(self, dag_id: str, run_id: str) -> str:
        return run_path(run_id, dag_id)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.airflow.api.paged(f"{self.run_path(dag_id, run_id)}/taskInstances", "task_instances")

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.airflow.api.get(f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}")
        return ti

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/tries"
        found: list[dict[str, Any]] = self.airflow.api.get(path)["task_instances"]
        return found

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float,
        on_poll: Callable[[], None] | None = None,
        interval: float = 1.0,
    ) -> tuple[str, set[str]]:
        """Poll until the run ends: its final state, and every state its task instances were seen in."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while True:
            self.airflow.check_alive(["api-server", "scheduler", "dag-processor"])
            state = self.airflow.api.get(self.run_path(dag_id, run_id))["state"]
            if on_poll is not None:
                on_poll()
            seen |= {ti["state"] or "none" for ti in self.task_instances(dag_id, run_id)}
            if state in ("success", "failed"):
                return state, seen
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} of {dag_id} still {state!r} after {timeout:.0f}s")
            time.sleep(interval)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{quote(key)}"
        value = self.airflow.api.get(path)["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return "".join(
            p.read_text(errors="replace") for p in sorted(folder.glob(f"attempt={try_number}.log*"))
        )

    # -- the emulator -----------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        counters: dict[str, Any] = self.emulator.requests()
        counters["answered_429"] = count_429(counters)
        counters["generations"] = int(counters["by_operation"].get("images.generate", 0))
        return counters


def task_runner(ti_id: str) -> Any | None:
    """The process running a task instance's code, or None.

    The task runner titles itself ``airflow worker -- <ti id>``; its supervisor (the LocalExecutor's
    worker, its parent) names the task instance too, so the runner is the one with no matching child.
    """
    import psutil

    found = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or ())
        if ti_id in cmdline and "airflow worker" in cmdline:
            found[process.pid] = process
    leaves = []
    for process in found.values():
        try:
            if not any(child.pid in found for child in process.children(recursive=True)):
                leaves.append(process)
        except psutil.NoSuchProcess:
            continue
    if len(leaves) > 1:
        raise RuntimeError(f"several processes run {ti_id}: {[p.info['cmdline'] for p in leaves]}")
    return leaves[0] if leaves else None


def write_rows(path: Path, count: int, tag: str) -> Path:
    """A CSV of ``count`` rows, each a distinct prompt and a SKU carried to the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "prompt"])
        for n in range(count):
            writer.writerow([f"{tag}-{n:05d}", f"{tag} product tile number {n} on a plain background"])
    return path


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def batch_stack(
    home: Path,
    connections: Mapping[str, Mapping[str, Any]],
    *,
    emulator_args: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
    dags: tuple[str, ...] = (),
) -> Iterator[BatchStack]:
    """Start the emulator and the deployment (``connections``: conn id -> extras), unpause ``dags``."""
    log_dir = home / "process-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    emulator_process, root_url = start_emulator(log_dir, "--unlimited-credits", *emulator_args)
    api_key = f"bloom_sk_batch_{secrets.token_hex(12)}"
    env = {
        f"AIRFLOW_CONN_{cid.upper()}": conn_json(f"{root_url}/api/v1", api_key, **x)
        for cid, x in connections.items()
    }
    airflow = AirflowDeployment(home, {**env, **(extra_env or {})})
    stack = BatchStack(airflow, emulator_process, EmulatorClient(root_url), api_key, home)
    try:
        try:
            began = time.monotonic()
            airflow.migrate()
            migrated = time.monotonic()
            airflow.start()
            for dag_id in dags:
                airflow.wait_for_dag(dag_id)
                airflow.api.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
            started = time.monotonic() - migrated
            print(f"batch stack: db migrate {migrated - began:.1f}s, start-up {started:.1f}s")
        except BaseException:
            print(stack.report())
            raise
        yield stack
    finally:
        airflow.close()
        stack.emulator.close()
        emulator_process.stop()


__all__ = [
    "BatchStack",
    "batch_stack",
    "read_manifest",
    "task_runner",
    "wait_until",
    "write_rows",
]
