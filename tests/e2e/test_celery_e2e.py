"""bloom_content_pipeline on the CeleryExecutor, with two triggerers, one of them killed mid-wait.

Past one machine's LocalExecutor: a real Redis broker and a real PostgreSQL metadata database (Debian's
packages, installed by scripts/install_system_deps.sh where missing, started here as throwaway instances
on free loopback ports in temporary folders), an ``airflow celery worker`` that runs every task, and two
triggerers at once. docker-compose.yaml's ``celery`` profile runs the same commands and settings
(tests/test_compose.py checks that).

- At the demo's speed (3-5 s per image, ``scripts/demo.py``) the run succeeds, every task in one try on
  the Celery worker, with exactly one paid POST per planned image.
- With images that outlast the operators' in-worker wait (``defer_after``), the batch wait defers to a
  triggerer; that triggerer (found through the ``trigger`` table's ``triggerer_id``) is killed with
  SIGKILL while it runs the wait: the other one takes it over once the dead one's heartbeat is stale,
  and the run still succeeds in one try per task with nothing paid twice.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_bloom.emulator import EmulatorClient
from tests.e2e.checks import (
    DAG_ID,
    DEMO_SPEED,
    PLANNED,
    WAITING_TASKS,
    answered_429,
    assert_key_in_no_file,
    paid,
    printing_logs_on_failure,
    run_path,
    task_logs,
)
from tests.e2e.stack import (
    CELERY,
    CELERY_TRIGGERERS,
    CELERY_WAIT_REQUESTS_PER_MINUTE,
    TRIGGERER_FAILOVER,
    AirflowDeployment,
    ManagedProcess,
    PostgresCluster,
    celery_env,
    ensure_system_deps,
    load_script,
    start_emulator,
    start_redis,
    wait_until,
)
from tests.helpers import conn_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: Longer than the operators' and sensors' in-worker wait (``defer_after``, 10 s by default), so the batch
#: wait defers to a triggerer and there is a trigger to kill; at the demo's speed the waits end in the worker.
SLOWER_THAN_DEFER_AFTER = {"generation_seconds": 20.0, "generation_jitter": 0.0}
#: Bloom waits deferred to a triggerer that has claimed them (``trigger.triggerer_id`` set).
HELD_WAITS = """
    SELECT ti.task_id, ti.map_index, t.id, t.triggerer_id
    FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id
    WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.state = 'deferred' AND t.triggerer_id IS NOT NULL
"""


@dataclass
class CeleryStack:
    airflow: AirflowDeployment
    postgres: Any  # PostgresCluster
    redis: ManagedProcess
    emulator_process: ManagedProcess
    emulator: EmulatorClient
    api_key: str
    home: Path

    def report(self) -> str:
        parts = [self.airflow.logs_report()]
        for process in (self.emulator_process, self.redis, self.postgres.process):
            if process is not None:
                parts.append(f"----- {process.name} ({process.log_path}) -----\n{process.tail()}")
        return "\n".join(parts)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryStack]:
    ensure_system_deps()
    home = tmp_path_factory.mktemp("airflow-celery-e2e")
    log_dir = home / "process-logs"
    log_dir.mkdir()
    with contextlib.ExitStack() as cleanup:  # stops whatever was started, in reverse order, also on failure
        began = time.monotonic()
        postgres = PostgresCluster(log_dir)
        cleanup.callback(postgres.stop)
        postgres.start()
        redis, broker_url = start_redis(log_dir, home / "redis")
        cleanup.callback(redis.stop)
        emulator_process, root_url = start_emulator(
            log_dir, *load_script("demo").EMULATOR_ARGS, "--validate-responses"
        )  # and Bloom's limit of 120 requests per minute per key
        cleanup.callback(emulator_process.stop)
        emulator = EmulatorClient(root_url)
        cleanup.callback(emulator.close)
        api_key = f"bloom_sk_e2e_{secrets.token_hex(12)}"
        # Each triggerer has its own wait hub: 120 / (triggerers + 1) each, as docs/deployment.md advises.
        connection = conn_json(
            f"{root_url}/api/v1", api_key, wait_requests_per_minute=CELERY_WAIT_REQUESTS_PER_MINUTE
        )
        airflow = AirflowDeployment(
            home,
            {
                "AIRFLOW_CONN_BLOOM_DEFAULT": connection,
                **celery_env(broker_url, postgres.celery_result_backend),
                **TRIGGERER_FAILOVER,
            },
            executor=CELERY,
            database_url=postgres.url,
            triggerers=CELERY_TRIGGERERS,
        )
        cleanup.callback(airflow.close)
        result = CeleryStack(airflow, postgres, redis, emulator_process, emulator, api_key, home)
        with printing_logs_on_failure(result):
            services = time.monotonic()
            airflow.migrate()
            migrated = time.monotonic()
            airflow.start()
            airflow.wait_for_dag(DAG_ID)
            print(
                f"celery e2e: postgres+redis+emulator {services - began:.1f}s, db migrate "
                f"{migrated - services:.1f}s, start-up {time.monotonic() - migrated:.1f}s"
            )
            airflow.api.send("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        yield result


def ti_key(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def held_waits(stack: CeleryStack, connection: Any, run_id: str) -> dict[str, int]:
    """Deferred Bloom waits and the triggerer job holding each (read straight from the trigger table)."""
    with connection.cursor() as cursor:
        cursor.execute(HELD_WAITS, (DAG_ID, run_id))
        rows = cursor.fetchall()
    return {
        ti_key(task, index): int(triggerer) for task, index, _, triggerer in rows if task in WAITING_TASKS
    }


@dataclass
class Takeover:
    killed_job: int
    killed_name: str
    held: dict[str, int]
    #: For each wait the killed triggerer held: every triggerer job seen holding it after the kill.
    holders_after: dict[str, set[int]] = field(default_factory=dict)


def trigger_logs(stack: CeleryStack, run_id: str, key: str) -> dict[int, str]:
    """A task instance's trigger log files, by the id of the triggerer job that wrote each."""
    task_id, _, index = key.partition("[")
    folder = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    if index:
        folder /= f"map_index={index.rstrip(']')}"
    return {
        int(path.name.rsplit(".", 2)[-2]): path.read_text(errors="replace")
        for path in folder.glob("attempt=1.log.trigger.*.log")
    }


def assert_key_nowhere(stack: CeleryStack) -> None:
    """No task or trigger log, nor any process's output, holds the API key."""
    assert_key_in_no_file(
        stack.api_key, task_logs(stack.home) + list((stack.home / "process-logs").glob("*.log"))
    )


@dataclass
class RunResult:
    run_id: str
    state: str
    states: dict[str, str]
    tis: list[dict[str, Any]]
    seconds: float


def trigger_run(stack: CeleryStack, output: Path) -> str:
    run = stack.airflow.api.send(
        "POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"output": str(output)}}
    )
    return str(run["dag_run_id"])


def watch_run(
    stack: CeleryStack,
    run_id: str,
    began: float,
    sample: Callable[[], None] = lambda: None,
    timeout: float = 240,
    skip: Sequence[str] = (),
) -> RunResult:
    """Poll the run until it ends (calling ``sample`` each time); its task instances at the end."""
    airflow = stack.airflow
    deadline = time.monotonic() + timeout
    while True:
        airflow.check_alive([n for n in airflow.processes if n not in skip])
        sample()
        state = airflow.api.get(run_path(run_id))["state"]
        if state in ("success", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    tis = airflow.api.paged(f"{run_path(run_id)}/taskInstances", "task_instances")
    states = {ti_key(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}
    return RunResult(run_id, state, states, tis, time.monotonic() - began)


def assert_one_clean_run(stack: CeleryStack, result: RunResult, output: Path) -> None:
    """Success, every task in one try on the Celery worker, the files, one paid POST per planned image."""
    assert result.state == "success", result.states
    assert set(result.states.values()) <= {"success", "skipped"}, result.states
    tries = {
        ti_key(t["task_id"], t["map_index"]): t["try_number"] for t in result.tis if t["state"] == "success"
    }
    assert tries and set(tries.values()) == {1}, tries
    assert {t["task_id"] for t in result.tis} >= {"generate", *WAITING_TASKS, "download"}
    # Run by the Celery worker: each task instance id appears in the workloads it executed.
    worker_log = stack.airflow.processes["celery-worker"].log_path.read_text(errors="replace")
    assert all(t["id"] in worker_log for t in result.tis if t["state"] == "success")
    assert len(list(output.rglob("*.png"))) == 12 and len(list(output.rglob("manifest.json"))) == 1
    assert paid(stack.emulator) == {"total": sum(PLANNED.values()), **PLANNED}
    assert (
        answered_429(stack.emulator) == 0
    )  # two triggerers' hubs and the worker's POSTs stayed within the limit
    assert stack.emulator.violations() == []


def test_celery_run_at_the_demos_speed(stack: CeleryStack, tmp_path: Path) -> None:
    stack.emulator.reset()
    stack.emulator.configure(**DEMO_SPEED)
    output = tmp_path / "output"
    with printing_logs_on_failure(stack):
        began = time.monotonic()
        result = watch_run(stack, trigger_run(stack, output), began)
        deferred = sorted(
            ti_key(e["task_id"], e.get("map_index", -1))
            for e in stack.airflow.api.paged(
                "/eventLogs", "event_logs", dag_id=DAG_ID, run_id=result.run_id, event_pattern="deferred"
            )
            if e["event"] == "deferred"
        )
        print(f"celery e2e: demo's speed {result.seconds:.1f}s ({result.state}), deferred: {deferred}")
        assert_one_clean_run(stack, result, output)
    assert_key_nowhere(stack)


def test_celery_run_survives_the_triggerer_holding_the_waits_being_killed(
    stack: CeleryStack, tmp_path: Path
) -> None:
    stack.emulator.reset()
    stack.emulator.configure(**SLOWER_THAN_DEFER_AFTER)
    output = tmp_path / "output"
    airflow = stack.airflow
    connection = stack.postgres.connect()
    connection.autocommit = True
    try:
        with printing_logs_on_failure(stack):
            began = time.monotonic()
            run_id = trigger_run(stack, output)

            def waits_started() -> dict[str, int] | None:
                """Deferred waits claimed by a triggerer that has started running them (its trigger log)."""
                airflow.check_alive()
                held = held_waits(stack, connection, run_id)
                started = {
                    k: job
                    for k, job in held.items()
                    if "starting" in trigger_logs(stack, run_id, k).get(job, "")
                }
                return started or None

            held = wait_until("Bloom waits held by a triggerer", waits_started, 240, interval=0.05)
            job = next(iter(held.values()))
            name = {job_id: name for name, job_id in airflow.triggerer_jobs.items()}[job]
            paid_before_kill = paid(stack.emulator)
            airflow.processes[name].kill()  # SIGKILL to its process group: no clean shutdown
            killed_at = time.monotonic()
            stack.emulator.configure(**DEMO_SPEED)  # the post-processing after it at the demo's speed again
            takeover = Takeover(job, name, {k: j for k, j in held.items() if j == job})
            print(f"celery e2e: killed {name} (job {job}) holding {sorted(takeover.held)}")
            print(f"celery e2e: kill at {killed_at - began:.1f}s after the trigger, paid: {paid_before_kill}")
            (survivor,) = [n for n in airflow.triggerers if n != name]
            survivor_job = airflow.triggerer_jobs[survivor]
            taken_over_after: list[float] = []

            def sample() -> None:
                for key, holder in held_waits(stack, connection, run_id).items():
                    if key in takeover.held:
                        takeover.holders_after.setdefault(key, set()).add(holder)
                if not taken_over_after and all(
                    survivor_job in trigger_logs(stack, run_id, key) for key in takeover.held
                ):
                    taken_over_after.append(time.monotonic() - killed_at)
                    print(f"celery e2e: taken over {taken_over_after[0]:.1f}s after the kill")

            result = watch_run(stack, run_id, began, sample, skip=[name])
            print(f"celery e2e: run with the kill {result.seconds:.1f}s ({result.state})")
            assert_one_clean_run(stack, result, output)  # nothing paid twice across the crash
    finally:
        connection.close()

    # The killed triggerer had started each of its waits; the survivor took each over and fired its event.
    for key in takeover.held:
        logs = trigger_logs(stack, run_id, key)
        assert takeover.killed_job in logs and "starting" in logs[takeover.killed_job], (key, sorted(logs))
        assert survivor_job in logs and "Trigger fired event" in logs[survivor_job], (key, sorted(logs))
        assert takeover.holders_after.get(key, set()) <= {takeover.killed_job, survivor_job}
    assert_key_nowhere(stack)
