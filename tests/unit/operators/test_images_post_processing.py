"""Edit / resize / remove-background / vectorize operators, run with dag.test() over HTTP against the
emulator.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.links import image_links
from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomRemoveBackgroundOperator,
    BloomResizeImageOperator,
    BloomVectorizeImageOperator,
)
from tests.helpers import bloom_dag, by_op, completed_images, conn_json


def images(ids: list[str]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in BloomHook().list_images(ids=ids)["images"]}


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# --------------------------------------------------------------------------- post-processing


def test_post_processing_operators_take_ids_or_records_and_return_new_ids(bloom_conn, dag_run, request):
    sources = completed_images(2, aspect_ratio="1:1")
    first, second = (r["id"] for r in sources)
    with bloom_dag(request.node.name, params={"image": first, "colour": "teal"}) as dag:
        BloomResizeImageOperator(task_id="resize", image_ids=sources, target_aspect_ratio="9:16")
        BloomRemoveBackgroundOperator(
            task_id="remove_bg", image_ids=[first, second], wait_for_completion=True, deferrable=False
        )
        BloomVectorizeImageOperator(
            task_id="vectorize", image_ids=first, wait_for_completion=True, deferrable=True
        )
        BloomEditImageOperator(
            task_id="edit",
            image_ids="{{ params.image }}",
            prompt="make the sky {{ params.colour }}",
            reference_image_ids=[{"id": second}],
        )
    out = dag_run(dag)

    assert out.states == dict.fromkeys(("resize", "remove_bg", "vectorize", "edit"), "success"), out.errors
    resized = out.xcom("resize")
    assert len(resized) == 2 and all(UUID_RE.match(i) for i in resized) and not set(resized) & {first, second}
    found = images(resized)
    assert {found[i]["actionType"] for i in resized} == {"resize"}
    assert {found[i]["aspectRatio"] for i in resized} == {"9:16"}

    removed = out.xcom("remove_bg")  # waited: the finished records
    assert [r["status"] for r in removed] == ["completed", "completed"]
    assert {r["actionType"] for r in removed} == {"remove-background"}

    (vector,) = out.xcom("vectorize")  # waited in the triggerer
    assert vector["status"] == "completed" and vector["actionType"] == "vectorize"

    (edited,) = out.xcom("edit")
    record = BloomHook().get_image(edited)
    assert record["actionType"] == "edit" and record["prompt"] == "make the sky teal"

    seen = bloom_conn.requests()["by_operation"]
    assert (seen["images.resize"], seen["images.removeBackground"]) == (2, 2)
    assert (seen["images.vectorize"], seen["images.edit"]) == (1, 1)

    # Every task that created images links each of them ("Bloom image", "Bloom image 2", ...).
    made = {
        "resize": resized,
        "remove_bg": [r["id"] for r in removed],
        "vectorize": [vector["id"]],
        "edit": [edited],
    }
    for task, new_ids in made.items():
        links = [out.xcom(task, link.xcom_key) for link in image_links()]
        expected = [f"{bloom_conn.root_url}/img/{i}" for i in new_ids]
        assert links[: len(expected)] == expected, task
        assert not any(links[len(expected) :]), task  # Airflow stores "" for the rest: no button


def test_post_processing_refuses_bad_inputs_before_spending(bloom_conn, dag_run, request):
    (done,) = completed_images(1, aspect_ratio="1:1")
    (failed,) = completed_images(1, prompt="[content_safety] a forbidden thing")
    hook = BloomHook()
    (vector,) = hook.wait_for_images([hook.vectorize_image(done["id"])["id"]], timeout=30)
    bloom_conn.configure(generation_seconds=600)  # from here on, new images stay pending
    pending = hook.generate_images(prompt="slow one")["ids"][0]
    missing = str(uuid.uuid4())
    before = bloom_conn.requests()["by_operation"]

    with bloom_dag(request.node.name) as dag:
        BloomResizeImageOperator(
            task_id="malformed", image_ids="{{ 'not-a-uuid' }}", target_aspect_ratio="9:16"
        )
        BloomRemoveBackgroundOperator(task_id="pending", image_ids=[done["id"], pending])
        BloomVectorizeImageOperator(task_id="failed", image_ids=failed)
        BloomEditImageOperator(task_id="missing", image_ids=missing, prompt="brighter")
        BloomResizeImageOperator(task_id="same_ratio", image_ids=done, target_aspect_ratio="1:1")
        BloomResizeImageOperator(task_id="bad_ratio", image_ids=done, target_aspect_ratio="{{ '9:17' }}")
        BloomResizeImageOperator(task_id="svg", image_ids=vector, target_aspect_ratio="16:9")
        BloomEditImageOperator(task_id="empty_prompt", image_ids=done, prompt="{{ '' }}")
    out = dag_run(dag)

    assert set(out.states.values()) == {"failed"}
    assert set(out.tries.values()) == {1}, "bad input must fail without Airflow retries"
    assert "Invalid image_ids" in out.error("malformed") and "not-a-uuid" in out.error("malformed")
    assert f"image {pending} is not completed yet" in out.error("pending")
    assert done["id"] not in out.error("pending")
    assert f"image {failed['id']} failed (content_safety)" in out.error("failed")
    assert f"image {missing} was not found" in out.error("missing")
    assert "is already 1:1" in out.error("same_ratio")
    assert "Invalid target_aspect_ratio" in out.error("bad_ratio") and "'9:16'" in out.error("bad_ratio")
    assert f"image {vector['id']} is an SVG" in out.error("svg")
    assert "Invalid prompt" in out.error("empty_prompt")
    assert bloom_conn.requests()["by_operation"] == {
        **before,
        "images.list": bloom_conn.requests()["by_operation"]["images.list"],
    }, "nothing but free look-ups may be sent"


def test_literal_arguments_are_checked_when_the_dag_is_parsed():
    with pytest.raises(BloomInputError, match="target_aspect_ratio.*'9:16'"):
        BloomResizeImageOperator(task_id="r", image_ids=str(uuid.uuid4()), target_aspect_ratio="9:17")
    with pytest.raises(BloomInputError, match="image_ids"):
        BloomRemoveBackgroundOperator(task_id="b", image_ids=["nope"])
    with pytest.raises(BloomInputError, match="image_size"):
        BloomEditImageOperator(task_id="e", image_ids=str(uuid.uuid4()), prompt="x", image_size="8K")
    with pytest.raises(BloomInputError, match="on_failure"):
        BloomVectorizeImageOperator(task_id="v", image_ids=str(uuid.uuid4()), on_failure="explode")


def test_permanent_failure_mid_batch_names_the_image_and_keeps_what_was_created(bloom_conn, dag_run, request):
    first, second = completed_images(2)
    bloom_conn.set_credits(1)  # one remove-background can be paid, the second cannot
    with bloom_dag(request.node.name) as dag:
        BloomRemoveBackgroundOperator(task_id="remove_bg", image_ids=[first, second])
    out = dag_run(dag)

    assert out.states["remove_bg"] == "failed" and out.tries["remove_bg"] == 1
    message = out.error("remove_bg")
    created = BloomHook().list_images(action_type="remove-background")["images"]
    assert len(created) == 1
    assert f"image {second['id']}" in message and "INSUFFICIENT_CREDITS" in message
    assert f"already created: ['{created[0]['id']}']" in message


def test_a_retry_after_a_transient_error_does_not_pay_again(bloom_conn, dag_run, monkeypatch, request):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    first, second = completed_images(2, aspect_ratio="1:1")
    bloom_conn.add_fault("images.resize", "delay", delay_seconds=0)  # the first resize passes...
    bloom_conn.add_fault("images.resize", "status", status=429)  # ...the second is rate limited
    with bloom_dag(request.node.name) as dag:
        BloomResizeImageOperator(task_id="resize", image_ids=[first, second], target_aspect_ratio="16:9")
    out = dag_run(dag)

    assert out.states["resize"] == "success" and out.tries["resize"] == 2
    assert "TOO_MANY_REQUESTS" in out.error("resize")  # try 1 failed on the second image
    resized = BloomHook().list_images(action_type="resize")["images"]
    assert sorted(r["id"] for r in resized) == sorted(out.xcom("resize"))  # two images, not three
    assert by_op(bloom_conn, "images.resize") == 3  # 1 accepted + 1 refused in try 1, 1 in try 2
