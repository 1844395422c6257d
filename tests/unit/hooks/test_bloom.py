"""Each of Bloom's 23 operations, through BloomHook, over real HTTP to the emulator."""

from __future__ import annotations

import io

import pytest

from airflow_provider_bloom.client.spec import operations
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.exceptions import (
    BloomAuthError,
    BloomConflictError,
    BloomError,
    BloomInputError,
    BloomNotFoundError,
    BloomPaymentError,
    BloomValidationError,
)
from airflow_provider_bloom.hooks.bloom import BloomHook


@pytest.fixture
def hook(bloom_conn) -> BloomHook:
    return BloomHook()


def generate_and_wait(hook: BloomHook, prompt: str = "a red bicycle", **kwargs) -> list[dict]:
    started = hook.generate_images(prompt, **kwargs)
    return hook.wait_for_images(started["ids"], timeout=30)


SEEN: set[str] = set()


@pytest.fixture(autouse=True)
def _record_operations(request, bloom_emulator):
    yield
    SEEN.update(op for op, n in bloom_emulator.requests()["by_operation"].items() if n)


def test_account_credits_workspaces(hook):
    assert "@" in hook.get_account()["email"]
    credits = hook.get_credits()
    assert credits["balance"] > 0 and credits["unlimited"] is False
    names = [w["name"] for w in hook.list_workspaces()["workspaces"]]
    assert "Personal" in names


def test_generate_list_get_and_wait(hook, bloom_conn):
    before = hook.get_credits()["balance"]
    started = hook.generate_images("a red bicycle", aspect_ratio="16:9", variant_count=2)
    assert started["status"] == "pending" and len(started["ids"]) == 2 and started["variantGroupId"]
    assert hook.get_credits()["balance"] == before - 2
    records = hook.wait_for_images(started["ids"], timeout=30)
    assert [r["id"] for r in records] == started["ids"]
    assert {r["status"] for r in records} == {"completed"}
    assert {r["variantGroupId"] for r in records} == {started["variantGroupId"]}
    one = hook.get_image(started["ids"][0], wait=True, timeout=5)
    assert one["status"] == "completed" and one["aspectRatio"] == "16:9" and one["width"] > one["height"]
    listed = hook.list_images(ids=started["ids"])
    assert {i["id"] for i in listed["images"]} == set(started["ids"])


def test_list_filters_and_iterates_every_page(hook):
    ids = [hook.generate_images(f"poster {n}")["ids"][0] for n in range(5)]
    hook.wait_for_images(ids, timeout=30)
    page = hook.list_images(limit=2, source="generated")
    assert len(page["images"]) == 2 and page["hasMore"] and page["nextCursor"]
    every = [i["id"] for i in hook.iter_images(limit=2, source="generated")]
    assert set(ids) <= set(every) and len(every) == len(set(every))
    done = list(hook.iter_images(status="completed", action_type="generation"))
    assert {i["status"] for i in done} == {"completed"}


def test_edit_resize_remove_background_vectorize_make_new_images(hook):
    (base,) = generate_and_wait(hook, aspect_ratio="1:1")
    edit = hook.edit_image(base["id"], "make the sky purple")
    resize = hook.resize_image(base["id"], "9:16")
    nobg = hook.remove_background(base["id"])
    vector = hook.vectorize_image(base["id"])
    new_ids = [edit["id"], resize["id"], nobg["id"], vector["id"]]
    assert len(set(new_ids) | {base["id"]}) == 5
    records = {r["id"]: r for r in hook.wait_for_images(new_ids, timeout=30)}
    assert records[edit["id"]]["actionType"] == "edit"
    assert records[resize["id"]]["actionType"] == "resize" and records[resize["id"]]["aspectRatio"] == "9:16"
    assert records[nobg["id"]]["actionType"] == "remove-background"
    assert records[vector["id"]]["actionType"] == "vectorize"


def test_post_processing_errors_surface_with_blooms_code(hook):
    (base,) = generate_and_wait(hook, aspect_ratio="1:1")
    with pytest.raises(BloomValidationError) as info:
        hook.resize_image(base["id"], "1:1")
    assert info.value.code == "SAME_ASPECT_RATIO" and info.value.status == 400
    with pytest.raises(BloomNotFoundError) as missing:
        hook.get_image("11111111-2222-4333-8444-555555555555")
    assert missing.value.code == "IMAGE_NOT_FOUND"


def test_delete_one_and_many(hook):
    ids = [hook.generate_images(f"to delete {n}")["ids"][0] for n in range(3)]
    assert hook.delete_image(ids[0])["id"] == ids[0]
    assert hook.delete_images(ids)["deletedCount"] == 2  # the first one is already gone
    with pytest.raises(BloomNotFoundError):
        hook.get_image(ids[1])


def test_uploads_by_file_path_bytes_fileobj_url_and_signed_token(hook, bloom_conn, tmp_path):
    png = make_png(8, 8, tint=1)
    path = tmp_path / "ref.png"
    path.write_bytes(png)
    first = hook.upload_image_file(str(path))
    assert first["existing"] is False and first["mimeType"] == "image/png"
    again = hook.upload_image_file(io.BytesIO(png))
    assert again["existing"] is True and again["id"] == first["id"]
    other = hook.upload_image_file(make_png(8, 8, tint=2))
    assert other["id"] != first["id"]
    by_url = hook.upload_image("https://cdn.example.com/reference.png")  # the emulator never leaves loopback
    assert by_url["id"] and by_url["existing"] is False
    token = bloom_conn.mint_upload_token("image", brand_id=DEFAULT_BRAND_ID)
    signed = hook.upload_image_file_signed(token, make_png(8, 8, tint=3))
    assert signed["id"] and signed["existing"] is False
    # uploaded images work as references
    started = hook.generate_images("in this style", reference_image_ids=[first["id"], signed["id"]])
    assert started["ids"]


def test_search_returns_candidates_usable_as_references(hook):
    found = hook.search_images("product on white background", limit=5, max_distance=2)
    assert found["query"] == "product on white background"
    assert len(found["candidates"]) >= 1
    assert all(0 <= c["distance"] <= 2 for c in found["candidates"])


def test_brand_lifecycle(hook, bloom_conn):
    created = hook.create_brand("https://acme.example", collect_images=False)
    assert created["status"] == "analyzing"
    with pytest.raises(BloomConflictError) as not_ready:
        hook.generate_images("too early", brand_session_id=created["id"])
    assert not_ready.value.code == "BRAND_NOT_READY"
    ready = hook.get_brand(created["id"], wait=True, timeout=10)
    assert ready["status"] == "ready"
    assert created["id"] in [b["id"] for b in hook.iter_brands(limit=1)]
    assert hook.list_brands(limit=100)["brands"]
    assert hook.update_brand_logo(created["id"], "https://acme.example/logo.png")["id"] == created["id"]
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'
    )
    assert hook.upload_brand_logo_file(created["id"], svg)["id"] == created["id"]
    token = bloom_conn.mint_upload_token("logo", brand_id=created["id"])
    assert hook.upload_brand_logo_file_signed(created["id"], token, make_png(8, 8))["id"] == created["id"]
    assert hook.delete_brand(created["id"])["id"] == created["id"]
    with pytest.raises(BloomNotFoundError) as gone:
        hook.get_brand(created["id"])
    assert gone.value.code == "BRAND_NOT_FOUND" and gone.value.status == 404


def test_insufficient_credits_is_a_payment_error_with_action_url(hook, bloom_conn):
    bloom_conn.set_credits(1)
    with pytest.raises(BloomPaymentError) as info:
        hook.generate_images("two variants", variant_count=2)
    assert info.value.code == "INSUFFICIENT_CREDITS" and info.value.action_url
    assert info.value.action_url in str(info.value)


def test_wrong_key_is_an_auth_error(bloom_emulator, monkeypatch):
    from tests.helpers import conn_json

    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_emulator.base_url, key="not-a-bloom-key")
    )
    with pytest.raises(BloomAuthError) as info:
        BloomHook().get_account()
    assert info.value.code == "UNAUTHORIZED"
    assert "not-a-bloom-key" not in str(info.value)


def test_every_operation_of_the_spec_was_exercised_over_http():
    """Runs last in this module: the tests above touched all 23 operationIds on the emulator."""
    assert set(operations()) - SEEN == set()
    assert len(operations()) == 23


def test_prepare_checks_and_sends_nothing_then_send_sends_once(hook, bloom_emulator):
    """The hook is the operators' way in: ``prepare`` checks against the spec without I/O, ``send``
    posts the prepared call once and returns Bloom's payload."""
    before = bloom_emulator.requests()["by_operation"].get("images.generate", 0)
    with pytest.raises(BloomInputError) as bad:
        hook.prepare("images.generate", body={"prompt": ""})
    assert "prompt" in str(bad.value)
    call = hook.prepare("images.generate", body={"prompt": "a kite", "variant_count": 2})
    assert bloom_emulator.requests()["by_operation"].get("images.generate", 0) == before
    started = hook.send(call)
    assert len(started["ids"]) == 2
    assert bloom_emulator.requests()["by_operation"]["images.generate"] == before + 1


def test_single_try_sends_each_call_once(hook, bloom_emulator):
    """The batch operators' sender does not retry: a 503 on a safe GET reaches the caller at once,
    where ``send`` (the retry policy) rides it out."""
    call = hook.prepare("account.get")
    bloom_emulator.add_fault("account.get", "status", count=1, status=503)
    with hook.single_try(connections=2) as send, pytest.raises(BloomError):
        send(call)
    bloom_emulator.add_fault("account.get", "status", count=1, status=503)
    assert "@" in hook.send(call)["email"]


def test_paginate_follows_the_cursor_from_where_asked(hook):
    ids = [hook.generate_images(f"banner {n}")["ids"][0] for n in range(3)]
    every = [i["id"] for i in hook.paginate(hook.list_images, "images", limit=1, source="generated")]
    assert set(ids) <= set(every) and len(every) == len(set(every))
    first = hook.list_images(limit=1, source="generated")
    rest = [
        i["id"]
        for i in hook.paginate(
            hook.list_images, "images", limit=1, source="generated", cursor=first["nextCursor"]
        )
    ]
    assert rest == every[1:]


def test_open_download_and_observe_answers_through_the_hook(hook):
    (image,) = generate_and_wait(hook)
    record = hook.get_image(image["id"])
    seen = []
    with hook.observe_answers(seen.append):
        hook.get_account()
    assert [e.status for e in seen] == [200] and seen[0].date and seen[0].received >= seen[0].sent
    with hook.open_download(record["imageUrl"]) as download:
        assert download.status == 200 and download.headers["content-type"].startswith("image/")
        assert b"".join(download.chunks())[:8] == b"\x89PNG\r\n\x1a\n"
    assert hook.absolute_url("/img/x").startswith(hook.settings.base_url.split("/api")[0])
