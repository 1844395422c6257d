"""Edit / resize / remove-background / vectorize / upload / search / list / delete operators, run with
dag.test() over HTTP against the emulator.

Also home of the small dag.test() helpers (``bloom_dag``, ``run_dag``) the other operator tests import.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, ObjectStoragePath
from airflow_helpers import DagResult
from airflow_helpers import run_dag as run_dag_and_collect
from conftest import API_KEY, conn_json

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.png import make_png, make_svg
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.links import image_links
from airflow_provider_bloom.operators.images import (
    DeleteImagesOperator,
    EditImageOperator,
    ListImagesOperator,
    RemoveBackgroundOperator,
    ResizeImageOperator,
    SearchImagesOperator,
    UploadImageOperator,
    VectorizeImageOperator,
)

# --------------------------------------------------------------------------- dag.test() helpers

_FAILURES: dict[tuple[str, str], list[str]] = {}


def _record_failure(context: Any) -> None:
    ti, exc = context["ti"], context.get("exception")
    _FAILURES.setdefault((ti.dag_id, ti.task_id), []).append(f"{type(exc).__name__}: {exc}")


def bloom_dag(name: str, **default_args: Any) -> DAG:
    """A DAG for dag.test(): one retry without delay (so a test sees whether a failure was retried)."""
    dag_id = re.sub(r"[^A-Za-z0-9_]+", "_", name)[:200]
    args = {
        "retries": 1,
        "retry_delay": timedelta(0),
        "on_failure_callback": _record_failure,
        "on_retry_callback": _record_failure,
        **default_args,
    }
    return DAG(dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1), default_args=args)


@dataclass
class Outcome:
    """What a run did, per task: state, try number, return value and failure messages."""

    result: DagResult
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.result.state

    @property
    def states(self) -> dict[str, str | None]:
        return {task: state for (task, _), (state, _) in self.result.tasks.items()}

    @property
    def tries(self) -> dict[str, int]:
        return {task: tries for (task, _), (_, tries) in self.result.tasks.items()}

    @property
    def xcom(self) -> dict[str, Any]:
        return {task: self.result.xcom(task) for (task, _) in self.result.tasks}

    def error(self, task_id: str) -> str:
        return "\n".join(self.errors.get(task_id, []))


def run_dag(dag: DAG, **test_kwargs: Any) -> Outcome:
    """``airflow_helpers.run_dag`` plus the failure messages recorded by ``bloom_dag``'s callbacks."""
    for key in [k for k in _FAILURES if k[0] == dag.dag_id]:
        del _FAILURES[key]
    result = run_dag_and_collect(dag, **test_kwargs)
    errors = {task: msgs for (dag_id, task), msgs in _FAILURES.items() if dag_id == dag.dag_id}
    assert API_KEY not in repr(result.xcoms()) + repr(errors), "the API key leaked into an XCom or an error"
    return Outcome(result, errors)


def completed_images(n: int = 1, prompt: str = "a lighthouse at dawn", **kwargs: Any) -> list[dict[str, Any]]:
    """Setup: generate ``n`` variants and wait for them (through the hook, over HTTP)."""
    hook = BloomHook()
    ids = hook.generate_images(prompt=prompt, variant_count=n, **kwargs)["ids"]
    return hook.wait_for_images(ids, timeout=30)


def by_op(emulator: Any, operation: str) -> int:
    return int(emulator.requests()["by_operation"].get(operation, 0))


def images(ids: list[str]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in BloomHook().list_images(ids=ids)["images"]}


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --------------------------------------------------------------------------- post-processing


def test_post_processing_operators_take_ids_or_records_and_return_new_ids(bloom_conn, request):
    sources = completed_images(2, aspect_ratio="1:1")
    first, second = (r["id"] for r in sources)
    with bloom_dag(request.node.name, params={"image": first, "colour": "teal"}) as dag:
        ResizeImageOperator(task_id="resize", image_ids=sources, target_aspect_ratio="9:16")
        RemoveBackgroundOperator(
            task_id="remove_bg", image_ids=[first, second], wait_for_completion=True, deferrable=False
        )
        VectorizeImageOperator(
            task_id="vectorize", image_ids=first, wait_for_completion=True, deferrable=True
        )
        EditImageOperator(
            task_id="edit",
            image_ids="{{ params.image }}",
            prompt="make the sky {{ params.colour }}",
            reference_image_ids=[{"id": second}],
        )
    out = run_dag(dag)

    assert out.states == dict.fromkeys(("resize", "remove_bg", "vectorize", "edit"), "success"), out.errors
    resized = out.xcom["resize"]
    assert len(resized) == 2 and all(UUID_RE.match(i) for i in resized) and not set(resized) & {first, second}
    found = images(resized)
    assert {found[i]["actionType"] for i in resized} == {"resize"}
    assert {found[i]["aspectRatio"] for i in resized} == {"9:16"}

    removed = out.xcom["remove_bg"]  # waited: the finished records
    assert [r["status"] for r in removed] == ["completed", "completed"]
    assert {r["actionType"] for r in removed} == {"remove-background"}

    (vector,) = out.xcom["vectorize"]  # waited in the triggerer
    assert vector["status"] == "completed" and vector["actionType"] == "vectorize"

    (edited,) = out.xcom["edit"]
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
        links = [out.result.xcom(task, link.xcom_key) for link in image_links()]
        expected = [f"{bloom_conn.root_url}/img/{i}" for i in new_ids]
        assert links[: len(expected)] == expected, task
        assert not any(links[len(expected) :]), task  # Airflow stores "" for the rest: no button


def test_post_processing_refuses_bad_inputs_before_spending(bloom_conn, request):
    (done,) = completed_images(1, aspect_ratio="1:1")
    (failed,) = completed_images(1, prompt="[content_safety] a forbidden thing")
    hook = BloomHook()
    (vector,) = hook.wait_for_images([hook.vectorize_image(done["id"])["id"]], timeout=30)
    bloom_conn.configure(generation_seconds=600)  # from here on, new images stay pending
    pending = hook.generate_images(prompt="slow one")["ids"][0]
    missing = str(uuid.uuid4())
    before = bloom_conn.requests()["by_operation"]

    with bloom_dag(request.node.name) as dag:
        ResizeImageOperator(task_id="malformed", image_ids="{{ 'not-a-uuid' }}", target_aspect_ratio="9:16")
        RemoveBackgroundOperator(task_id="pending", image_ids=[done["id"], pending])
        VectorizeImageOperator(task_id="failed", image_ids=failed)
        EditImageOperator(task_id="missing", image_ids=missing, prompt="brighter")
        ResizeImageOperator(task_id="same_ratio", image_ids=done, target_aspect_ratio="1:1")
        ResizeImageOperator(task_id="bad_ratio", image_ids=done, target_aspect_ratio="{{ '9:17' }}")
        ResizeImageOperator(task_id="svg", image_ids=vector, target_aspect_ratio="16:9")
        EditImageOperator(task_id="empty_prompt", image_ids=done, prompt="{{ '' }}")
    out = run_dag(dag)

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
        ResizeImageOperator(task_id="r", image_ids=str(uuid.uuid4()), target_aspect_ratio="9:17")
    with pytest.raises(BloomInputError, match="image_ids"):
        RemoveBackgroundOperator(task_id="b", image_ids=["nope"])
    with pytest.raises(BloomInputError, match="image_size"):
        EditImageOperator(task_id="e", image_ids=str(uuid.uuid4()), prompt="x", image_size="8K")
    with pytest.raises(BloomInputError, match="on_failure"):
        VectorizeImageOperator(task_id="v", image_ids=str(uuid.uuid4()), on_failure="explode")


def test_permanent_failure_mid_batch_names_the_image_and_keeps_what_was_created(bloom_conn, request):
    first, second = completed_images(2)
    bloom_conn.set_credits(1)  # one remove-background can be paid, the second cannot
    with bloom_dag(request.node.name) as dag:
        RemoveBackgroundOperator(task_id="remove_bg", image_ids=[first, second])
    out = run_dag(dag)

    assert out.states["remove_bg"] == "failed" and out.tries["remove_bg"] == 1
    message = out.error("remove_bg")
    created = BloomHook().list_images(action_type="remove-background")["images"]
    assert len(created) == 1
    assert f"image {second['id']}" in message and "INSUFFICIENT_CREDITS" in message
    assert f"already created: ['{created[0]['id']}']" in message


def test_a_retry_after_a_transient_error_does_not_pay_again(bloom_conn, monkeypatch, request):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    first, second = completed_images(2, aspect_ratio="1:1")
    bloom_conn.add_fault("images.resize", "delay", delay_seconds=0)  # the first resize passes...
    bloom_conn.add_fault("images.resize", "status", status=429)  # ...the second is rate limited
    with bloom_dag(request.node.name) as dag:
        ResizeImageOperator(task_id="resize", image_ids=[first, second], target_aspect_ratio="16:9")
    out = run_dag(dag)

    assert out.states["resize"] == "success" and out.tries["resize"] == 2
    assert "TOO_MANY_REQUESTS" in out.error("resize")  # try 1 failed on the second image
    resized = BloomHook().list_images(action_type="resize")["images"]
    assert sorted(r["id"] for r in resized) == sorted(out.xcom["resize"])  # two images, not three
    assert by_op(bloom_conn, "images.resize") == 3  # 1 accepted + 1 refused in try 1, 1 in try 2


# --------------------------------------------------------------------------- uploads


def test_upload_from_path_object_storage_url_and_signed_token(bloom_conn, tmp_path, request):
    local = tmp_path / "local.png"
    local.write_bytes(make_png(640, 480))
    stored = tmp_path / "stored.png"
    stored.write_bytes(make_png(800, 600, tint=7))
    signed = tmp_path / "signed.png"
    signed.write_bytes(make_png(320, 200, tint=9))
    token = bloom_conn.mint_upload_token("image", brand_id=DEFAULT_BRAND_ID)
    url = "https://cdn.example.com/photos/hero.png?signature=TOPSECRET"
    with bloom_dag(request.node.name) as dag:
        first = UploadImageOperator(
            task_id="upload", images=[str(local), ObjectStoragePath(f"file://{stored}"), url]
        )
        again = UploadImageOperator(task_id="again", images=str(local))
        token_upload = UploadImageOperator(task_id="signed", images=[signed], upload_tokens=[token])
        first >> again >> token_upload
    out = run_dag(dag)

    assert set(out.states.values()) == {"success"}, out.errors
    result = out.xcom["upload"]
    assert len(result["image_ids"]) == 3 and result["existing_ids"] == []
    assert [u["existing"] for u in result["uploads"]] == [False, False, False]
    assert (result["uploads"][0]["width"], result["uploads"][0]["height"]) == (640, 480)
    assert result["uploads"][2]["source"] == "https://cdn.example.com/photos/hero.png"
    assert "TOPSECRET" not in repr(out.xcom)
    assert out.xcom["again"]["existing_ids"] == [result["image_ids"][0]]
    assert len(out.xcom["signed"]["image_ids"]) == 1
    seen = bloom_conn.requests()["by_operation"]
    assert (seen["images.uploadFile"], seen["images.upload"], seen["images.uploadFileSigned"]) == (3, 1, 1)


def test_upload_checks_size_and_format_before_sending(bloom_conn, tmp_path, request):
    good = tmp_path / "good.png"
    good.write_bytes(make_png(64, 64))
    big = tmp_path / "big.png"
    big.write_bytes(make_png(64, 64) + b"\0" * (10 * 1024 * 1024))
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * 64)
    svg = tmp_path / "logo.svg"
    svg.write_bytes(make_svg(100, 100))
    with bloom_dag(request.node.name) as dag:
        UploadImageOperator(task_id="big", images=[good, big])
        UploadImageOperator(task_id="gif", images=[gif])
        UploadImageOperator(task_id="svg", images=[svg])
        UploadImageOperator(task_id="missing", images=[tmp_path / "nope.png"])
        UploadImageOperator(task_id="tokens", images=[good, big], upload_tokens=[str(uuid.uuid4())])
        UploadImageOperator(task_id="bloom_refuses", images="https://example.com/download-fails.png")
    out = run_dag(dag)

    assert set(out.states.values()) == {"failed"} and set(out.tries.values()) == {1}
    assert f"{big} is {big.stat().st_size} bytes; Bloom accepts at most" in out.error("big")
    assert "is not an image; Bloom accepts PNG, JPEG, WEBP, AVIF" in out.error("gif")
    assert "is image/svg+xml" in out.error("svg")
    assert "does not exist" in out.error("missing")
    assert "one single-use token per file source" in out.error("tokens")
    assert "DOWNLOAD_FAILED" in out.error("bloom_refuses")
    seen = bloom_conn.requests()["by_operation"]
    assert "images.uploadFile" not in seen and "images.uploadFileSigned" not in seen


# --------------------------------------------------------------------------- search, list, delete


def test_search_feeds_reference_image_ids(bloom_conn, request):
    (subject,) = completed_images(1)
    with bloom_dag(request.node.name) as dag:
        search = SearchImagesOperator(task_id="search", query="{{ 'drone in flight' }}", limit=5)
        EditImageOperator(
            task_id="edit", image_ids=subject, prompt="add the drone", reference_image_ids=search.output
        )
        SearchImagesOperator(task_id="nothing", query="submarine volcano", fail_if_empty=True)
        SearchImagesOperator(task_id="bad_brand", query="drone", brand_session_id="{{ 'not-a-brand' }}")
    out = run_dag(dag)

    assert out.states == {"search": "success", "edit": "success", "nothing": "failed", "bad_brand": "failed"}
    found = out.xcom["search"]
    library = BloomHook().list_images(source="scraped", brand_session_id=DEFAULT_BRAND_ID)["images"]
    drone = next(r for r in library if "drone" in (r.get("description") or "").lower())
    assert found[0] == drone["id"]
    assert "no image in the brand's library matches 'submarine volcano'" in out.error("nothing")
    assert "Invalid brand_session_id" in out.error("bad_brand")
    assert out.tries["nothing"] == out.tries["bad_brand"] == 1


def test_list_and_delete_any_number_of_images(bloom_conn, request):
    made = [r["id"] for r in completed_images(3)]
    strangers = [str(uuid.uuid4()) for _ in range(49)]  # not Bloom's ids: skipped, not errors
    with bloom_dag(request.node.name) as dag:
        listed = ListImagesOperator(task_id="list", image_ids=made)
        one = ListImagesOperator(task_id="one", image_ids=made[0])
        generated = ListImagesOperator(task_id="generated", source="generated", max_results=2)
        delete_many = DeleteImagesOperator(task_id="delete_many", image_ids=[made[:2], strangers])
        delete_one = DeleteImagesOperator(task_id="delete_one", image_ids=made[2])
        delete_gone = DeleteImagesOperator(task_id="delete_gone", image_ids=strangers[0])
        DeleteImagesOperator(task_id="delete_bad", image_ids="{{ 'x' }}")
        [listed, one, generated] >> delete_many >> delete_one >> delete_gone
    out = run_dag(dag)

    assert [r["id"] for r in out.xcom["list"]] == made
    assert [r["id"] for r in out.xcom["one"]] == made[:1] and out.xcom["one"][0]["status"] == "completed"
    assert len(out.xcom["generated"]) == 2
    assert out.xcom["delete_many"] == {"requested": 51, "deleted_count": 2}
    assert out.xcom["delete_one"] == {"requested": 1, "deleted_count": 1}
    assert out.xcom["delete_gone"] == {"requested": 1, "deleted_count": 0}
    assert out.states["delete_bad"] == "failed" and "Invalid image_ids" in out.error("delete_bad")
    seen = bloom_conn.requests()["by_operation"]
    assert seen["images.deleteMany"] == 2  # 51 ids: chunks of 50 and 1
    assert seen["images.delete"] == 2 and seen["images.get"] == 1
    assert BloomHook().list_images(ids=made)["images"] == []
