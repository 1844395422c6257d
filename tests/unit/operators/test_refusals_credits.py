"""Refused images made again, credits spent and budgets of the single-image operators, against the
emulator over HTTP (``dag.test()`` through the ``dag_run`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import airflow
import pytest
from airflow.sdk import DAG
from packaging.version import Version

from airflow_provider_bloom.exceptions import BloomError, BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators import _image_work
from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomGenerateImageOperator,
    BloomResizeImageOperator,
)
from tests.helpers import NO_RETRY_WANTED, REPO, START, balance, by_op, load_module

HAS_TASK_STATE_STORE = Version(airflow.__version__) >= Version("3.3")


#: The how-to's snippets (docs/howto/refusals.md includes them): the tests run exactly that code.
SNIPPETS = load_module(REPO / "docs" / "howto" / "snippets" / "refusals.py", "bloom_refusal_snippets_single")


def completed(emulator, count: int, **body) -> list[str]:
    hook = BloomHook()
    ids = []
    for _ in range(count):
        ids += hook.generate_images(prompt="a chair", **body)["ids"]
    hook.wait_for_images(ids, timeout=10)
    return ids


@pytest.fixture
def crash_once(monkeypatch):
    """The first try dies after its paid work (a worker lost before the task ended); later tries run."""
    real = _image_work.ImageWorkOperator._final
    tries: list[int] = []

    def final(self, context, state):
        tries.append(1)
        if len(tries) == 1:
            raise BloomError("the worker died after the images were made")
        return real(self, context, state)

    monkeypatch.setattr(_image_work.ImageWorkOperator, "_final", final)
    return tries


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_refused_generation_is_made_again_on_standard_and_a_retry_pays_nothing_more(
    bloom_conn, dag_run, crash_once, deferrable
):
    start = balance()
    with DAG(f"refused_generate_{deferrable}", schedule=None, start_date=START) as dag:
        SNIPPETS.regenerating_image(
            "a duel at dawn [content_safety]",
            deferrable=deferrable,
            defer_after=0,
            min_defer_seconds=0,
            retries=1,
            retry_delay=timedelta(0),
        )
    run = dag_run(dag)
    assert run.state_of("hero_image") == "success", run.log[-3000:]
    assert run.tries_of("hero_image") == 2 and len(crash_once) == 2
    (final,) = run.xcom("hero_image")
    assert final["status"] == "completed"
    (attempts,) = run.xcom("hero_image", "bloom_attempts")
    assert [(a["model"], a["reason"], a["status"], a["failure_reason"]) for a in attempts["attempts"]] == [
        (None, None, "failed", "content_safety"),
        ("standard", "content_safety", "completed", None),
    ]
    assert attempts["final_image_ids"] == [final["id"]]
    (record,) = bloom_conn.image_records([final["id"]])
    assert record["model"] == "standard"
    spent = run.xcom("hero_image", "bloom_credits")
    if not HAS_TASK_STATE_STORE:  # Airflow < 3.3: the retry pays again (documented); credits say so
        assert by_op(bloom_conn, "images.generate") == 4
        return
    assert by_op(bloom_conn, "images.generate") == 2  # the original and exactly one more, once
    assert start - balance() == 4 == spent["credits"]  # 2 x 4K
    assert spent["this_try"] == 0 and spent["reused"] == 4  # the retry reused both attempts
    assert spent["by_kind"] == {"generate": 4}
    assert "paid by an earlier try and reused" in run.log


def test_a_refused_edit_is_made_again_per_input(bloom_conn, dag_run):
    sources = completed(bloom_conn, 2)
    with DAG("refused_edit", schedule=None, start_date=START) as dag:
        BloomEditImageOperator(
            task_id="edit",
            image_ids=sources,
            prompt="make it gloomier [content_safety:pro]",
            model="pro",
            on_refused="regenerate",
            fallback_models=["fast", "standard"],
            wait_for_completion=True,
            deferrable=False,
            **NO_RETRY_WANTED,
        )
    start = balance()
    run = dag_run(dag)
    assert run.state_of("edit") == "success", run.log[-3000:]
    report = run.xcom("edit", "bloom_attempts")
    assert [r["request"] for r in report] == sources
    for item in report:  # pro refused it, fast (the first fallback) made it
        assert [a["model"] for a in item["attempts"]] == ["pro", "fast"]
    assert by_op(bloom_conn, "images.edit") == 4
    assert start - balance() == 4 == run.xcom("edit", "bloom_credits")["credits"]


def test_report_keeps_todays_behaviour_and_other_failures_are_final(bloom_conn, dag_run):
    with DAG("refused_report", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="[content_safety] a duel", wait_for_completion=True, **NO_RETRY_WANTED
        )
        BloomGenerateImageOperator(
            task_id="on_standard_too",
            prompt="[content_safety:pro,standard] a duel",
            on_refused="regenerate",
            wait_for_completion=True,
            on_failure="ignore",
            **NO_RETRY_WANTED,
        )
        BloomGenerateImageOperator(
            task_id="limited",
            prompt="[rate_limited] a crowd",
            on_refused="regenerate",
            retry_pause=0,
            max_attempts=2,
            wait_for_completion=True,
            on_failure="ignore",
            **NO_RETRY_WANTED,
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "failed" and "content_safety" in run.log
    (report,) = run.xcom("on_standard_too", "bloom_attempts")
    assert [(a["model"], a["status"]) for a in report["attempts"]] == [
        (None, "failed"),
        ("standard", "failed"),
    ]
    (limited,) = run.xcom("limited", "bloom_attempts")  # the same model again, then max_attempts
    assert [(a["model"], a["reason"], a["failure_reason"]) for a in limited["attempts"]] == [
        (None, None, "rate_limited"),
        (None, "rate_limited", "rate_limited"),
    ]
    assert by_op(bloom_conn, "images.generate") == 3 + 2


def test_regenerate_needs_a_wait_and_good_arguments():
    with pytest.raises(BloomInputError, match="wait_for_completion"):
        BloomGenerateImageOperator(task_id="a", prompt="p", on_refused="regenerate")
    for kwargs, field in (
        ({"on_refused": "retry"}, "on_refused"),
        ({"fallback_models": ["turbo"]}, "fallback_models"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_credits": "lots"}, "max_credits"),
    ):
        with pytest.raises(BloomInputError) as err:
            BloomGenerateImageOperator(task_id="b", prompt="p", wait_for_completion=True, **kwargs)
        assert err.value.field == field


def test_a_call_that_would_pass_max_credits_is_not_sent(bloom_conn, dag_run):
    sources = completed(bloom_conn, 2)  # 2K sources: a resize costs 1 each
    start, posts = balance(), bloom_conn.requests()["paid_posts"]
    with DAG("budget", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen", prompt="a lamp", image_size="4K", max_credits=1, **NO_RETRY_WANTED
        )
        BloomResizeImageOperator(
            task_id="resize",
            image_ids=sources,
            target_aspect_ratio="9:16",
            max_credits="{{ 1 }}",
            **NO_RETRY_WANTED,
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "failed" and run.tries_of("gen") == 1
    assert (
        "max_credits=1: this task has spent 0 credit(s) so far and the next call (the generation) costs 2"
        in run.log
    )
    assert run.state_of("resize") == "failed" and run.tries_of("resize") == 1
    assert f"spent 1 credit(s) so far and the next call (resize of image {sources[1]}) costs 1" in run.log
    assert bloom_conn.requests()["paid_posts"] - posts == 1  # the first resize only
    assert start - balance() == 1
    assert run.xcom("resize", "bloom_credits")["credits"] == 1  # a failed task still says what it spent


def test_the_run_report_equals_the_balance_drop_for_every_kind_of_paid_call(bloom_conn, dag_run):
    from airflow_provider_bloom.operators.credits import BloomAccountOperator, BloomCreditsReportOperator
    from airflow_provider_bloom.operators.images import (
        BloomRemoveBackgroundOperator,
        BloomVectorizeImageOperator,
    )

    with DAG("credits_every_kind", schedule=None, start_date=START) as dag:
        account = BloomAccountOperator(task_id="account")
        gen = BloomGenerateImageOperator(
            task_id="gen", prompt="a kite", image_size="4K", variant_count=2, wait_for_completion=True
        )
        ids = gen.output  # the image records
        edit = BloomEditImageOperator(task_id="edit", image_ids=ids, prompt="at night", image_size="4K")
        resize = BloomResizeImageOperator(task_id="resize", image_ids=ids, target_aspect_ratio="9:16")
        cut = BloomRemoveBackgroundOperator(task_id="cut", image_ids=ids)
        vector = BloomVectorizeImageOperator(task_id="vector", image_ids=ids)
        report = BloomCreditsReportOperator(
            task_id="report", start_balance="{{ ti.xcom_pull('account')['credits'] }}"
        )
        account >> gen >> [edit, resize, cut, vector] >> report
    start = balance()
    run = dag_run(dag)
    assert run.state == "success", run.log[-3000:]
    result = run.xcom("report")
    assert result["by_kind"] == {
        "generate": 4,
        "edit": 4,
        "resize": 4,
        "remove_background": 2,
        "vectorize": 2,
    }
    assert result["by_task"] == {"gen": 4, "edit": 4, "resize": 4, "cut": 2, "vector": 2}
    assert result["credits"] == 16 == start - balance() == result["balance_drop"]
    assert result["matches"] is True and "a drop of 16, as computed" in run.log
