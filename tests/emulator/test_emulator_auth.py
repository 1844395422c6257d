"""Credentials, OAuth client credentials, rate limiting, error envelopes, the request log."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from airflow_provider_bloom.emulator import key_fingerprint
from airflow_provider_bloom.emulator.server import EmulatorServer

from ._helpers import data, error


def _get(server: EmulatorServer, path: str = "/account", **headers: str) -> httpx.Response:
    return httpx.get(server.base_url + path, headers=headers, timeout=10)


def test_api_key_headers(bloom_emulator: EmulatorServer) -> None:
    body = error(_get(bloom_emulator), 401, "UNAUTHORIZED")
    assert body["defined"] is True and body["message"]
    error(_get(bloom_emulator, **{"x-api-key": "sk_wrong_prefix"}), 401, "UNAUTHORIZED")
    error(_get(bloom_emulator, **{"x-api-key": "bloom_sk_"}), 401, "UNAUTHORIZED")
    assert data(_get(bloom_emulator, **{"x-api-key": "bloom_sk_anything"}))["email"]
    assert data(_get(bloom_emulator, authorization="Bearer bloom_sk_anything"))["email"]
    error(_get(bloom_emulator, authorization="Basic Ymxvb206eA=="), 401, "UNAUTHORIZED")


def test_configured_keys_and_banned_key(bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(valid_keys=["bloom_sk_good"], banned_keys=["bloom_sk_banned"])
    data(_get(bloom_emulator, **{"x-api-key": "bloom_sk_good"}))
    error(_get(bloom_emulator, **{"x-api-key": "bloom_sk_other"}), 401, "UNAUTHORIZED")
    body = error(_get(bloom_emulator, "/credits", **{"x-api-key": "bloom_sk_banned"}), 403, "ACCOUNT_BANNED")
    assert body["defined"] is True


def _token(server: EmulatorServer, **form: str) -> httpx.Response:
    return httpx.post(server.root_url + "/api/auth/oauth2/token", data=form, timeout=10)


def test_oauth_client_credentials_tokens_work_and_expire(bloom_emulator: EmulatorServer) -> None:
    grant = {"grant_type": "client_credentials", "client_id": "bloom_client_demo", "client_secret": "s3cret"}
    response = _token(bloom_emulator, **grant)
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    data(_get(bloom_emulator, authorization=f"Bearer {token['access_token']}"))
    assert _token(bloom_emulator, **{**grant, "client_secret": ""}).json() == {"error": "invalid_client"}
    assert _token(bloom_emulator, **{**grant, "client_id": "someone"}).status_code == 401
    assert _token(bloom_emulator, **{**grant, "grant_type": "password"}).json() == {
        "error": "unsupported_grant_type"
    }
    basic = httpx.post(
        bloom_emulator.root_url + "/api/auth/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("bloom_client_demo", "s3cret"),
    )
    assert basic.status_code == 200
    bloom_emulator.configure(oauth_token_ttl_seconds=0.3, oauth_clients={"cid": "sec"})
    assert _token(bloom_emulator, **grant).status_code == 401  # only the configured client now
    short = _token(
        bloom_emulator, grant_type="client_credentials", client_id="cid", client_secret="sec"
    ).json()
    assert short["expires_in"] == 0.3
    data(_get(bloom_emulator, authorization=f"Bearer {short['access_token']}"))
    time.sleep(0.35)
    body = error(_get(bloom_emulator, authorization=f"Bearer {short['access_token']}"), 401, "UNAUTHORIZED")
    assert "expired" in body["message"]


def test_rate_limit_sliding_window(bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(rate_limit_per_minute=5, rate_limit_window_seconds=1.0)
    key = {"x-api-key": "bloom_sk_busy"}
    for _ in range(5):
        data(_get(bloom_emulator, **key))
    limited = _get(bloom_emulator, **key)
    answered = time.monotonic()  # every hit so far was counted before this (the server's clock may lag)
    body = error(limited, 429, "TOO_MANY_REQUESTS")
    assert body["defined"] is True and "retry-after" not in limited.headers
    data(_get(bloom_emulator, **{"x-api-key": "bloom_sk_other_key"}))  # per key
    time.sleep(max(0.0, answered + 1.05 - time.monotonic()))
    data(_get(bloom_emulator, **key))  # the oldest hits left the window
    bloom_emulator.configure(rate_limit_retry_after=True, rate_limit_window_seconds=30.0)
    for _ in range(5):
        _get(bloom_emulator, **key)
    assert int(_get(bloom_emulator, **key).headers["retry-after"]) >= 1
    bloom_emulator.configure(rate_limit_per_minute=None)
    for _ in range(10):
        data(_get(bloom_emulator, **key))


def test_nested_error_envelope(bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(error_envelope="nested")
    response = _get(bloom_emulator)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "UNAUTHORIZED", "status": 401, "message": response.json()["error"]["message"]}
    }
    bad = httpx.get(
        bloom_emulator.base_url + "/images", params={"timeout": 296}, headers={"x-api-key": "bloom_sk_x"}
    )
    assert bad.json()["error"]["code"] == "BAD_REQUEST" and "defined" not in bad.json()["error"]
    bloom_emulator.set_credits(0)
    paid = httpx.post(
        bloom_emulator.base_url + "/images/generations",
        json={"prompt": "p", "brandSessionId": "00000000-0000-4000-8000-00000000b100"},
        headers={"x-api-key": "bloom_sk_x"},
    )
    assert paid.status_code == 402 and paid.json()["error"]["data"]["action_url"]


def test_one_log_line_per_request_without_secrets(
    bloom_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    key = "bloom_sk_do_not_log_me_123"
    token = bloom_emulator.mint_upload_token("image")
    with caplog.at_level(logging.INFO, logger="airflow_provider_bloom.emulator"):
        _get(bloom_emulator, "/images?ids=secret-query-value", **{"x-api-key": key})
        httpx.post(bloom_emulator.base_url + f"/images/uploads/file/signed/{token}", files={"file": b"x"})
        time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_bloom.emulator"]
    assert any(line.startswith("GET /api/v1/images 200 ") and line.endswith("ms") for line in lines), lines
    assert any(line.startswith("POST /api/v1/images/uploads/file/signed/*** 400 ") for line in lines), lines
    text = "\n".join(caplog.text.splitlines() + lines)
    assert key not in text and key_fingerprint(key) not in text
    assert token not in text and "secret-query-value" not in text
