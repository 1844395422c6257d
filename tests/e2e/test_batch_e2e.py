"""BloomGenerateBatchOperator through a real Airflow 3 deployment: scheduler, dag-processor, triggerer, API.

The deployment of tests/e2e/stack.py (LocalExecutor, SQLite, every process separate, on loopback), the
emulator by its command line at its default image speed (3 s) with its rate limit raised to 6,000 a
minute (the connections pace the batches below it, so no request is answered 429). The DAGs are in
tests/e2e/dags/bloom_batch_e2e.py. What this proves, beyond the dag.test() runs of the unit tests:

- 1,500 rows, more than ``[core] max_map_length`` (1,024), in ONE task instance of one run, deferred to
  the triggerer and resumed, in one try: one paid POST per row, a manifest of 1,500 records, and a
  return value (XCom) of a few hundred bytes;
- the task's process SIGKILLed mid-submission (after a few hundred POSTs): the retry resumes from the
  journal (``task_state_store`` on Airflow 3.3+, files beside the manifest before), sends only the rows
  not sent yet and reconciles those whose answer was lost (the emulator holds the POSTs in flight at the
  kill, so there always are some): exactly one paid POST per row over both tries, every row completed in
  the manifest. scripts/test_airflow_versions.sh runs this one on Airflow 3.2 too.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.batch_stack import BatchStack, batch_stack, read_manifest, task_runner, wait_until, write_rows

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LARGE_DAG = "bloom_batch_e2e_large"
RESUME_DAG = "bloom_batch_e2e_resume"
TASK = "generate"
#: More rows than Airflow's default ``[core] max_map_length`` (1,024): no mapped operator could take them.
LARGE_ROWS = 1500
RESUME_ROWS = 600
#: POSTs seen by the emulator before the resume test kills the task (a few hundred of its 600).
KILL_AFTER = 250
#: The resume DAG's POSTs in flight at once: the batch's default for 1,200/min (requests_per_minute // 120).
IN_FLIGHT = 10
#: Just before the kill, the emulator holds the next IN_FLIGHT POSTs this long before handling them (it
#: handles them all the same once the task is dead): at the kill every thread has a POST out whose answer
#: never comes back, so the retry must settle those rows from Bloom's list, not send them again.
HELD_SECONDS = 2.0
#: The emulator's limit per key, raised from Bloom's 120 so that the batches run in seconds.
EMULATOR_RATE_LIMIT = 6000
CONNECTIONS = {
    # 1,500 rows in 30 s; the triggerer's hub gets its own share: 3,000 + 600 stays under 6,000.
    "bloom_batch_large": {"requests_per_minute": 3000, "wait_requests_per_minute": 600},
    # 600 rows in 30 s: slow enough to kill the task after a few hundred.
    "bloom_batch_resume": {"requests_per_minute": 1200, "wait_requests_per_minute": 600},
}
#: The XCom return value must stay small at any batch size (the manifest holds the rows).
MAX_XCOM_BYTES = 16 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchStack]:
    home = tmp_path_factory.mktemp("airflow-batch-e2e")
    with batch_stack(
        home,
        CONNECTIONS,
        emulator_args=("--rate-limit", str(EMULATOR_RATE_LIMIT), "--validate-responses"),
        extra_env={"AIRFLOW__CORE__PARALLELISM": "3"},
        dags=(LARGE_DAG, RESUME_DAG),
    ) as running:
        yield running


def log_event(line: str) -> str:
    """The message of a task log line (Airflow writes JSON lines)."""
    try:
        return str(json.loads(line).get("event", line))
    except ValueError:
        return line.strip()


def assert_every_row_completed(records: list[dict], rows: int, tag: str) -> None:
    assert len(records) == rows
    assert sorted(r["sku"] for r in records) == [f"{tag}-{n:05d}" for n in range(rows)]
    statuses = {r["status"] for r in records}
    assert statuses == {"completed"}, {s: sum(r["status"] == s for r in records) for s in statuses}
    assert all(len(r["image_ids"]) == 1 for r in records)
    assert len({r["image_ids"][0] for r in records}) == rows  # one image per row, none shared


def test_a_batch_larger_than_max_map_length_runs_in_one_deferred_task(
    stack: BatchStack, tmp_path: Path
) -> None:
    stack.emulator.reset()
    rows = write_rows(tmp_path / "rows.csv", LARGE_ROWS, "large")
    output = tmp_path / "out" / "generate.jsonl"
    began = time.monotonic()
    try:
        run_id = stack.trigger(LARGE_DAG, rows=str(rows), output=str(output))
        state, seen = stack.wait_for_run(LARGE_DAG, run_id, timeout=300)
        assert state == "success", stack.task_log(LARGE_DAG, run_id, TASK, 1)[-4000:]
    except BaseException:
        print(stack.report())
        raise
    print(f"batch e2e: {LARGE_ROWS} rows, run {time.monotonic() - began:.1f}s")

    counters = stack.counters()
    assert counters["generations"] == LARGE_ROWS  # exactly one paid POST per row
    assert counters["paid_posts_effective"] == LARGE_ROWS
    assert counters["answered_429"] == 0
    assert stack.emulator.violations() == []

    (ti,) = stack.task_instances(LARGE_DAG, run_id)  # one task instance, no mapping
    assert ti["try_number"] == 1 and ti["state"] == "success"
    assert "deferred" in seen  # it waited in the triggerer...
    log = stack.task_log(LARGE_DAG, run_id, TASK, 1)
    assert "Deferring: waiting in the triggerer" in log
    assert "Submitted 1,500/1,500 rows" in log  # ...after submitting everything, and resumed from there
    assert "Resuming batch" in log

    assert_every_row_completed(read_manifest(output), LARGE_ROWS, "large")
    summary = stack.xcom(LARGE_DAG, run_id, TASK)
    size = len(json.dumps(summary))
    print(f"batch e2e: return value {size} bytes: {summary}")
    assert size < MAX_XCOM_BYTES
    assert summary["records"] == summary["images"] == LARGE_ROWS
    assert summary["counts"] == {"completed": LARGE_ROWS}
    assert Path(summary["manifest"].removeprefix("file://")) == output


def test_a_batch_killed_mid_submission_resumes_without_paying_twice(
    stack: BatchStack, tmp_path: Path
) -> None:
    stack.emulator.reset()
    rows = write_rows(tmp_path / "rows.csv", RESUME_ROWS, "resume")
    output = tmp_path / "out" / "generate.jsonl"
    began = time.monotonic()
    try:
        run_id = stack.trigger(RESUME_DAG, rows=str(rows), output=str(output))

        def submitting_task() -> str | None:
            stack.airflow.check_alive()
            ti = stack.task_instance(RESUME_DAG, run_id, TASK)
            return str(ti["id"]) if ti["state"] == "running" else None

        ti_id = wait_until("the batch task to run", submitting_task, 120, 0.5)

        def after_a_few_hundred() -> int | None:
            sent = stack.counters()["generations"]
            if sent >= RESUME_ROWS:
                raise AssertionError("the batch sent every row before it could be killed")
            return sent if sent >= KILL_AFTER else None

        wait_until(f"{KILL_AFTER} POSTs", after_a_few_hundred, 120, 0.05)
        stack.emulator.add_fault("images.generate", "delay", count=IN_FLIGHT, delay_seconds=HELD_SECONDS)
        time.sleep(HELD_SECONDS / 2)  # the pace sends IN_FLIGHT POSTs in ~0.5 s: each thread now waits on one
        runner = task_runner(ti_id)  # `airflow worker -- <ti id>`, the LocalExecutor worker's child
        assert runner is not None, f"no process runs {ti_id}"
        os.kill(runner.pid, signal.SIGKILL)
        sent_before_kill = stack.counters()["generations"]
        killed_at = time.monotonic()
        print(f"batch e2e: SIGKILL {runner.pid} after {sent_before_kill} POSTs, {killed_at - began:.1f}s in")

        state, _ = stack.wait_for_run(RESUME_DAG, run_id, timeout=300)
        logs = {n: stack.task_log(RESUME_DAG, run_id, TASK, n) for n in (1, 2)}
        assert state == "success", logs[2][-4000:] or logs[1][-4000:]
    except BaseException:
        print(stack.report())
        raise
    after_kill = time.monotonic() - killed_at
    print(f"batch e2e: resumed run {time.monotonic() - began:.1f}s ({after_kill:.1f}s after the kill)")

    tries = stack.tries(RESUME_DAG, run_id, TASK)
    print(f"batch e2e: tries {[(t['try_number'], t['state']) for t in tries]}")
    assert [t["try_number"] for t in tries] == [1, 2] and tries[-1]["state"] == "success"
    assert "Submitted" in logs[1] and "Manifest:" not in logs[1]  # try 1 died mid-submission
    assert "Resuming batch" in logs[2]
    # The POSTs held at the kill went out in try 1 and were handled by Bloom after it died: try 2 found
    # them in Bloom's list (never sending them again).
    assert "went out in an earlier try whose answer was never recorded" in logs[2]
    recovered = [r for r in read_manifest(output) if r.get("recovered")]
    print(f"batch e2e: {len(recovered)} row(s) in doubt after the kill, recovered from Bloom's list")
    assert 1 <= len(recovered) <= IN_FLIGHT
    for line in logs[2].splitlines():  # what the retry found in the journal, and what it reconciled
        if any(words in line for words in ("Resuming batch", "went out in an earlier try", "recovered")):
            print(f"batch e2e: try 2: {log_event(line)}")

    counters = stack.counters()
    assert counters["generations"] == RESUME_ROWS  # one paid POST per row over both tries: none twice
    assert counters["paid_posts_effective"] == RESUME_ROWS
    assert counters["answered_429"] == 0
    assert stack.emulator.violations() == []
    assert_every_row_completed(read_manifest(output), RESUME_ROWS, "resume")
    summary = stack.xcom(RESUME_DAG, run_id, TASK)
    assert summary["counts"] == {"completed": RESUME_ROWS}
