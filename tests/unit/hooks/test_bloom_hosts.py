"""Hosts typed the way people type them, TLS against a plain-HTTP server, and what the Test action says."""

from __future__ import annotations

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.transport import AsyncBloomClient, BloomClient
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.exceptions import BloomTransportError
from airflow_provider_bloom.hooks.connection import base_url_from_connection
from tests.helpers import API_KEY, free_port, use_connection


class _Conn:
    def __init__(self, host: str, port: int | None = None, schema: str = "") -> None:
        self.host, self.port, self.schema = host, port, schema


@pytest.mark.parametrize(
    ("host", "port", "schema", "extras", "expected"),
    [
        ("", None, "", {}, "https://www.trybloom.ai/api/v1"),
        ("https://www.trybloom.ai", None, "", {}, "https://www.trybloom.ai/api/v1"),
        ("https://www.trybloom.ai/", None, "", {}, "https://www.trybloom.ai/api/v1"),
        ("https://www.trybloom.ai/api/v1/", None, "", {}, "https://www.trybloom.ai/api/v1"),
        ("www.trybloom.ai", None, "", {}, "https://www.trybloom.ai/api/v1"),
        ("127.0.0.1:8787", None, "", {}, "http://127.0.0.1:8787/api/v1"),
        ("localhost", 8787, "", {}, "http://localhost:8787/api/v1"),
        ("[::1]:8787", None, "", {}, "http://[::1]:8787/api/v1"),
        ("127.0.0.1", 8787, "", {"scheme": "https"}, "https://127.0.0.1:8787/api/v1"),
        ("bloom.internal", 8443, "api/v1", {}, "https://bloom.internal:8443/api/v1"),
        ("http://127.0.0.1:8787/proxy/bloom", None, "", {}, "http://127.0.0.1:8787/proxy/bloom"),
    ],
)
def test_base_url_from_what_people_type(host, port, schema, extras, expected):
    assert base_url_from_connection(_Conn(host, port, schema), extras) == expected


def _hostport(bloom_emulator) -> str:
    return bloom_emulator.root_url.split("://", 1)[1]  # 127.0.0.1:PORT


def test_a_url_without_path_works(bloom_emulator, monkeypatch):
    ok, message = use_connection(monkeypatch, bloom_emulator.root_url).test_connection()
    assert ok, message
    assert message == f"Connected to Bloom at {bloom_emulator.base_url} as dev@emulator.local"


def test_a_loopback_host_without_scheme_works(bloom_emulator, monkeypatch):
    ok, message = use_connection(monkeypatch, _hostport(bloom_emulator)).test_connection()
    assert ok, message


def test_tls_against_plain_http_says_so_and_sends_nothing(bloom_emulator, monkeypatch):
    hook = use_connection(monkeypatch, f"https://{_hostport(bloom_emulator)}/api/v1")
    ok, message = hook.test_connection()
    assert not ok
    assert "plain HTTP" in message and "http://" in message and "nothing was sent" in message
    assert "may have been charged" not in message and "after the request was sent" not in message
    with pytest.raises(BloomTransportError) as info:
        hook.generate_images(
            "never sent", brand_session_id=DEFAULT_BRAND_ID
        )  # paid call: not retried, not "maybe charged"
    assert not info.value.maybe_charged and not info.value.retryable
    assert "plain HTTP" in str(info.value)
    assert bloom_emulator.requests()["paid_posts"] == 0


async def test_async_client_reports_tls_against_plain_http(bloom_emulator):
    settings = ClientSettings(base_url=f"https://{_hostport(bloom_emulator)}/api/v1", api_key=API_KEY)
    async with AsyncBloomClient(settings) as client:
        with pytest.raises(BloomTransportError) as info:
            await client.generate_images("never sent", brand_session_id=DEFAULT_BRAND_ID)
    assert not info.value.maybe_charged and not info.value.retryable
    assert "plain HTTP" in str(info.value)


def test_tls_failure_is_not_retried(bloom_emulator):
    """Five handshakes would give five identical failures: the client tries once."""
    settings = ClientSettings(base_url=f"https://{_hostport(bloom_emulator)}/api/v1", api_key=API_KEY)
    client = BloomClient(settings)
    attempts = []
    send = client.http.send

    def counting(*args, **kwargs):
        attempts.append(args)
        return send(*args, **kwargs)

    client.http.send = counting  # type: ignore[method-assign]
    with pytest.raises(BloomTransportError):
        client.get_account()
    assert len(attempts) == 1


def test_wrong_path_says_where_the_api_lives(bloom_emulator, monkeypatch):
    ok, message = use_connection(monkeypatch, f"{bloom_emulator.root_url}/v1").test_connection()
    assert not ok
    assert "NOT_FOUND" in message and "ending in /api/v1" in message


def test_wrong_key_says_to_check_the_key(bloom_emulator, monkeypatch):
    ok, message = use_connection(monkeypatch, bloom_emulator.base_url, key="bloom_nope").test_connection()
    assert not ok
    assert "UNAUTHORIZED" in message and "check the API key" in message and "bloom_nope" not in message


def test_missing_key_says_so(bloom_emulator, monkeypatch):
    ok, message = use_connection(monkeypatch, bloom_emulator.base_url, key="").test_connection()
    assert not ok and "no API key is set" in message


def test_unreachable_host_says_to_check_host_and_port(monkeypatch):
    port = free_port()  # a port that nothing listens on
    ok, message = use_connection(monkeypatch, f"http://127.0.0.1:{port}").test_connection()
    assert not ok
    assert f"could not connect to 127.0.0.1:{port}" in message and "host and port" in message
    assert "may have been charged" not in message


def test_bad_extra_is_named(bloom_emulator, monkeypatch):
    ok, message = use_connection(monkeypatch, bloom_emulator.base_url, timeout="soon").test_connection()
    assert not ok and "timeout" in message and message.startswith("The connection is not valid")
