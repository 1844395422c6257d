"""The emulator ships in the package and runs in docker compose: its admin API never shows secrets
and answers only loopback clients by default, it fetches URLs only where a test asks, and its
per-key state is bounded."""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.__main__ import config_from_args, parse_args
from airflow_provider_bloom.emulator.auth import RateLimiter
from airflow_provider_bloom.emulator.config import EmulatorConfig
from airflow_provider_bloom.emulator.observe import MAX_TRACKED_KEYS, Counters
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.emulator.server import EmulatorServer
from tests.hostile_server import Answer

BRAND = {"brandSessionId": DEFAULT_BRAND_ID}


def test_the_config_endpoint_never_shows_keys_or_client_secrets(bloom_emulator: EmulatorServer):
    answer = bloom_emulator.configure(
        valid_keys=["bloom_sk_secret_valid_1"],
        banned_keys=["bloom_sk_secret_banned_2"],
        oauth_clients={"bloom_client_demo": "client-secret-3"},
    )
    shown = httpx.get(bloom_emulator.root_url + "/_emulator/config").json()
    for text in (json.dumps(answer), json.dumps(shown)):
        for secret in ("bloom_sk_secret_valid_1", "bloom_sk_secret_banned_2", "client-secret-3"):
            assert secret not in text
    assert shown["valid_keys"] == ["***"] and shown["banned_keys"] == ["***"]
    assert shown["oauth_clients"] == {"bloom_client_demo": "***"}  # the client id is no secret
    # the settings still work
    ok = httpx.get(bloom_emulator.base_url + "/account", headers={"x-api-key": "bloom_sk_secret_valid_1"})
    assert ok.status_code == 200


def test_the_admin_api_answers_only_clients_in_admin_networks(bloom_api_key):
    with EmulatorServer(EmulatorConfig(admin_networks=["10.0.0.0/8"], rate_limit_per_minute=None)) as server:
        refused = httpx.get(server.root_url + "/_emulator/config")
        assert refused.status_code == 403 and "admin_networks" in refused.json()["error"]
        assert httpx.post(server.root_url + "/_emulator/reset").status_code == 403
        # the Bloom API itself is unaffected
        account = httpx.get(server.base_url + "/account", headers={"x-api-key": bloom_api_key})
        assert account.status_code == 200


def test_the_admin_api_is_loopback_only_by_default():
    config = EmulatorConfig()
    assert config.admin_allowed("127.0.0.1") and config.admin_allowed("::1")
    assert not config.admin_allowed("172.18.0.5")  # another container on a compose network
    assert not config.admin_allowed("testclient") and not config.admin_allowed(None)
    opened = config_from_args(parse_args(["--admin-from", "any"]))
    assert opened.admin_allowed("172.18.0.5") and opened.admin_allowed("2001:db8::1")
    narrow = config_from_args(parse_args(["--admin-from", "172.18.0.0/16"]))
    assert narrow.admin_allowed("172.18.0.5") and not narrow.admin_allowed("127.0.0.1")
    with pytest.raises(ValueError, match="admin_networks"):
        EmulatorConfig(admin_networks=["not a network"]).check()


def test_upload_by_url_fetches_a_loopback_service_only_when_a_test_allows_it(
    bloom_emulator: EmulatorServer, bloom_api_key, hostile
):
    hostile.script(Answer(200, make_png(40, 30), {"Content-Type": "image/png"}))
    api = httpx.Client(base_url=bloom_emulator.base_url, headers={"x-api-key": bloom_api_key})
    url = hostile.root + "/some/local/service.png"

    refused = api.post("/images/uploads", json={"imageUrl": url, **BRAND})
    assert refused.status_code == 400 and refused.json()["code"] == "DOWNLOAD_FAILED"
    assert "fetch_url_origins" in refused.json()["message"]
    assert hostile.seen == []  # the emulator made no request to the local service

    bloom_emulator.configure(fetch_url_origins=[hostile.root])
    fetched = api.post("/images/uploads", json={"imageUrl": url, **BRAND})
    assert fetched.status_code == 200, fetched.text
    assert (fetched.json()["data"]["width"], fetched.json()["data"]["height"]) == (40, 30)
    assert [s.path for s in hostile.seen] == ["/some/local/service.png"]
    bloom_emulator.clear_violations()


def test_the_cli_sets_fetch_url_origins():
    config = config_from_args(parse_args(["--fetch-url-origin", "http://127.0.0.1:9000"]))
    assert config.may_fetch("http://127.0.0.1:9000/a.png") and not config.may_fetch("http://127.0.0.1:9001/a")
    assert not EmulatorConfig().may_fetch("http://127.0.0.1:9000/a.png")


def test_rate_limit_state_is_bounded():
    limiter = RateLimiter(max_callers=100)
    for i in range(5_000):
        assert limiter.hit(f"key:{i}", limit=2, window=60) is None
    assert limiter.tracked == 100
    # the most recent callers are the ones remembered
    assert limiter.hit("key:4999", limit=2, window=60) is None
    assert limiter.hit("key:4999", limit=2, window=60) is not None


def test_rate_limit_state_is_bounded_over_http(bloom_emulator: EmulatorServer):
    bloom_emulator.configure(rate_limit_per_minute=1000)
    bloom_emulator.emulator.rate_limiter.max_callers = 50
    with httpx.Client(base_url=bloom_emulator.base_url) as api:
        for i in range(120):
            assert api.get("/credits", headers={"x-api-key": f"bloom_sk_distinct_{i}"}).status_code == 200
    assert bloom_emulator.emulator.rate_limiter.tracked == 50
    bloom_emulator.emulator.rate_limiter.max_callers = 10_000


def test_per_key_counters_are_bounded():
    counters = Counters()
    for i in range(MAX_TRACKED_KEYS + 500):
        counters.record("account.get", f"key:{i:012x}", paid=False)
    assert len(counters.by_key) == MAX_TRACKED_KEYS + 1
    assert counters.by_key["key:other"] == 500
