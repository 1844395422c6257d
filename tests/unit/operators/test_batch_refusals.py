"""A batch with a refused prompt, made again on ``standard``: one extra generation, charged once, its
credits in the manifest, the summary and XCom ``bloom_credits`` equal to the emulator's balance drop."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk import DAG

from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.logic.batch.manifest import from_jsonl
from airflow_provider_bloom.operators import _batch
from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator
from tests.helpers import NO_RETRY_WANTED, REPO, START, balance, by_op, load_module

#: The how-to's snippets (docs/howto/refusals.md includes them): the tests run exactly that code.
SNIPPETS = load_module(REPO / "docs" / "howto" / "snippets" / "refusals.py", "bloom_refusal_snippets")


ROWS = [
    {"prompt": "a lighthouse at dusk", "sku": "A", "image_size": "4K"},
    {"prompt": "a duel at dawn [content_safety]", "sku": "B", "image_size": "4K"},
    {"prompt": "a quiet harbour", "sku": "C"},
]


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_refused_row_is_made_again_on_standard_once_and_a_retry_pays_nothing_more(
    bloom_conn, dag_run, tmp_path, monkeypatch, deferrable
):
    real = _batch.BloomBatchOperator._write_manifest
    calls: list[int] = []

    def write_manifest(self, run, waited):  # the first try dies at the very end (after all the paying)
        records = real(self, run, waited)
        if waited:
            calls.append(1)
            if len(calls) == 1:
                raise BloomError("the worker died after the batch was paid for")
        return records

    monkeypatch.setattr(_batch.BloomBatchOperator, "_write_manifest", write_manifest)
    start = balance()
    with DAG(f"batch_refused_{deferrable}", schedule=None, start_date=START) as dag:
        SNIPPETS.regenerating_batch(
            ROWS,
            str(tmp_path / "gen.jsonl"),
            deferrable=deferrable,
            defer_after=0,
            min_defer_seconds=0,
            retries=1,
            retry_delay=timedelta(0),
        )
    run = dag_run(dag)
    assert run.state_of("generate") == "success", run.log[-3000:]
    assert run.tries_of("generate") == 2
    result = run.xcom("generate")
    records = from_jsonl(Path(result["manifest"].removeprefix("file://")).read_text())
    refused = records[1]
    assert refused["sku"] == "B" and refused["status"] == "completed"
    assert [
        (a["model"], a["reason"], a["status"], a["failure_reason"]) for a in refused["attempt_history"]
    ] == [
        (None, None, "failed", "content_safety"),
        ("standard", "content_safety", "completed", None),
    ]
    (final,) = bloom_conn.image_records(refused["image_ids"])
    assert final["model"] == "standard" and refused["image_ids"] == refused["attempt_history"][1]["image_ids"]
    assert [r["status"] for r in records] == ["completed"] * 3 and "attempt_history" not in records[0]
    spent = run.xcom("generate", "bloom_credits")
    assert by_op(bloom_conn, "images.generate") == 4  # three rows and exactly one extra generation
    drop = start - balance()
    assert drop == 2 + 2 + 2 + 1  # 4K, 4K refused (charged), 4K on standard, 2K
    assert refused["credits"] == 4 and sum(r["credits"] for r in records) == drop
    assert result["credits"] == spent["credits"] == drop
    assert spent["this_try"] == 0 and spent["reused"] == drop  # the retry sent nothing
    assert spent["by_kind"] == {"generate": drop}


def test_a_row_sent_again_only_within_max_credits(bloom_conn, dag_run, tmp_path):
    start = balance()
    with DAG("batch_refused_budget", schedule=None, start_date=START) as dag:
        BloomGenerateBatchOperator(
            task_id="gen",
            rows=ROWS,
            on_refused="regenerate",
            max_credits=6,  # the rows cost 5; the extra attempt (2) would pass it
            output_path=str(tmp_path / "gen.jsonl"),
            deferrable=False,
            **NO_RETRY_WANTED,
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "success", run.log[-3000:]
    assert by_op(bloom_conn, "images.generate") == 3
    assert start - balance() == 5 == run.xcom("gen", "bloom_credits")["credits"]
    assert "is not sent again on standard: max_credits=6, 5 credit(s) spent so far, and it costs 2" in run.log


def test_an_edit_batch_makes_refused_edits_again_per_image(bloom_conn, dag_run, tmp_path):
    from airflow_provider_bloom.operators.batch import BloomEditBatchOperator

    with DAG("batch_refused_edit", schedule=None, start_date=START) as dag:
        gen = BloomGenerateBatchOperator(
            task_id="gen", rows=ROWS[::2], output_path=str(tmp_path / "gen.jsonl"), deferrable=False
        )
        BloomEditBatchOperator(
            task_id="edit",
            images=gen.output,
            prompt="at night [content_safety:pro]",
            model="pro",
            on_refused="regenerate",
            output_path=str(tmp_path / "edit.jsonl"),
            deferrable=False,
            **NO_RETRY_WANTED,
        )
    start = balance()
    run = dag_run(dag)
    assert run.state == "success", run.log[-3000:]
    result = run.xcom("edit")
    records = from_jsonl(Path(result["manifest"].removeprefix("file://")).read_text())
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert [[a["model"] for a in r["attempt_history"]] for r in records] == [["pro", "standard"]] * 2
    assert by_op(bloom_conn, "images.edit") == 4
    # 4K + 2K generations (3), then per image an edit on pro and one on standard (2K: 1 each)
    assert start - balance() == 3 + 4 == run.xcom("gen", "bloom_credits")["credits"] + result["credits"]
