"""Every paid operation against every kind of answer, with the sync and the async client.

A paid POST is sent again only after a 429 or when it provably never left. Any
other answer that is not a clean success (a 3xx, a 2xx whose ``data`` is not
what the spec promises, an id that is not a UUID, a page from a proxy) may mean
Bloom took the money: sent once, refused with "may have been charged", and the
task fails without Airflow retries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from airflow.exceptions import AirflowFailException

from airflow_provider_bloom.client.spec import operations
from airflow_provider_bloom.client.transport import AsyncBloomClient, BloomClient
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.exceptions import BloomError, BloomServerError
from airflow_provider_bloom.tasks.base import bloom_errors
from tests.helpers import fast_settings
from tests.hostile_server import Answer, HostileServer, json_answer

IMAGE = str(uuid.UUID(int=1))
TOKEN = str(uuid.UUID(int=2))
PNG = make_png(8, 8)

CALLS: dict[str, Callable[[Any], Any]] = {
    "images.generate": lambda c: c.generate_images("a cat", brand_session_id=DEFAULT_BRAND_ID),
    "images.edit": lambda c: c.edit_image(IMAGE, "bluer", brand_session_id=DEFAULT_BRAND_ID),
    "images.resize": lambda c: c.resize_image(IMAGE, "16:9", brand_session_id=DEFAULT_BRAND_ID),
    "images.removeBackground": lambda c: c.remove_background(IMAGE, brand_session_id=DEFAULT_BRAND_ID),
    "images.vectorize": lambda c: c.vectorize_image(IMAGE, brand_session_id=DEFAULT_BRAND_ID),
    "brands.create": lambda c: c.create_brand("https://example.com"),
    "images.upload": lambda c: c.upload_image("https://example.com/a.png", brand_session_id=DEFAULT_BRAND_ID),
    "images.uploadFile": lambda c: c.upload_image_file(PNG, brand_session_id=DEFAULT_BRAND_ID),
    "images.uploadFileSigned": lambda c: c.upload_image_file_signed(TOKEN, PNG),
    "brands.uploadLogoFileSigned": lambda c: c.upload_brand_logo_file_signed(DEFAULT_BRAND_ID, TOKEN, PNG),
}

NEW_ID = str(uuid.UUID(int=3))
UPLOADED = {
    "id": NEW_ID,
    "imageUrl": "https://example.com/img.png",
    "width": 8,
    "height": 8,
    "mimeType": "image/png",
    "existing": False,
}
SUCCESS: dict[str, dict[str, Any]] = {
    "images.generate": {"ids": [NEW_ID], "variantGroupId": None, "status": "pending"},
    "brands.create": {"id": NEW_ID, "status": "analyzing"},
    "brands.uploadLogoFileSigned": {"id": NEW_ID, "status": "analyzing"},
    "images.upload": UPLOADED,
    "images.uploadFile": UPLOADED,
    "images.uploadFileSigned": UPLOADED,
}


def success(op: str) -> dict[str, Any]:
    return SUCCESS.get(op, {"id": NEW_ID, "status": "pending"})


def with_bad_id(op: str) -> dict[str, Any]:
    data = dict(success(op))
    if "ids" in data:
        data["ids"] = ["../../etc/x"]
    else:
        data["id"] = "../../etc/x"
    return data


ANSWERS: dict[str, Callable[[str], Answer]] = {
    "data null": lambda op: json_answer(202, {"data": None}),
    "data list": lambda op: json_answer(202, {"data": []}),
    "data string": lambda op: json_answer(202, {"data": "x"}),
    "bare list": lambda op: json_answer(200, []),
    "data empty": lambda op: json_answer(202, {"data": {}}),
    "id not a uuid": lambda op: json_answer(202, {"data": with_bad_id(op)}),
    "302 redirect": lambda op: Answer(302, b"", {"Location": "/api/v1/elsewhere"}),
    "307 redirect": lambda op: Answer(307, b"", {"Location": "https://example.com/x"}),
    "304": lambda op: Answer(304, b""),
    "html 200": lambda op: Answer(200, "<html>ok</html>", {"Content-Type": "text/html"}),
    "empty 204": lambda op: Answer(204, b""),
    "proxy 404 page": lambda op: Answer(404, "<h1>Not Found</h1>", {"Content-Type": "text/html"}),
    "proxy 413 page": lambda op: Answer(413, "too large", {"Content-Type": "text/plain"}),
    "502 page": lambda op: Answer(502, "<h1>Bad gateway</h1>", {"Content-Type": "text/html"}),
}


def call_sync(base_url: str, op: str) -> Any:
    with BloomClient(fast_settings(base_url)) as client:
        return CALLS[op](client)


def call_async(base_url: str, op: str) -> Any:
    async def run() -> Any:
        async with AsyncBloomClient(fast_settings(base_url)) as client:
            return await CALLS[op](client)

    return asyncio.run(run())


CLIENTS = {"sync": call_sync, "async": call_async}


def test_the_table_covers_every_paid_operation():
    assert set(CALLS) == {name for name, op in operations().items() if op.paid}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", ANSWERS)
@pytest.mark.parametrize("op", CALLS)
def test_a_paid_call_that_gets_a_bad_answer_is_sent_once_and_may_have_been_charged(
    hostile: HostileServer, op: str, kind: str, client: str
):
    hostile.script(ANSWERS[kind](op))
    with pytest.raises(BloomError) as info:
        CLIENTS[client](hostile.base_url, op)
    assert len(hostile.seen) == 1, [s.path for s in hostile.seen]
    error = info.value
    assert getattr(error, "maybe_charged", False) is True
    assert "may have accepted it and charged for it" in str(error)
    assert "GET /images?limit=20" in str(error)  # what to check
    assert op in str(error)
    if kind == "id not a uuid":
        assert "must be a UUID" in str(error) and "../../etc/x" in str(error)
    # ... and the operator layer fails the task without Airflow retries.
    with pytest.raises(AirflowFailException, match="may have accepted it"):
        with bloom_errors("the call"):
            raise error


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("op", CALLS)
def test_a_paid_call_is_retried_after_429_and_then_succeeds(hostile: HostileServer, op: str, client: str):
    hostile.script(
        json_answer(429, {"code": "TOO_MANY_REQUESTS", "status": 429, "message": "slow down"}),
        json_answer(200, {"data": success(op)}),
    )
    data = CLIENTS[client](hostile.base_url, op)
    assert len(hostile.seen) == 2
    assert NEW_ID in (data.get("ids") or [data.get("id")])


@pytest.mark.parametrize("client", CLIENTS)
def test_blooms_own_refusal_of_a_paid_call_is_not_maybe_charged(hostile: HostileServer, client: str):
    hostile.script(json_answer(402, {"code": "INSUFFICIENT_CREDITS", "status": 402, "message": "no credits"}))
    with pytest.raises(BloomError) as info:
        CLIENTS[client](hostile.base_url, "images.generate")
    assert len(hostile.seen) == 1
    assert getattr(info.value, "code", None) == "INSUFFICIENT_CREDITS"
    assert not info.value.maybe_charged  # type: ignore[attr-defined]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_safe_call_with_a_malformed_answer_is_retried_then_refused(hostile: HostileServer, client: str):
    hostile.script(
        json_answer(200, {"data": {"id": "../x", "name": "n", "workspaceId": None, "workspaceName": "w"}})
    )

    async def run_async() -> Any:
        async with AsyncBloomClient(fast_settings(hostile.base_url)) as c:
            return await c.delete_brand(DEFAULT_BRAND_ID)

    with pytest.raises(BloomServerError, match="data.id must be a UUID") as info:
        if client == "sync":
            BloomClient(fast_settings(hostile.base_url)).delete_brand(DEFAULT_BRAND_ID)
        else:
            asyncio.run(run_async())
    assert not info.value.maybe_charged and info.value.code == "INVALID_ANSWER"
    assert len(hostile.seen) == 4  # not a paid call: retried up to max_retries


# -- the same promise against the emulator's own fault injection ------------------------------


@pytest.fixture
def emulator_calls(bloom_emulator, bloom_api_key):
    """Real arguments for each paid operation on the emulator (an existing image, fresh tokens)."""
    client = BloomClient(fast_settings(bloom_emulator.base_url, bloom_api_key))
    image_id = client.upload_image_file(make_png(600, 600), brand_session_id=DEFAULT_BRAND_ID)["id"]
    image_token = bloom_emulator.mint_upload_token("image", brand_id=DEFAULT_BRAND_ID)
    logo_token = bloom_emulator.mint_upload_token("logo", brand_id=DEFAULT_BRAND_ID)
    calls: dict[str, Callable[[Any], Any]] = dict(CALLS)
    calls["images.edit"] = lambda c: c.edit_image(image_id, "bluer", brand_session_id=DEFAULT_BRAND_ID)
    calls["images.resize"] = lambda c: c.resize_image(image_id, "16:9", brand_session_id=DEFAULT_BRAND_ID)
    calls["images.removeBackground"] = lambda c: c.remove_background(
        image_id, brand_session_id=DEFAULT_BRAND_ID
    )
    calls["images.vectorize"] = lambda c: c.vectorize_image(image_id, brand_session_id=DEFAULT_BRAND_ID)
    calls["images.uploadFile"] = lambda c: c.upload_image_file(
        make_png(9, 9, tint=7), brand_session_id=DEFAULT_BRAND_ID
    )
    calls["images.uploadFileSigned"] = lambda c: c.upload_image_file_signed(
        image_token, make_png(9, 9, tint=8)
    )
    calls["brands.uploadLogoFileSigned"] = lambda c: c.upload_brand_logo_file_signed(
        DEFAULT_BRAND_ID, logo_token, make_png(9, 9, tint=9)
    )
    client.close()
    return calls


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fault", ["corrupt", "status 500", "status 503", "cut_after", "truncate"])
@pytest.mark.parametrize("op", CALLS)
def test_emulator_faults_on_each_paid_call(bloom_emulator, bloom_api_key, emulator_calls, op, fault, client):
    kind, _, status = fault.partition(" ")
    bloom_emulator.add_fault(op, kind, count=1, **({"status": int(status)} if status else {}))
    before = bloom_emulator.requests()["by_operation"].get(op, 0)

    def run_sync() -> Any:
        with BloomClient(fast_settings(bloom_emulator.base_url, bloom_api_key)) as c:
            return emulator_calls[op](c)

    async def run_async() -> Any:
        async with AsyncBloomClient(fast_settings(bloom_emulator.base_url, bloom_api_key)) as c:
            return await emulator_calls[op](c)

    with pytest.raises(BloomError) as info:
        run_sync() if client == "sync" else asyncio.run(run_async())
    assert info.value.maybe_charged  # type: ignore[attr-defined]
    assert "may have accepted it and charged for it" in str(info.value)
    assert bloom_emulator.requests()["by_operation"].get(op, 0) - before == 1
    bloom_emulator.clear_violations()  # the corrupt answer is a violation on purpose
