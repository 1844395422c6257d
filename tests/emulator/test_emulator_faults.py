"""Injected faults as real clients (requests and httpx) see them, counters, reset, response validation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import requests

from airflow_provider_bloom.client.spec import PAID_OPERATIONS
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID, EmulatorAdminError, key_fingerprint
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.emulator.server import EmulatorServer

from ._helpers import data, error, generate

GENERATE = {"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID}


def _post_with_requests(server: EmulatorServer, key: str) -> requests.Response:
    return requests.post(
        f"{server.base_url}/images/generations", json=GENERATE, headers={"x-api-key": key}, timeout=10
    )


def _post_with_httpx(server: EmulatorServer, key: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/images/generations", json=GENERATE, headers={"x-api-key": key}, timeout=10
    )


def _generated(server: EmulatorServer) -> int:
    return sum(1 for r in server.image_records() if r["source"] == "generated")


def test_status_faults_with_and_without_retry_after(
    bloom_emulator: EmulatorServer, api: httpx.Client
) -> None:
    bloom_emulator.add_fault("images.generate", "status", status=503, retry_after="2")
    bloom_emulator.add_fault("account.get", "status", count=2, status=429)
    bloom_emulator.add_fault("credits.get", "status", status=429, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    unavailable = api.post("/images/generations", json=GENERATE)
    body = error(unavailable, 503, "SERVICE_UNAVAILABLE")
    assert unavailable.headers["retry-after"] == "2" and body["defined"] is False
    assert _generated(bloom_emulator) == 0  # the request had no effect
    for _ in range(2):
        limited = api.get("/account")
        assert error(limited, 429, "TOO_MANY_REQUESTS")["defined"] is True
        assert "retry-after" not in limited.headers
    assert api.get("/credits").headers["retry-after"] == "Wed, 21 Oct 2026 07:28:00 GMT"
    data(api.get("/account"))  # the faults are used up
    assert generate(api)["ids"]
    bloom_emulator.add_fault("brands.create", "status", status=500)
    assert (
        error(api.post("/brands", json={"url": "https://x.example"}), 500, "INTERNAL_ERROR")["defined"]
        is True
    )
    seen = bloom_emulator.requests()
    assert seen["by_operation_status"]["account.get"] == {"429": 2, "200": 1}
    assert seen["by_operation_status"]["images.generate"] == {"503": 1, "202": 1}


def test_wildcard_fault_and_delay(bloom_emulator: EmulatorServer, api: httpx.Client) -> None:
    bloom_emulator.add_fault("*", "status", status=502)
    error(api.get("/workspaces"), 502, "BAD_GATEWAY")
    data(api.get("/workspaces"))
    bloom_emulator.add_fault("account.get", "delay", delay_seconds=0.4)
    started = time.monotonic()
    data(api.get("/account"))
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    data(api.get("/account"))
    assert time.monotonic() - started < 0.3
    assert bloom_emulator.faults() == []
    bloom_emulator.add_fault("account.get", "status", status=503, count=3)
    bloom_emulator.clear_faults()
    data(api.get("/account"))


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_cut_before_loses_the_request(
    bloom_emulator: EmulatorServer, bloom_api_key: str, client: str
) -> None:
    bloom_emulator.add_fault("images.generate", "cut_before")
    if client == "requests":
        with pytest.raises(requests.ConnectionError):
            _post_with_requests(bloom_emulator, bloom_api_key)
    else:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            _post_with_httpx(bloom_emulator, bloom_api_key)
    assert _generated(bloom_emulator) == 0
    credits = httpx.get(bloom_emulator.base_url + "/credits", headers={"x-api-key": bloom_api_key}).json()
    assert credits["data"]["balance"] == 1000
    seen = bloom_emulator.requests()
    assert (seen["paid_posts"], seen["paid_posts_effective"]) == (1, 0)
    assert seen["by_operation_status"]["images.generate"] == {"cut": 1}


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_cut_after_charges_but_loses_the_answer(
    bloom_emulator: EmulatorServer, bloom_api_key: str, client: str
) -> None:
    bloom_emulator.add_fault("images.generate", "cut_after")
    if client == "requests":
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            _post_with_requests(bloom_emulator, bloom_api_key)
    else:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            _post_with_httpx(bloom_emulator, bloom_api_key)
    assert _generated(bloom_emulator) == 1  # the paid work happened
    credits = httpx.get(bloom_emulator.base_url + "/credits", headers={"x-api-key": bloom_api_key}).json()
    assert credits["data"]["balance"] == 999
    seen = bloom_emulator.requests()
    assert (seen["paid_posts"], seen["paid_posts_effective"]) == (1, 1)


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_truncated_body(bloom_emulator: EmulatorServer, bloom_api_key: str, client: str) -> None:
    bloom_emulator.add_fault("images.generate", "truncate")
    if client == "requests":
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _post_with_requests(bloom_emulator, bloom_api_key)
        # streamed: status and headers arrive intact, the body does not
        bloom_emulator.add_fault("account.get", "truncate")
        response = requests.get(
            f"{bloom_emulator.base_url}/account",
            headers={"x-api-key": bloom_api_key},
            stream=True,
            timeout=10,
        )
        assert response.status_code == 200 and int(response.headers["content-length"]) > 10
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _ = response.content
    else:
        with pytest.raises(httpx.RemoteProtocolError):
            _post_with_httpx(bloom_emulator, bloom_api_key)
    assert _generated(bloom_emulator) == 1
    assert bloom_emulator.requests()["by_operation_status"]["images.generate"] == {"202": 1}


def test_faults_on_file_downloads(bloom_emulator: EmulatorServer, api: httpx.Client) -> None:
    image_id = generate(api)["ids"][0]
    image = data(api.get(f"/images/{image_id}", params={"wait": "true", "timeout": 5}))
    bloom_emulator.add_fault("files.download", "cut_before")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(image["imageUrl"], follow_redirects=True)
    assert httpx.get(image["imageUrl"], follow_redirects=True).status_code == 200


def test_counters_and_reset(bloom_emulator: EmulatorServer, api: httpx.Client, bloom_api_key: str) -> None:
    generate(api)
    data(api.get("/account"))
    httpx.get(bloom_emulator.base_url + "/account", headers={"authorization": "Bearer bloom_sk_second"})
    seen = bloom_emulator.requests()
    assert seen["total"] == 3 and seen["paid_posts"] == 1
    assert seen["by_operation"] == {"images.generate": 1, "account.get": 2}
    assert seen["by_key"] == {key_fingerprint(bloom_api_key): 2, key_fingerprint("bloom_sk_second"): 1}
    assert (
        key_fingerprint(bloom_api_key)
        == "key:" + __import__("hashlib").sha256(bloom_api_key.encode()).hexdigest()[:12]
    )
    bloom_emulator.add_fault("account.get", "status", status=503)
    bloom_emulator.set_credits(1)
    bloom_emulator.reset()
    assert bloom_emulator.requests()["total"] == 0
    assert bloom_emulator.faults() == []
    assert data(api.get("/account"))["email"]  # the fault went with the reset
    assert data(api.get("/credits"))["balance"] == 1000
    assert bloom_emulator.image_records() and _generated(bloom_emulator) == 0


def test_paid_posts_counts_the_clients_paid_list(bloom_emulator: EmulatorServer, api: httpx.Client) -> None:
    """``paid_posts`` counts what the client never sends twice: the signed logo PUT, not search nor PUT."""
    generate(api)
    logo = {"file": ("logo.png", make_png(64, 64), "image/png")}
    data(api.post("/images/search", json={"brandSessionId": DEFAULT_BRAND_ID, "query": "logo"}))
    data(api.put(f"/brands/{DEFAULT_BRAND_ID}/logo", json={"logoUrl": "https://acme.example/logo.png"}), 202)
    data(api.put(f"/brands/{DEFAULT_BRAND_ID}/logo/file", files=logo), 202)
    assert bloom_emulator.requests()["paid_posts"] == 1
    token = bloom_emulator.mint_upload_token("logo", brand_id=DEFAULT_BRAND_ID)
    signed = f"{bloom_emulator.base_url}/brands/{DEFAULT_BRAND_ID}/logo/file/signed/{token}"
    data(httpx.put(signed, files=logo), 202)
    seen = bloom_emulator.requests()
    assert "brands.uploadLogoFileSigned" in PAID_OPERATIONS
    assert (seen["paid_posts"], seen["paid_posts_effective"]) == (2, 2)


def test_admin_rejects_bad_requests(bloom_emulator: EmulatorServer) -> None:
    with pytest.raises(EmulatorAdminError, match="unknown operation"):
        bloom_emulator.add_fault("images.nope", "status", status=500)
    with pytest.raises(EmulatorAdminError, match="kind"):
        bloom_emulator.add_fault("*", "explode")
    with pytest.raises(EmulatorAdminError, match="status"):
        bloom_emulator.add_fault("*", "status")
    with pytest.raises(EmulatorAdminError, match="unknown config"):
        bloom_emulator.configure(no_such_field=1)
    with pytest.raises(EmulatorAdminError, match="generation_seconds"):
        bloom_emulator.configure(generation_seconds="fast")
    with pytest.raises(EmulatorAdminError, match="unknown workspace"):
        bloom_emulator.set_credits(5, workspace_id="ws_missing")


def test_response_validation_records_a_violation(bloom_emulator: EmulatorServer, api: httpx.Client) -> None:
    bloom_emulator.add_fault("account.get", "corrupt")
    response = api.get("/account")
    assert response.status_code == 200 and response.json() == {"data": {}}
    (violation,) = bloom_emulator.violations()
    assert violation["operation"] == "account.get" and violation["status"] == 200
    assert "email" in violation["problem"]
    bloom_emulator.clear_violations()  # acknowledged, so the fixture's own check passes
    data(api.get("/account"))
    assert bloom_emulator.violations() == []


def test_the_fixture_fails_a_test_that_received_a_violating_response(tmp_path: Path) -> None:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import httpx

            def test_gets_a_bad_answer(bloom_emulator, bloom_api_key):
                bloom_emulator.add_fault("workspaces.list", "corrupt")
                httpx.get(bloom_emulator.base_url + "/workspaces", headers={"x-api-key": bloom_api_key})
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0, result.stdout
    assert (
        "break the spec" in result.stdout and "workspaces.list GET /api/v1/workspaces -> 200" in result.stdout
    )
