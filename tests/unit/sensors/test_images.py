"""BloomImageSensor under ``dag.test()`` against the emulator: generate -> sense, deferred and poking.

Every run goes through the ``dag_run`` fixture (tests/conftest.py), which asserts the API
key is absent from every log line, XCom and rendered field of the run.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from airflow.sdk import DAG

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.links import BloomImageLink, BloomImageLink2, BloomImageLink3
from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.sensors.images import BloomImageSensor
from tests.helpers import NO_RETRY_WANTED, RECORD_FIELDS, START, conn_json, list_calls

MODES = {
    # defer at once: dag.test() runs the trigger in line (fast waits that end in the worker have their test)
    "deferrable": {"deferrable": True, "defer_after": 0, "min_defer_seconds": 0},
    "poke": {"deferrable": False, "mode": "poke", "poke_interval": 0.1},
    "reschedule": {"deferrable": False, "mode": "reschedule", "poke_interval": 0.1},
}


# --------------------------------------------------------------------------- generate -> sense


@pytest.mark.parametrize("mode", list(MODES))
def test_generate_then_sense(bloom_conn, dag_run, mode):
    bloom_conn.configure(generation_seconds=0.4)
    with DAG(f"sense_{mode}", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(
            task_id="gen", prompt="a lemon tree", variant_count=2, aspect_ratio="3:2"
        )
        BloomImageSensor(task_id="sense", image_ids=gen.output, **MODES[mode])
    run = dag_run(dag)
    assert run.state == "success"
    ids = run.xcom("gen")
    records = run.xcom("sense")
    assert [r["id"] for r in records] == ids
    for record in records:
        assert set(record) == RECORD_FIELDS
        assert record["status"] == "completed"
        assert (record["width"], record["height"], record["aspectRatio"]) == (2048, 1365, "3:2")
        assert record["prompt"] == "a lemon tree"
        assert record["actionType"] == "generation"
        assert record["variantGroupId"] == run.xcom("gen", "variant_group_id")
        assert record["imageUrl"] == f"{bloom_conn.root_url}/img/{record['id']}"  # short link, not signed
    assert run.xcom("sense", BloomImageLink().xcom_key) == f"{bloom_conn.root_url}/img/{ids[0]}"
    assert run.xcom("sense", BloomImageLink2().xcom_key) == f"{bloom_conn.root_url}/img/{ids[1]}"
    assert not run.xcom("sense", BloomImageLink3().xcom_key)  # two images, two buttons
    assert ("[DAG TEST] running trigger in line" in run.log) is (mode == "deferrable")
    if mode == "deferrable":
        assert list_calls(bloom_conn) == 1  # one long-poll answered when both images were done


def test_include_urls_returns_signed_download_urls(bloom_conn, dag_run):
    with DAG("sense_urls", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(task_id="gen", prompt="a teapot")
        BloomImageSensor(task_id="sense", image_ids=gen.output, deferrable=True, include_urls=True)
    run = dag_run(dag)
    (record,) = run.xcom("sense")
    assert record["imageUrl"].startswith(bloom_conn.root_url) and "/img/" not in record["imageUrl"]


def test_mapped_generation_over_twenty_prompts_sensed_by_one_sensor(bloom_conn, dag_run):
    """20 mapped generations x 3 variants = 60 images: one deferred sensor, two chunks, two long-polls."""
    prompts = [f"poster number {n}" for n in range(20)]
    with DAG("sense_mapped", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator.partial(task_id="gen", variant_count=3).expand(prompt=prompts)
        BloomImageSensor(task_id="sense", image_ids=gen.output, deferrable=True)
    run = dag_run(dag)
    assert run.state == "success"
    expected = [i for n in range(20) for i in run.xcom("gen", map_index=n)]
    records = run.xcom("sense")
    assert [r["id"] for r in records] == expected
    assert len(records) == 60 and {r["status"] for r in records} == {"completed"}
    assert sorted({r["prompt"] for r in records}) == sorted(prompts)
    assert list_calls(bloom_conn) == 2
    assert bloom_conn.requests()["paid_posts"] == 20


def test_ids_pulled_through_jinja_are_understood(bloom_conn, dag_run):
    with DAG("sense_jinja", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(task_id="gen", prompt="a snail", variant_count=2)
        sense = BloomImageSensor(
            task_id="sense", image_ids="{{ ti.xcom_pull(task_ids='gen') }}", deferrable=True
        )
        gen >> sense
    run = dag_run(dag)
    assert [r["id"] for r in run.xcom("sense")] == run.xcom("gen")


# --------------------------------------------------------------------------- on_failure


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
@pytest.mark.parametrize(
    ("on_failure", "task_state"), [("fail", "failed"), ("skip", "skipped"), ("ignore", "success")]
)
def test_content_safety_failure_under_each_policy(bloom_conn, dag_run, mode, on_failure, task_state):
    with DAG(f"sense_policy_{on_failure}_{mode}", schedule=None, start_date=START) as dag:
        good = BloomGenerateImageOperator(task_id="good", prompt="a quiet library")
        bad = BloomGenerateImageOperator(task_id="bad", prompt="a riot [content_safety]")
        BloomImageSensor(
            task_id="sense",
            image_ids=[good.output, bad.output],
            on_failure=on_failure,
            **MODES[mode],
            **NO_RETRY_WANTED,
        )
    run = dag_run(dag)
    assert run.state_of("sense") == task_state
    assert run.tries_of("sense") == 1
    (failed_id,) = run.xcom("bad")
    if on_failure in ("fail", "skip"):
        assert f"1 of 2 Bloom image(s) failed: {failed_id} (content_safety)" in run.log
    else:
        records = {r["id"]: r for r in run.xcom("sense")}
        assert records[failed_id]["status"] == "failed"
        assert records[failed_id]["failureReason"] == "content_safety"
        assert records[run.xcom("good")[0]]["status"] == "completed"


def test_on_failure_is_checked_when_the_dag_is_parsed():
    with pytest.raises(BloomInputError) as info:
        BloomImageSensor(task_id="s", image_ids=[str(uuid.uuid4())], on_failure="retry")
    assert info.value.field == "on_failure"


def test_bad_ids_fail_without_retry_naming_the_field(bloom_conn, dag_run):
    with DAG("sense_bad_ids", schedule=None, start_date=START) as dag:
        # Literal ids are refused when the DAG is built (tests/unit/test_spec.py); a rendered one at run time.
        BloomImageSensor(task_id="sense", image_ids="{{ 'img_123' }}", deferrable=True, **NO_RETRY_WANTED)
    run = dag_run(dag)
    assert run.state_of("sense") == "failed" and run.tries_of("sense") == 1
    assert "Invalid image_ids: must be a UUID" in run.log
    assert bloom_conn.requests()["total"] == 0


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_unknown_ids_fail_without_retry(bloom_conn, dag_run, mode):
    ghost = str(uuid.uuid4())
    with DAG(f"sense_ghost_{mode}", schedule=None, start_date=START) as dag:
        BloomImageSensor(task_id="sense", image_ids=[ghost], **MODES[mode], **NO_RETRY_WANTED)
    run = dag_run(dag)
    assert run.state_of("sense") == "failed" and run.tries_of("sense") == 1
    assert f"Bloom did not return these images (deleted, or not visible to this key): ['{ghost}']" in run.log


# --------------------------------------------------------------------------- deadline and storms


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_the_deadline_times_the_sensor_out(bloom_conn, dag_run, mode):
    bloom_conn.configure(generation_seconds=60)
    with DAG(f"sense_deadline_{mode}", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(task_id="gen", prompt="a slow sunrise")
        BloomImageSensor(
            task_id="sense", image_ids=gen.output, timeout=1, poll_timeout=1, **MODES[mode], **NO_RETRY_WANTED
        )
    run = dag_run(dag)
    assert run.state_of("sense") == "failed"
    assert run.tries_of("sense") == 1  # a sensor timeout is final
    assert "AirflowSensorTimeout" in run.log


def test_soft_fail_turns_the_deadline_into_a_skip(bloom_conn, dag_run):
    bloom_conn.configure(generation_seconds=60)
    with DAG("sense_soft_fail", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(task_id="gen", prompt="a slower sunrise")
        BloomImageSensor(
            task_id="sense",
            image_ids=gen.output,
            timeout=1,
            poll_timeout=1,
            deferrable=True,
            soft_fail=True,
            min_defer_seconds=0,  # the event's hold after the deferral is not what this tests
        )
    run = dag_run(dag)
    assert run.state_of("sense") == "skipped"
    # The worker's brief wait is bounded by the sensor's timeout (1 s: one long-poll), not by
    # defer_after's 10 s of long-polls; then the trigger's one long-poll reaches the deadline.
    assert list_calls(bloom_conn) <= 3


def _storm_when_waiting(emulator, count: int) -> threading.Thread:
    """Once the first long-poll is in flight, make the next ``count`` list calls answer 429."""

    def inject() -> None:
        end = time.monotonic() + 60
        while list_calls(emulator) < 1 and time.monotonic() < end:
            time.sleep(0.02)
        emulator.add_fault("images.list", "status", count=count, status=429, retry_after="0")

    thread = threading.Thread(target=inject, daemon=True)
    thread.start()
    return thread


def test_a_429_storm_in_the_middle_of_waiting_is_survived(bloom_conn, dag_run, monkeypatch):
    """The client gives up at once (max_retries=0), so the trigger's own loop rides out the storm."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    bloom_conn.configure(generation_seconds=2.5)
    with DAG("sense_storm", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(task_id="gen", prompt="a lighthouse in a storm", variant_count=2)
        BloomImageSensor(
            task_id="sense", image_ids=gen.output, deferrable=True, poll_timeout=1, **NO_RETRY_WANTED
        )
    storm = _storm_when_waiting(bloom_conn, count=8)
    run = dag_run(dag)
    storm.join()
    assert run.state_of("sense") == "success"
    assert run.tries_of("sense") == 1
    assert [r["status"] for r in run.xcom("sense")] == ["completed", "completed"]
    statuses = bloom_conn.requests()["by_operation_status"]["images.list"]
    assert statuses["429"] == 8 and statuses["200"] >= 2  # answers before and after the storm


def test_a_poke_that_hits_a_storm_tries_again_next_poke(bloom_conn, dag_run, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    bloom_conn.add_fault("images.list", "status", count=3, status=429)
    with DAG("sense_poke_storm", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator(task_id="gen", prompt="a windmill")
        BloomImageSensor(task_id="sense", image_ids=gen.output, **MODES["poke"], **NO_RETRY_WANTED)
    run = dag_run(dag)
    assert run.state_of("sense") == "success" and run.tries_of("sense") == 1
    assert bloom_conn.requests()["by_operation_status"]["images.list"] == {"429": 3, "200": 1}


def test_poke_sends_one_list_call_per_chunk_of_fifty_ids(bloom_conn, dag_run):
    prompts = [f"tile {n}" for n in range(11)]  # 55 images -> chunks of 50 and 5
    with DAG("sense_poke_chunks", schedule=None, start_date=START) as dag:
        gen = BloomGenerateImageOperator.partial(task_id="gen", variant_count=5).expand(prompt=prompts)
        BloomImageSensor(
            task_id="sense", image_ids=gen.output, deferrable=False, poke_interval=timedelta(seconds=1)
        )
    run = dag_run(dag)
    assert run.state == "success"
    assert len(run.xcom("sense")) == 55
    assert list_calls(bloom_conn) == 2  # all done by the first poke: GET ?ids= with 50, then with 5
