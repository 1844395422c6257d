"""BloomBrandTrigger, driven directly (``async for event in trigger.run()``) against the emulator."""

from __future__ import annotations

import json
import time
import uuid

from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers.brands import BloomBrandTrigger
from tests.helpers import API_KEY, conn_json, events_of, import_string


def test_trigger_serializes_only_primitives_and_never_the_key(bloom_conn):
    brand_id = str(uuid.uuid4())
    trigger = BloomBrandTrigger(
        brand_id=brand_id, deadline=1_900_000_000.5, poll_timeout=60, retry_delay=0.5, not_before=1.5e9
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_bloom.triggers.brands.BloomBrandTrigger"
    assert kwargs == {
        "brand_id": brand_id,
        "deadline": 1_900_000_000.5,
        "bloom_conn_id": "bloom_default",
        "poll_timeout": 60,
        "retry_delay": 0.5,
        "not_before": 1.5e9,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)
    assert API_KEY not in json.dumps(kwargs) + repr(trigger)


async def test_trigger_fires_once_with_the_brand_when_onboarding_ends(bloom_conn):
    hook = BloomHook()
    ready = hook.create_brand("https://ready.example.com")["id"]
    failed = hook.create_brand("https://fail-brand-2.example.com")["id"]
    (ok,) = await events_of(BloomBrandTrigger(brand_id=ready, deadline=time.time() + 30))
    (bad,) = await events_of(BloomBrandTrigger(brand_id=failed, deadline=time.time() + 30))
    assert ok["status"] == "success" and ok["brand"]["status"] == "ready" and ok["brand"]["id"] == ready
    assert bad["status"] == "failed" and bad["brand"]["failure"]["code"] == "SCRAPE_FAILED"
    assert json.loads(json.dumps([ok, bad])) == [ok, bad]


async def test_trigger_times_out_and_reports_errors_as_one_event(bloom_conn):
    bloom_conn.configure(brand_ready_seconds=600)
    slow = BloomHook().create_brand("https://slow.example.com")["id"]
    (late,) = await events_of(BloomBrandTrigger(brand_id=slow, deadline=time.time() + 1.5, poll_timeout=1))
    assert late["status"] == "timeout" and late["brand"]["status"] == "analyzing"
    assert "still analyzing" in late["message"]
    (gone,) = await events_of(BloomBrandTrigger(brand_id=str(uuid.uuid4()), deadline=time.time() + 30))
    assert gone["status"] == "error" and gone["code"] == "BRAND_NOT_FOUND" and gone["permanent"] is True


async def test_trigger_rides_out_transient_errors(bloom_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    brand = BloomHook().create_brand("https://flaky.example.com")["id"]
    bloom_conn.add_fault("brands.get", "status", count=2, status=503)
    (event,) = await events_of(BloomBrandTrigger(brand_id=brand, deadline=time.time() + 30, retry_delay=0.01))
    assert event["status"] == "success"
    assert bloom_conn.requests()["by_operation_status"]["brands.get"]["503"] == 2
