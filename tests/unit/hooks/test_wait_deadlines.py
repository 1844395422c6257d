"""A wait keeps its deadline while Bloom answers 503s (no client retries stacked under it), and the two
worker pre-waits behave alike: defer on a transient error, fail the task on a permanent one.

Over real HTTP to the emulator, with the connection's default retry settings (5 retries, which alone
take 8 s or more of backoff).
"""

from __future__ import annotations

import time
import uuid

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.sensors.brands import BloomBrandSensor
from airflow_provider_bloom.sensors.images import BloomImageSensor

#: How far past its deadline a wait may return (one request's round trip and scheduling).
SLACK = 1.5


def asked(emulator, operation: str) -> int:
    return int(emulator.requests()["by_operation"].get(operation, 0))


@pytest.fixture
def running(bloom_conn) -> list[str]:
    """The ids of one image that stays pending for the whole test."""
    bloom_conn.configure(generation_seconds=600)
    return BloomHook().generate_images("still running")["ids"]


def test_a_sync_wait_keeps_its_deadline_while_bloom_answers_503(bloom_conn, running):
    bloom_conn.add_fault("images.list", "status", count=1000, status=503)
    started = time.monotonic()
    records = BloomHook().wait_for_images(running, timeout=3, retry_delay=0.2)
    took = time.monotonic() - started
    assert took < 3 + SLACK, f"the wait took {took:.1f}s for a 3 s deadline"
    assert [r["status"] for r in records] == [None]  # never answered
    assert asked(bloom_conn, "images.list") >= 3  # asked again with its own backoff, within the deadline


def test_a_brief_wait_defers_at_once_on_a_503(bloom_conn, running):
    bloom_conn.add_fault("images.list", "status", count=1000, status=503)
    sensor = BloomImageSensor(task_id="s", image_ids=running, deferrable=True, defer_after=5)
    started = time.monotonic()
    assert sensor.brief_wait(running).records is None  # defer now
    assert time.monotonic() - started < SLACK
    assert asked(bloom_conn, "images.list") == 1  # sent once: no client retries under defer_after


def test_a_brand_wait_keeps_its_deadline_while_bloom_answers_503(bloom_conn):
    bloom_conn.configure(brand_ready_seconds=600)
    brand_id = BloomHook().create_brand("https://acme.example.com")["id"]
    bloom_conn.add_fault("brands.get", "status", count=1000, status=503)
    started = time.monotonic()
    with pytest.raises(Exception, match="503"):
        BloomHook().wait_for_brand(brand_id, timeout=2, retry_delay=0.2)
    assert time.monotonic() - started < 2 + SLACK
    assert asked(bloom_conn, "brands.get") >= 2


def test_both_pre_waits_defer_on_a_transient_error(bloom_conn, running):
    bloom_conn.configure(brand_ready_seconds=600)
    brand_id = BloomHook().create_brand("https://acme.example.com")["id"]
    bloom_conn.add_fault("images.list", "status", count=1000, status=503)
    bloom_conn.add_fault("brands.get", "status", count=1000, status=503)
    images = BloomImageSensor(task_id="images", image_ids=running, deferrable=True, defer_after=5)
    brand = BloomBrandSensor(task_id="brand", brand_id=brand_id, deferrable=True, defer_after=5)
    for name, pre_wait in (
        ("images", lambda: images.wait_or_defer({}, running)),  # type: ignore[arg-type]
        ("brand", lambda: brand.execute({})),  # type: ignore[arg-type]
    ):
        started = time.monotonic()
        with pytest.raises(TaskDeferred):
            pre_wait()
        assert time.monotonic() - started < SLACK, name
    assert asked(bloom_conn, "images.list") == 1 and asked(bloom_conn, "brands.get") == 1


def test_both_pre_waits_fail_the_task_on_a_permanent_error(bloom_conn):
    images = BloomImageSensor(task_id="images", image_ids=[str(uuid.uuid4())], deferrable=True, defer_after=5)
    brand = BloomBrandSensor(task_id="brand", brand_id=str(uuid.uuid4()), deferrable=True, defer_after=5)
    with pytest.raises(AirflowFailException, match="did not return these images"):
        images.brief_wait(images.image_ids)
    with pytest.raises(AirflowFailException, match="Checking Bloom brand .* failed"):
        brand.execute({})  # type: ignore[arg-type]


def test_both_pre_waits_end_within_the_sensors_timeout(bloom_conn, running):
    """defer_after (10 s by default) never outlasts a shorter sensor timeout: a sensor with timeout=1
    waits at most 1 s in the worker, then hands the trigger what is left (at least 1 s)."""
    bloom_conn.configure(brand_ready_seconds=600)
    brand_id = BloomHook().create_brand("https://acme.example.com")["id"]
    images = BloomImageSensor(task_id="images", image_ids=running, deferrable=True, timeout=1, poll_timeout=1)
    brand = BloomBrandSensor(task_id="brand", brand_id=brand_id, deferrable=True, timeout=1)
    for name, pre_wait in (
        ("images", lambda: images.wait_or_defer({}, running)),  # type: ignore[arg-type]
        ("brand", lambda: brand.execute({})),  # type: ignore[arg-type]
    ):
        started = time.monotonic()
        with pytest.raises(TaskDeferred) as deferred:
            pre_wait()
        assert time.monotonic() - started < 1 + SLACK, name
        assert deferred.value.trigger.deadline <= time.time() + 1 + SLACK, name
    assert asked(bloom_conn, "images.list") == 1  # one 1-second long-poll, not ten
