"""Upload / search / list / delete operators, run with dag.test() over HTTP against the emulator."""

from __future__ import annotations

import uuid

from airflow.sdk import ObjectStoragePath

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.png import make_png, make_svg
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators.images import BloomEditImageOperator
from airflow_provider_bloom.operators.library import (
    BloomDeleteImagesOperator,
    BloomListImagesOperator,
    BloomSearchImagesOperator,
    BloomUploadImageOperator,
)
from tests.helpers import bloom_dag, completed_images

# --------------------------------------------------------------------------- uploads


def test_upload_from_path_object_storage_url_and_signed_token(bloom_conn, dag_run, tmp_path, request):
    local = tmp_path / "local.png"
    local.write_bytes(make_png(640, 480))
    stored = tmp_path / "stored.png"
    stored.write_bytes(make_png(800, 600, tint=7))
    signed = tmp_path / "signed.png"
    signed.write_bytes(make_png(320, 200, tint=9))
    token = bloom_conn.mint_upload_token("image", brand_id=DEFAULT_BRAND_ID)
    url = "https://cdn.example.com/photos/hero.png?signature=TOPSECRET"
    with bloom_dag(request.node.name) as dag:
        first = BloomUploadImageOperator(
            task_id="upload", images=[str(local), ObjectStoragePath(f"file://{stored}"), url]
        )
        again = BloomUploadImageOperator(task_id="again", images=str(local))
        token_upload = BloomUploadImageOperator(task_id="signed", images=[signed], upload_tokens=[token])
        first >> again >> token_upload
    out = dag_run(dag)

    assert set(out.states.values()) == {"success"}, out.errors
    result = out.xcom("upload")
    assert len(result["image_ids"]) == 3 and result["existing_ids"] == []
    assert [u["existing"] for u in result["uploads"]] == [False, False, False]
    assert (result["uploads"][0]["width"], result["uploads"][0]["height"]) == (640, 480)
    assert result["uploads"][2]["source"] == "https://cdn.example.com/photos/hero.png"
    assert "TOPSECRET" not in repr(out.xcoms())
    assert out.xcom("again")["existing_ids"] == [result["image_ids"][0]]
    assert len(out.xcom("signed")["image_ids"]) == 1
    seen = bloom_conn.requests()["by_operation"]
    assert (seen["images.uploadFile"], seen["images.upload"], seen["images.uploadFileSigned"]) == (3, 1, 1)


def test_upload_checks_size_and_format_before_sending(bloom_conn, dag_run, tmp_path, request):
    good = tmp_path / "good.png"
    good.write_bytes(make_png(64, 64))
    big = tmp_path / "big.png"
    big.write_bytes(make_png(64, 64) + b"\0" * (10 * 1024 * 1024))
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * 64)
    svg = tmp_path / "logo.svg"
    svg.write_bytes(make_svg(100, 100))
    with bloom_dag(request.node.name) as dag:
        BloomUploadImageOperator(task_id="big", images=[good, big])
        BloomUploadImageOperator(task_id="gif", images=[gif])
        BloomUploadImageOperator(task_id="svg", images=[svg])
        BloomUploadImageOperator(task_id="missing", images=[tmp_path / "nope.png"])
        BloomUploadImageOperator(task_id="tokens", images=[good, big], upload_tokens=[str(uuid.uuid4())])
        BloomUploadImageOperator(task_id="bloom_refuses", images="https://example.com/download-fails.png")
    out = dag_run(dag)

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


def test_search_feeds_reference_image_ids(bloom_conn, dag_run, request):
    (subject,) = completed_images(1)
    with bloom_dag(request.node.name) as dag:
        search = BloomSearchImagesOperator(task_id="search", query="{{ 'drone in flight' }}", limit=5)
        BloomEditImageOperator(
            task_id="edit", image_ids=subject, prompt="add the drone", reference_image_ids=search.output
        )
        BloomSearchImagesOperator(task_id="nothing", query="submarine volcano", fail_if_empty=True)
        BloomSearchImagesOperator(task_id="bad_brand", query="drone", brand_session_id="{{ 'not-a-brand' }}")
    out = dag_run(dag)

    assert out.states == {"search": "success", "edit": "success", "nothing": "failed", "bad_brand": "failed"}
    found = out.xcom("search")
    library = BloomHook().list_images(source="scraped", brand_session_id=DEFAULT_BRAND_ID)["images"]
    drone = next(r for r in library if "drone" in (r.get("description") or "").lower())
    assert found[0] == drone["id"]
    assert "no image in the brand's library matches 'submarine volcano'" in out.error("nothing")
    assert "Invalid brand_session_id" in out.error("bad_brand")
    assert out.tries["nothing"] == out.tries["bad_brand"] == 1


def test_list_and_delete_any_number_of_images(bloom_conn, dag_run, request):
    made = [r["id"] for r in completed_images(3)]
    strangers = [str(uuid.uuid4()) for _ in range(49)]  # not Bloom's ids: skipped, not errors
    with bloom_dag(request.node.name) as dag:
        listed = BloomListImagesOperator(task_id="list", image_ids=made)
        one = BloomListImagesOperator(task_id="one", image_ids=made[0])
        generated = BloomListImagesOperator(task_id="generated", source="generated", max_results=2)
        delete_many = BloomDeleteImagesOperator(task_id="delete_many", image_ids=[made[:2], strangers])
        delete_one = BloomDeleteImagesOperator(task_id="delete_one", image_ids=made[2])
        delete_gone = BloomDeleteImagesOperator(task_id="delete_gone", image_ids=strangers[0])
        BloomDeleteImagesOperator(task_id="delete_bad", image_ids="{{ 'x' }}")
        [listed, one, generated] >> delete_many >> delete_one >> delete_gone
    out = dag_run(dag)

    assert [r["id"] for r in out.xcom("list")] == made
    assert [r["id"] for r in out.xcom("one")] == made[:1] and out.xcom("one")[0]["status"] == "completed"
    assert len(out.xcom("generated")) == 2
    assert out.xcom("delete_many") == {"requested": 51, "deleted_count": 2}
    assert out.xcom("delete_one") == {"requested": 1, "deleted_count": 1}
    assert out.xcom("delete_gone") == {"requested": 1, "deleted_count": 0}
    assert out.states["delete_bad"] == "failed" and "Invalid image_ids" in out.error("delete_bad")
    seen = bloom_conn.requests()["by_operation"]
    assert seen["images.deleteMany"] == 2  # 51 ids: chunks of 50 and 1
    assert seen["images.delete"] == 2 and seen["images.get"] == 1
    assert BloomHook().list_images(ids=made)["images"] == []
