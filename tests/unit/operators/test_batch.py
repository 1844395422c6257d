"""The batch operators under ``dag.test()`` against the emulator (HTTP on loopback).

Runs go through the ``dag_run`` fixture (tests/conftest.py), which asserts the API key appears in no
log line, XCom or rendered template field of the run.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import airflow
import pytest
from airflow.sdk import DAG
from packaging.version import Version

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.logic.batch.manifest import from_jsonl
from airflow_provider_bloom.operators.batch import (
    BloomGenerateBatchOperator,
    BloomRemoveBackgroundBatchOperator,
    BloomResizeBatchOperator,
)
from tests.helpers import NO_RETRY_WANTED, START, by_op, conn_json

HAS_TASK_STATE_STORE = Version(airflow.__version__) >= Version("3.3")


def rows(n: int, **extra: object) -> list[dict[str, object]]:
    channels = ("feed", "story", "product")
    return [
        {"prompt": f"product shot of item {i}", "sku": f"SKU-{i:04d}", "channel": channels[i % 3], **extra}
        for i in range(n)
    ]


def manifest_of(run, task_id: str) -> tuple[dict, list[dict]]:
    result = run.xcom(task_id)
    return result, from_jsonl(Path(result["manifest"].removeprefix("file://")).read_text())


@pytest.fixture
def unpaced(bloom_conn, monkeypatch):
    """``bloom_default`` with a budget far above the default 60 a minute, for the tests that are not about
    the pace (a 30-row batch would take 30 s): the pace at Bloom's limit is proven by
    tests/e2e/test_batch_e2e.py and bench/bench_batch.py, the bucket's arithmetic in
    tests/unit/test_batch_core.py."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, requests_per_minute=6000))
    return bloom_conn


def test_a_batch_generates_every_row_once_and_writes_its_manifest(unpaced, bloom_conn, dag_run, tmp_path):
    with DAG("batch_basic", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(
            task_id="gen",
            rows=rows(30, aspect_ratio="4:5"),
            defaults={"image_size": "2K"},
            output_path=str(tmp_path / "gen.jsonl"),
            deferrable=False,
        )
    run = dag_run(dag)
    assert run.state == "success", run.log[-3000:]
    result, records = manifest_of(run, "gen")
    assert by_op(bloom_conn, "images.generate") == 30  # one paid POST per row
    assert result["records"] == 30 and result["counts"] == {"completed": 30}
    assert result["credits"] == 30
    assert len(json.dumps(result)) < 1000
    assert [r["row"] for r in records] == list(range(1, 31))
    assert records[7]["sku"] == "SKU-0007" and records[7]["channel"] == "story"  # the user's columns
    assert all(len(r["image_ids"]) == 1 and r["images"][0]["status"] == "completed" for r in records)
    made = {r["id"] for r in bloom_conn.image_records() if r["source"] == "generated"}
    assert {r["image_ids"][0] for r in records} == made
    assert run.xcom("gen", "bloom_manifest_url") == result["manifest"]


def test_bad_rows_are_reported_together_and_nothing_is_sent(bloom_conn, dag_run, tmp_path):
    bad = rows(6)
    bad[1]["aspect_ratio"] = "7:3"
    bad[4]["prompt"] = ""
    bad[5]["variant_count"] = "9"
    with DAG("batch_bad_rows", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(task_id="gen", rows=bad, output_path=str(tmp_path / "m.jsonl"))
    run = dag_run(dag)
    assert run.state == "failed"
    assert "3 of 6 row(s) cannot be sent" in run.log
    for needle in ("row 2: aspect_ratio", "row 5: prompt", "row 6: variant_count"):
        assert needle in run.log
    assert bloom_conn.requests()["paid_posts"] == 0


def test_defaults_are_checked_when_the_dag_is_parsed():
    with pytest.raises(BloomInputError, match="image_size"):
        BloomGenerateBatchOperator(task_id="gen", rows=[], defaults={"image_size": "8K"})


def test_a_csv_batch_chains_into_post_processing_with_lineage(unpaced, bloom_conn, dag_run, tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text(
        "prompt,aspect_ratio,image_size,channel,sku\n"
        + "".join(
            f"shot {i},1:1,{'4K' if i == 0 else ''},{['feed', 'story', 'product'][i % 3]},S{i}\n"
            for i in range(9)
        )
    )
    with DAG("batch_chain", schedule=None, start_date=START) as dag:
        gen = BloomGenerateBatchOperator(
            task_id="gen", rows=str(csv), output_path=str(tmp_path / "gen.jsonl"), deferrable=False
        )
        stories = BloomResizeBatchOperator(
            task_id="stories",
            images=gen.output,
            where={"channel": "story"},
            target_aspect_ratio="9:16",
            output_path=str(tmp_path / "stories.jsonl"),
            deferrable=False,
        )
        products = BloomRemoveBackgroundBatchOperator(
            task_id="products",
            images=stories.output,
            where={"channel": "product"},
            output_path=str(tmp_path / "final.jsonl"),
            deferrable=False,
        )
        gen >> stories >> products
    start = float(BloomHook().get_credits()["balance"])
    run = dag_run(dag)
    assert run.state == "success", run.log[-3000:]
    assert by_op(bloom_conn, "images.generate") == 9
    assert by_op(bloom_conn, "images.resize") == 3
    assert by_op(bloom_conn, "images.removeBackground") == 3
    _, generated = manifest_of(run, "gen")
    assert generated[0]["credits"] == 2  # the 4K row
    _, final = manifest_of(run, "products")
    assert len(final) == 9  # every row, the unprocessed ones carried through
    by_sku = {r["sku"]: r for r in final}
    story, product, feed = by_sku["S1"], by_sku["S2"], by_sku["S0"]
    gen_ids = {r["sku"]: r["image_ids"][0] for r in generated}
    assert feed["operation"] == "images.generate" and feed["image_ids"] == [gen_ids["S0"]]
    assert story["operation"] == "images.resize" and story["source_image_id"] == gen_ids["S1"]
    assert product["operation"] == "images.removeBackground"
    assert product["source_image_id"] == gen_ids["S2"]
    # The earlier step, with its request as sent and what it cost for this image.
    assert product["lineage"] == [
        {
            "operation": "images.generate",
            "image_id": gen_ids["S2"],
            "prompt": "shot 2",
            "aspect_ratio": "1:1",
            "credits": 1,
        }
    ]
    assert all(r["status"] == "completed" for r in final)
    # What the manifests say was spent is what Bloom charged: a resize of a row with no image_size is
    # priced by its source's size as the generate step asked for it (Bloom's default 2K), not as 4K.
    assert story["credits"] == 1
    spent = sum(r["credits"] for r in generated) + sum(
        r["credits"] for r in final if r["operation"] != "images.generate"
    )
    # 8 generations at 2K and one at 4K, 3 resizes of 2K sources, 3 cut-outs
    assert spent == start - float(BloomHook().get_credits()["balance"]) == 10 + 3 + 3
    (resized,) = bloom_conn.image_records(story["image_ids"])
    assert (resized["width"], resized["height"]) == (1152, 2048)  # 9:16 at 2K


def test_max_credits_refuses_the_batch_before_anything_is_sent(bloom_conn, dag_run, tmp_path):
    with DAG("batch_budget", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(
            task_id="gen",
            rows=rows(10, image_size="4K"),
            max_credits=15,
            output_path=str(tmp_path / "m.jsonl"),
            **NO_RETRY_WANTED,
        )
    run = dag_run(dag)
    assert run.state == "failed"
    assert "costs 20 credits" in run.log and "max_credits=15" in run.log
    assert bloom_conn.requests()["paid_posts"] == 0


def test_the_balance_is_checked_before_anything_is_sent(bloom_conn, dag_run, tmp_path):
    bloom_conn.set_credits(balance=5)
    with DAG("batch_balance", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(task_id="gen", rows=rows(8), output_path=str(tmp_path / "m.jsonl"))
    run = dag_run(dag)
    assert run.state == "failed"
    assert "balance is 5 credits" in run.log
    assert bloom_conn.requests()["paid_posts"] == 0


def test_a_retry_resumes_with_the_rows_not_yet_submitted(bloom_conn, dag_run, tmp_path, monkeypatch):
    """Try 1 is stopped mid-batch by its execution_timeout (paced at 300/min, it cannot send 30 rows
    in 3 s); try 2 replays the journal and sends only what is left: paid POSTs equal the rows."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, requests_per_minute=300))
    with DAG("batch_resume", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(
            task_id="gen",
            rows=rows(30),
            output_path=str(tmp_path / "m.jsonl"),
            deferrable=False,
            execution_timeout=timedelta(seconds=3),
            retries=3,
            retry_delay=timedelta(0),
        )
    run = dag_run(dag)
    assert run.tries_of("gen") >= 2
    assert run.state == "success", run.log[-3000:]
    assert "Resuming batch" in run.log
    counters = bloom_conn.requests()
    assert counters["by_operation"]["images.generate"] == 30  # one paid POST per row, across tries
    assert counters["paid_posts_effective"] == 30
    _, records = manifest_of(run, "gen")
    assert [r["status"] for r in records] == ["completed"] * 30
    assert len({r["image_ids"][0] for r in records}) == 30


def test_the_download_operator_takes_a_batch_manifest(unpaced, bloom_conn, dag_run, tmp_path):
    from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator

    batch = rows(12)
    batch[3]["prompt"] = "a storm [content_safety]"  # the emulator refuses it: failed, no file
    with DAG("batch_download", schedule=None, start_date=START) as dag:
        gen = BloomGenerateBatchOperator(
            task_id="gen", rows=batch, output_path=str(tmp_path / "gen.jsonl"), deferrable=False
        )
        BloomDownloadImagesOperator(
            task_id="download",
            image_ids=gen.output,
            destination=str(tmp_path / "files"),
            name_template="{index:03d}-{image_id}{ext}",
        )
    run = dag_run(dag)
    assert run.state == "success", run.log[-3000:]
    result = run.xcom("download")
    assert result["counts"] == {"completed": 11, "failed": 1} and result["files"] == 11
    records = from_jsonl((tmp_path / "files" / "manifest.jsonl").read_text())
    assert len(records) == 12
    files = sorted(p.name for p in (tmp_path / "files").iterdir() if p.suffix == ".png")
    assert len(files) == 11
    for record in records:
        if record["status"] == "completed":
            assert Path(record["file"].removeprefix("file://")).stat().st_size == record["bytes"] > 0
            assert record["image_ids"][0] in record["file"]
        else:
            assert record["file"] is None and record["failure_reason"] == "content_safety"


def test_an_outage_that_loses_every_answer_stops_the_batch_and_nothing_is_sent_twice(
    unpaced, bloom_conn, dag_run, tmp_path
):
    """Bloom answers 503 to six POSTs in a row (each may have been charged, so none is sent again): the
    first answers lost are looked for in Bloom's list (nothing there: uncertain), the fifth stops the try,
    and the retry settles that one the same way and sends the rest."""
    bloom_conn.add_fault("images.generate", "status", count=5, status=503)
    with DAG("batch_outage", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(
            task_id="gen",
            rows=rows(12),
            output_path=str(tmp_path / "m.jsonl"),
            max_in_flight=1,
            reconcile_timeout=1,
            deferrable=False,
            retries=1,
            retry_delay=timedelta(0),
        )
    run = dag_run(dag)
    assert run.state == "success", run.log[-3000:]
    assert run.tries_of("gen") == 2
    assert "requests in a row were lost" in run.log
    counters = bloom_conn.requests()
    assert counters["by_operation"]["images.generate"] == 12  # the 5 lost ones were never sent again
    assert counters["paid_posts_effective"] == 7
    _, records = manifest_of(run, "gen")
    assert [r["status"] for r in records] == ["uncertain"] * 5 + ["completed"] * 7
    assert all(r["credits"] is None for r in records[:5])
