"""BloomGenerateImageOperator under ``dag.test()`` against the emulator.

Runs go through the ``dag_run`` fixture (tests/conftest.py), which asserts the API key appears in no
log line, XCom or rendered template field of the run.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import airflow
import pytest
from airflow.sdk import DAG, task
from packaging.version import Version

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.links import image_links
from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.tasks.ledger import PaidRequestLedger
from tests.helpers import NO_RETRY_WANTED, START, by_op, conn_json

HAS_TASK_STATE_STORE = Version(airflow.__version__) >= Version("3.3")


def generations(emulator) -> int:
    return by_op(emulator, "images.generate")


# --------------------------------------------------------------------------- generation


def test_generate_returns_ids_and_pushes_variant_group_and_link(bloom_conn, dag_run):
    with DAG("gen_basic", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen",
            prompt="a red bicycle, studio light",
            aspect_ratio="16:9",
            image_size="2K",
            model="fast",
            variant_count=3,
        )
    run = dag_run(dag)
    assert run.state == "success"
    ids = run.xcom("gen")
    assert isinstance(ids, list) and len(ids) == 3
    records = bloom_conn.image_records(ids)
    assert {(r["width"], r["height"], r["model"], r["image_size"], r["brand_id"]) for r in records} == {
        (2048, 1152, "fast", "2K", DEFAULT_BRAND_ID)  # 16:9 at 2K; the brand from the connection's extra
    }
    assert run.xcom("gen", "variant_group_id") == records[0]["variant_group_id"]
    links = [run.xcom("gen", link.xcom_key) for link in image_links()]
    assert links[:3] == [f"{bloom_conn.root_url}/img/{i}" for i in ids]  # one link per variant
    assert not any(links[3:])  # Airflow stores "" for the other buttons, and the UI hides them
    assert [link.name for link in image_links()][:3] == ["Bloom image", "Bloom image 2", "Bloom image 3"]
    assert bloom_conn.requests()["paid_posts"] == 1


def test_templated_arguments_are_rendered_then_checked(bloom_conn, dag_run):
    with DAG("gen_templated", schedule=None, start_date=START, params={"subject": "a fox", "n": 2}) as dag:
        BloomGenerateImageOperator(
            task_id="gen",
            prompt="{{ params.subject }} in the snow",
            variant_count="{{ params.n }}",
            aspect_ratio="{{ '4:5' }}",
        )
    run = dag_run(dag)
    assert run.state == "success"
    records = bloom_conn.image_records(run.xcom("gen"))
    assert [r["prompt"] for r in records] == ["a fox in the snow"] * 2
    assert {(r["width"], r["height"]) for r in records} == {(1638, 2048)}  # 4:5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"image_size": "8K"}, "image_size"),
        ({"model": "ultra"}, "model"),
        ({"variant_count": 6}, "variant_count"),
        ({"brand_session_id": "my-brand"}, "brand_session_id"),
        ({"reference_image_ids": ["not-an-id"]}, "reference_image_ids"),
        ({"reference_image_ids": [str(uuid.uuid4()) for _ in range(11)]}, "reference_image_ids"),
        ({"poll_timeout": 300}, "poll_timeout"),
        ({"on_failure": "explode"}, "on_failure"),
    ],
)
def test_literal_arguments_are_checked_when_the_dag_is_parsed(kwargs, field):
    args = {"task_id": "gen", "prompt": "a boat", **kwargs}
    with pytest.raises(BloomInputError) as info:
        BloomGenerateImageOperator(**args)
    assert info.value.field == field


def test_a_rendered_argument_that_breaks_the_spec_fails_before_spending(bloom_conn, dag_run):
    with DAG("gen_bad_render", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="{{ 'x' * 2001 }}", **NO_RETRY_WANTED)
    run = dag_run(dag)
    assert run.state_of("gen") == "failed"
    assert run.tries_of("gen") == 1  # AirflowFailException: no retry for bad input
    assert "Invalid prompt: must be at most 2000 characters long" in run.log
    assert bloom_conn.requests()["total"] == 0


def test_brand_defaults_to_the_connection_and_is_required(bloom_conn, dag_run, monkeypatch, bloom_api_key):
    no_brand = {"conn_type": "bloom", "host": bloom_conn.base_url, "password": bloom_api_key}
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_NOBRAND", json.dumps(no_brand))
    with DAG("gen_no_brand", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="a kite", bloom_conn_id="bloom_nobrand", **NO_RETRY_WANTED
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "failed" and run.tries_of("gen") == 1
    assert "Invalid brand_session_id: is required" in run.log
    assert bloom_conn.requests()["paid_posts"] == 0


# --------------------------------------------------------------------------- mapping and XComArgs


def test_expand_kwargs_maps_one_generation_per_entry(bloom_conn, dag_run):
    entries = [{"prompt": "a pear", "aspect_ratio": "1:1"}, {"prompt": "a plum", "aspect_ratio": "9:16"}]
    sizes = [(2048, 2048), (1152, 2048)]
    with DAG("gen_expand_kwargs", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator.partial(task_id="gen", model="standard").expand_kwargs(entries)
    run = dag_run(dag)
    assert run.state == "success"
    for index, entry in enumerate(entries):
        (record,) = bloom_conn.image_records(run.xcom("gen", map_index=index))
        assert (record["prompt"], (record["width"], record["height"]), record["model"]) == (
            entry["prompt"],
            sizes[index],
            "standard",
        )


def test_reference_ids_from_an_upstream_task(bloom_conn, dag_run):
    with DAG("gen_references", schedule=None, start_date=START) as dag:
        first = BloomGenerateImageOperator(task_id="style", prompt="a watercolour texture", variant_count=2)

        @task
        def pick(ids: list[str]) -> list[str]:
            return ids[:1]

        BloomGenerateImageOperator(task_id="gen", prompt="a harbour", reference_image_ids=pick(first.output))
        BloomGenerateImageOperator(task_id="gen_all", prompt="a pier", reference_image_ids=first.output)
    run = dag_run(dag)
    assert run.state == "success"
    assert run.state_of("gen") == "success" and run.state_of("gen_all") == "success"
    assert bloom_conn.requests()["paid_posts"] == 3


def test_unknown_reference_fails_with_blooms_code_and_no_retry(bloom_conn, dag_run):
    with DAG("gen_bad_reference", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="a tower", reference_image_ids=[str(uuid.uuid4())], **NO_RETRY_WANTED
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "failed" and run.tries_of("gen") == 1
    assert "REFERENCE_IMAGE_NOT_FOUND" in run.log


# --------------------------------------------------------------------------- waiting


@pytest.mark.parametrize("deferrable", [False, True])
def test_wait_for_completion_returns_the_records(bloom_conn, dag_run, deferrable):
    with DAG(f"gen_wait_{deferrable}", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen",
            prompt="a mountain hut",
            variant_count=2,
            wait_for_completion=True,
            deferrable=deferrable,
            defer_after=0,  # defer at once (dag.test() runs the trigger in line)
            min_defer_seconds=0,
        )
    run = dag_run(dag)
    assert run.state == "success"
    records = run.xcom("gen")
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert {r["variantGroupId"] for r in records} == {run.xcom("gen", "variant_group_id")}
    assert ("[DAG TEST] running trigger in line" in run.log) is deferrable
    assert bloom_conn.requests()["by_operation"]["images.list"] == 1
    assert bloom_conn.requests()["paid_posts"] == 1


def test_a_fast_wait_finishes_in_the_worker_without_deferring(bloom_conn, dag_run):
    """Images that end within ``defer_after`` need no deferral: one long-poll from the worker."""
    bloom_conn.configure(generation_seconds=0.5)
    with DAG("gen_wait_fast", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="a quick sketch", wait_for_completion=True, deferrable=True, defer_after=8
        )
    run = dag_run(dag)
    assert run.state == "success"
    assert [r["status"] for r in run.xcom("gen")] == ["completed"]
    assert "[DAG TEST] running trigger in line" not in run.log
    assert "ended within defer_after: no deferral" in run.log
    assert bloom_conn.requests()["by_operation"]["images.list"] == 1


def test_a_slow_wait_defers_after_defer_after_and_fires_no_sooner_than_min_defer_seconds(bloom_conn, dag_run):
    bloom_conn.configure(generation_seconds=2.5)
    with DAG("gen_wait_slow", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen",
            prompt="a slow oil painting",
            wait_for_completion=True,
            deferrable=True,
            defer_after=1,
            min_defer_seconds=3,
        )
    started = time.monotonic()
    run = dag_run(dag)
    assert run.state == "success"
    assert "[DAG TEST] running trigger in line" in run.log
    # Deferred after ~1 s; the images ended ~1.5 s later, but the event waited for min_defer_seconds.
    assert time.monotonic() - started >= 1 + 3
    assert bloom_conn.requests()["by_operation"]["images.list"] == 2  # the worker's, then the hub's


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"defer_after": -1}, "defer_after"),
        ({"defer_after": float("nan")}, "defer_after"),
        ({"defer_after": 300}, "defer_after"),
        ({"min_defer_seconds": float("inf")}, "min_defer_seconds"),
        ({"wait_timeout": float("inf")}, "wait_timeout"),
    ],
)
def test_wait_options_are_checked_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(BloomInputError) as err:
        BloomGenerateImageOperator(task_id="bad", prompt="p", wait_for_completion=True, **kwargs)
    assert err.value.field == field


def test_deferrable_defaults_to_the_airflow_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert BloomGenerateImageOperator(task_id="a", prompt="p").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert BloomGenerateImageOperator(task_id="b", prompt="p").deferrable is False


def test_a_failed_image_fails_the_waiting_operator(bloom_conn, dag_run):
    with DAG("gen_wait_failed", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="[content_safety] a duel", wait_for_completion=True, **NO_RETRY_WANTED
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "failed" and run.tries_of("gen") == 1
    assert "content_safety" in run.log
    assert bloom_conn.requests()["paid_posts"] == 1


# --------------------------------------------------------------------------- Bloom errors


def _new_brand_analyzing(emulator) -> str:
    emulator.configure(brand_ready_seconds=600)
    return BloomHook().create_brand(url="https://example.com/slow-brand")["id"]


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda emu, key: emu.set_credits(0), "INSUFFICIENT_CREDITS"),
        (lambda emu, key: emu.configure(valid_keys=["bloom_sk_someone_else"]), "UNAUTHORIZED"),
        (lambda emu, key: emu.configure(banned_keys=[key]), "ACCOUNT_BANNED"),
        (lambda emu, key: emu.configure(entitled_4k=False), "FEATURE_NOT_ENTITLED"),
        (lambda emu, key: {"brand_session_id": str(uuid.uuid4())}, "BRAND_NOT_FOUND"),
        (lambda emu, key: {"brand_session_id": _new_brand_analyzing(emu)}, "BRAND_NOT_READY"),
    ],
)
def test_errors_a_retry_cannot_fix_fail_at_once_with_blooms_code(
    bloom_conn, dag_run, bloom_api_key, setup, code
):
    extra = setup(bloom_conn, bloom_api_key) or {}
    extra = extra if "brand_session_id" in extra else {}
    charged = bloom_conn.requests()["paid_posts_effective"]  # creating the slow brand is one
    with DAG(f"gen_error_{code.lower()}", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="a lamp", image_size="4K", **extra, **NO_RETRY_WANTED
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "failed"
    assert run.tries_of("gen") == 1
    assert f"Bloom {code}" in run.log
    if code == "INSUFFICIENT_CREDITS":
        assert "fix it at https://www.trybloom.ai/pricing" in run.log
    assert bloom_conn.requests()["paid_posts_effective"] == charged


# --------------------------------------------------------------------------- never pay twice


def test_a_lost_answer_is_recovered_from_blooms_list_without_posting_again(bloom_conn, dag_run):
    """More fault kinds, brands, edits, uploads and the uncertain cases: tests/unit/operators/test_base.py."""
    bloom_conn.add_fault("images.generate", "cut_after")
    with DAG("gen_lost_answer", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="a comet", **NO_RETRY_WANTED)
    run = dag_run(dag)
    assert run.state_of("gen") == "success"
    assert run.tries_of("gen") == 1
    assert "Recovered the 1 image(s) of the generation whose answer was lost" in run.log
    counters = bloom_conn.requests()
    assert generations(bloom_conn) == 1  # posted once, never again
    assert counters["paid_posts_effective"] == 1  # ... Bloom charged for it, and the task has its image
    (made,) = [r["id"] for r in bloom_conn.image_records() if r["source"] == "generated"]
    assert run.xcom("gen") == [made]


def test_a_retry_after_the_answer_was_stored_reuses_the_ids(bloom_conn, dag_run, monkeypatch):
    """Airflow 3.3 ``task_state_store``, a real second try under one ``dag.test()`` (retry_delay=0):
    try 1 posts, stores Bloom's answer, then its wait times out in a 503 storm (asked again with backoff
    until ``wait_timeout``); a later try finds the stored ids, does not post again and waits for the
    same images."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    bloom_conn.add_fault("images.list", "status", count=3, status=503)
    with DAG("gen_retry_reuses", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen",
            prompt="a paper boat",
            variant_count=2,
            wait_for_completion=True,
            deferrable=False,
            wait_timeout=2,
            retries=3,
            retry_delay=timedelta(0),
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "success"
    assert run.tries_of("gen") >= 2
    if not HAS_TASK_STATE_STORE:  # Airflow < 3.3: documented, a retry pays again and says so first
        assert generations(bloom_conn) >= 2
        assert "task_state_store is not available (it arrives in Airflow 3.3)" in run.log
        return
    assert generations(bloom_conn) == 1
    assert bloom_conn.requests()["paid_posts_effective"] == 1
    generated = [image["id"] for image in bloom_conn.image_records() if image["source"] == "generated"]
    assert sorted(r["id"] for r in run.xcom("gen")) == sorted(generated)
    assert len(generated) == 2
    assert "Bloom already accepted this images.generate in an earlier try" in run.log


def test_a_changed_request_is_not_mistaken_for_the_stored_one(bloom_conn, dag_run):
    """The stored answer is keyed by the request: a mapped task's other prompts post their own."""
    with DAG("gen_mapped_ledger", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator.partial(task_id="gen").expand(prompt=["a owl", "a crow", "a wren"])
    run = dag_run(dag)
    assert run.state == "success"
    ids = [run.xcom("gen", map_index=i)[0] for i in range(3)]
    assert len(set(ids)) == 3
    assert generations(bloom_conn) == 3


class _ListLog:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)

    def info(self, message: str, *args: Any) -> None:
        pass


def test_without_a_state_store_the_ledger_says_once_that_a_retry_may_charge_again(bloom_conn):
    """Airflow < 3.3 has no ``task_state_store``: each try posts, and each try says so once."""
    log = _ListLog()
    ledger = PaidRequestLedger({}, log)
    hook = BloomHook()
    for _ in range(2):
        ledger.run("images.generate", {"prompt": "a key"}, lambda: hook.generate_images(prompt="a key"))
    assert len(log.warnings) == 1
    assert "may be charged again" in log.warnings[0]
    assert generations(bloom_conn) == 2
