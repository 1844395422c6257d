"""A server that echoes credentials (a 401 quoting the key, a 502 page dumping the request headers)
never gets them into exception text, trigger events or reprs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.transport import AsyncBloomClient, BloomClient
from airflow_provider_bloom.exceptions import BloomAPIError, BloomError
from tests.hostile_server import Answer, HostileServer, json_answer

KEY = "bloom_sk_live_SECRET0123456789"
CLIENT_SECRET = "oauth-client-secret-XYZ987"
TOKEN = "oauth-access-token-ABC123"


def echo_answers(secret: str) -> dict[str, Answer]:
    return {
        "401 quoting it": json_answer(
            401, {"code": "UNAUTHORIZED", "status": 401, "message": f"API key {secret} is not valid"}
        ),
        "403 data holding it": json_answer(
            403,
            {
                "code": "FORBIDDEN",
                "status": 403,
                "message": "no",
                "data": {"key": secret, "x": [quote(secret)]},
            },
        ),
        "502 page echoing headers": Answer(
            502, f"<pre>Bad gateway\nx-api-key: {secret}\nAuthorization: Bearer {secret}</pre>", {}
        ),
        "nested envelope": json_answer(
            400, {"error": {"code": "BAD", "message": f'bad header "{json.dumps(secret)[1:-1]}"'}}
        ),
        "success breaking the spec": json_answer(200, {"data": {"email": {"echo": secret}, "name": None}}),
    }


def settings(base_url: str, **overrides: Any) -> ClientSettings:
    values: dict[str, Any] = dict(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
    values.update(overrides)
    return ClientSettings(**values)


def run(client_kind: str, base_url: str, **overrides: Any) -> BloomError:
    async def run_async() -> Any:
        async with AsyncBloomClient(settings(base_url, **overrides)) as c:
            return await c.get_account()

    with pytest.raises(BloomError) as info:
        if client_kind == "sync":
            BloomClient(settings(base_url, **overrides)).get_account()
        else:
            asyncio.run(run_async())
    return info.value


def assert_clean(error: BaseException, *secrets: str) -> None:
    texts = [str(error), repr(error), repr(error.args)]
    if isinstance(error, BloomAPIError):
        texts += [error.message, json.dumps(error.data)]
    for text in texts:
        for secret in secrets:
            assert secret not in text and quote(secret) not in text, text


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("kind", list(echo_answers("x")))
def test_an_echoed_api_key_is_redacted(hostile: HostileServer, client, kind):
    hostile.script(echo_answers(KEY)[kind])
    error = run(client, hostile.base_url)
    assert_clean(error, KEY)
    assert "***" in str(error) or "***" in json.dumps(getattr(error, "data", None))


@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_echoed_oauth_client_secret_is_redacted(hostile: HostileServer, client):
    hostile.script(
        json_answer(
            401, {"code": "INVALID_CLIENT", "message": f"client_secret={CLIENT_SECRET} does not match"}
        )
    )
    error = run(
        client,
        hostile.base_url,
        api_key=None,
        oauth_client_id="bloom_client_x",
        oauth_client_secret=CLIENT_SECRET,
    )
    assert "OAuth token request failed" in str(error)
    assert_clean(error, CLIENT_SECRET)


@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_echoed_oauth_access_token_is_redacted(hostile: HostileServer, client):
    hostile.script(
        json_answer(200, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}),
        json_answer(403, {"code": "FORBIDDEN", "message": f"token {TOKEN} lacks scope"}),
    )
    error = run(
        client,
        hostile.base_url,
        api_key=None,
        oauth_client_id="bloom_client_x",
        oauth_client_secret=CLIENT_SECRET,
    )
    assert getattr(error, "code", None) == "FORBIDDEN"
    assert_clean(error, TOKEN, CLIENT_SECRET)


def test_the_oauth_token_holder_repr_hides_the_token(hostile: HostileServer):
    hostile.script(
        json_answer(200, {"access_token": TOKEN, "expires_in": 3600}),
        json_answer(200, {"data": {"email": "a@b.c", "name": None}}),
    )
    client = BloomClient(
        settings(
            hostile.base_url,
            api_key=None,
            oauth_client_id="bloom_client_x",
            oauth_client_secret=CLIENT_SECRET,
        )
    )
    client.get_account()
    assert client._token is not None and client._token.value == TOKEN
    for text in (
        repr(client._token),
        str(client._token),
        repr(client),
        repr(client.settings),
        repr(vars(client)),
    ):
        assert TOKEN not in text, text


def test_trigger_event_message_has_no_echoed_key(hostile: HostileServer, monkeypatch):
    from airflow_provider_bloom.triggers.images import BloomImagesTrigger

    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_TEST_ECHO",
        json.dumps(
            {"conn_type": "bloom", "host": hostile.base_url, "password": KEY, "extra": {"max_retries": 0}}
        ),
    )
    hostile.script(echo_answers(KEY)["401 quoting it"])
    trigger = BloomImagesTrigger(
        image_ids=[str(uuid.uuid4())], deadline=time.time() + 30, bloom_conn_id="bloom_test_echo"
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(first_event())
    assert payload["status"] == "error" and payload.get("code") == "UNAUTHORIZED"
    assert KEY not in json.dumps(payload) and "***" in payload["message"]
