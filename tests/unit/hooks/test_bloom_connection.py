"""The connection (URI, JSON, extras, OAuth) and secret hygiene.
(Provider registration and the CLI: tests/unit/test_init.py.)"""

from __future__ import annotations

import logging

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.transport import BloomClient
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.exceptions import BloomAuthError, BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.hooks.connection import settings_from_connection
from tests.helpers import API_KEY, conn_json, fast_settings


def test_uri_connection_with_extras(monkeypatch, bloom_emulator):
    hostport = bloom_emulator.base_url.split("://", 1)[1].split("/", 1)[0]  # 127.0.0.1:PORT
    uri = (
        f"bloom://:{API_KEY}@{hostport}/api%2Fv1?scheme=http&auth_header=bearer&timeout=12&max_retries=1"
        f"&brand_session_id={DEFAULT_BRAND_ID}"
    )
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_URI", uri)
    hook = BloomHook(bloom_conn_id="bloom_uri")
    s = hook.settings
    assert s.base_url == bloom_emulator.base_url
    assert s.auth_header == "bearer" and s.timeout == 12 and s.max_retries == 1
    assert s.brand_session_id == DEFAULT_BRAND_ID and s.api_key == API_KEY
    assert hook.test_connection()[0]


def test_uri_connection_with_the_whole_base_url_encoded_in_the_host(monkeypatch, bloom_emulator):
    from urllib.parse import quote

    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_URI", f"bloom://:{API_KEY}@{quote(bloom_emulator.base_url, safe='')}"
    )
    hook = BloomHook(bloom_conn_id="bloom_uri")
    assert hook.settings.base_url == bloom_emulator.base_url
    assert hook.get_account()["email"] == "dev@emulator.local"


def test_empty_host_defaults_to_blooms_base_url():
    class Conn:
        host = ""
        password = "bloom_sk_abc"
        extra_dejson: dict = {}

    assert settings_from_connection(Conn()).base_url == "https://www.trybloom.ai/api/v1"


def test_bad_extras_are_named():
    class Conn:
        host = "https://www.trybloom.ai/api/v1"
        password = "bloom_sk_abc"
        extra_dejson = {"timeout": "soon"}

    with pytest.raises(BloomInputError, match="timeout"):
        settings_from_connection(Conn())
    Conn.extra_dejson = {"auth_header": "cookie"}
    with pytest.raises(BloomInputError, match="auth_header"):
        settings_from_connection(Conn())


@pytest.mark.parametrize("auth_header", ["x-api-key", "bearer"])
def test_both_auth_headers_work(bloom_emulator, monkeypatch, auth_header):
    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_emulator.base_url, auth_header=auth_header)
    )
    ok, message = BloomHook().test_connection()
    assert ok and message.endswith(" as dev@emulator.local"), message


def test_test_connection_reports_a_bad_key(bloom_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_emulator.base_url, key="wrong"))
    ok, message = BloomHook().test_connection()
    assert not ok and "UNAUTHORIZED" in message and "wrong" not in message


def test_oauth_client_credentials_obtains_and_refreshes_the_token(bloom_emulator):
    bloom_emulator.configure(oauth_token_ttl_seconds=1)
    settings = ClientSettings(
        base_url=bloom_emulator.base_url,
        oauth_client_id="bloom_client_demo",
        oauth_client_secret="s3cret-value",
    )
    client = BloomClient(settings)
    assert client.get_account()["email"]
    first = client._token.value
    assert settings.token_url == bloom_emulator.root_url + "/api/auth/oauth2/token"
    import time

    time.sleep(1.2)  # let the 1-second token expire; the client must fetch a new one by itself
    assert client.get_account()["email"]
    assert client._token.value != first
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in repr(client)


def test_oauth_with_a_bad_secret_fails_clearly(bloom_emulator):
    bloom_emulator.configure(oauth_clients={"bloom_client_demo": "right"})
    client = BloomClient(
        ClientSettings(
            base_url=bloom_emulator.base_url, oauth_client_id="bloom_client_demo", oauth_client_secret="no"
        )
    )
    with pytest.raises(BloomAuthError, match="OAuth token request failed"):
        client.get_account()


async def test_async_operations_used_by_triggers(bloom_conn):
    hook = BloomHook()
    async with await hook.aget_client() as client:
        assert (await client.get_account())["email"] == "dev@emulator.local"
        started = await client.generate_images("async wait")
        page = await client.list_images(ids=started["ids"], wait=True, timeout=10)
        assert [i["status"] for i in page["images"]] == ["completed"]
        one = await client.get_image(started["ids"][0], wait=True, timeout=5)
        assert one["status"] == "completed"
        brand = await client.get_brand(DEFAULT_BRAND_ID, wait=True, timeout=5)
        assert brand["status"] == "ready"


def test_key_never_in_reprs_messages_or_logs(bloom_emulator, caplog):
    caplog.set_level(logging.DEBUG)
    settings = fast_settings(bloom_emulator.base_url, max_retries=1)
    client = BloomClient(settings)
    bloom_emulator.add_fault("account.get", "status", count=1, status=503)
    client.get_account()
    bloom_emulator.add_fault("images.generate", "status", count=1, status=500)
    with pytest.raises(Exception) as info:
        client.generate_images("boom", brand_session_id=DEFAULT_BRAND_ID)
    texts = [repr(settings), repr(client), str(info.value), repr(info.value), caplog.text, repr(BloomHook())]
    texts.append(repr(client.prepare("account.get")))
    for text in texts:
        assert API_KEY not in text


def test_key_is_not_sent_to_another_host_on_redirect(bloom_emulator, bloom_api_key):
    """`/img/{id}` on the API host redirects to `localhost`: the download must arrive without credentials."""
    port = bloom_emulator.base_url.split(":")[2].split("/")[0]
    bloom_emulator.configure(download_base_url=f"http://localhost:{port}")
    client = BloomClient(
        ClientSettings(
            base_url=bloom_emulator.base_url, api_key=bloom_api_key, brand_session_id=DEFAULT_BRAND_ID
        )
    )
    started = client.generate_images("download me")
    client.list_images(ids=started["ids"], wait=True, timeout=10)
    image = client.get_image(started["ids"][0])
    with client.open_download(image["imageUrl"]) as resp:
        assert resp.url.startswith("http://localhost:")
        assert b"".join(resp.chunks(8))[:8] == b"\x89PNG\r\n\x1a\n"
    counters = bloom_emulator.requests()
    assert counters["file_requests"] >= 1
    assert counters["file_requests_with_credentials"] == 0
