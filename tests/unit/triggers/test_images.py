"""BloomImagesTrigger, driven directly (``async for event in trigger.run()``) against the emulator."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers.images import BloomImagesTrigger
from tests.helpers import RECORD_FIELDS as SLIM_FIELDS
from tests.helpers import conn_json, events_of, import_string, list_calls, until


def generate(prompt: str = "a lighthouse at dawn", n: int = 1) -> list[str]:
    return list(BloomHook().generate_images(prompt=prompt, variant_count=n)["ids"])


def trigger_for(ids: list[str], seconds: float = 30, **kwargs) -> BloomImagesTrigger:
    return BloomImagesTrigger(image_ids=ids, deadline=time.time() + seconds, **kwargs)


# --------------------------------------------------------------------------- serialization


def test_serialize_round_trip_holds_only_primitives_and_no_key(bloom_conn, bloom_api_key):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    trigger = BloomImagesTrigger(
        image_ids=ids,
        deadline=1_900_000_000.5,
        poll_timeout=120,
        include_urls=True,
        retry_delay=0.5,
        not_before=1_899_999_000.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_bloom.triggers.images.BloomImagesTrigger"
    assert kwargs == {
        "image_ids": ids,
        "deadline": 1_900_000_000.5,
        "bloom_conn_id": "bloom_default",
        "poll_timeout": 120,
        "include_urls": True,
        "retry_delay": 0.5,
        "not_before": 1_899_999_000.0,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON-native
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert bloom_api_key not in json.dumps(kwargs) + repr(trigger)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image_ids": ["not-a-uuid"]}, "image_ids"),
        ({"image_ids": []}, "image_ids"),
        ({"poll_timeout": 296}, "poll_timeout"),
        ({"poll_timeout": 0}, "poll_timeout"),
        ({"deadline": "tomorrow"}, "deadline"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    args = {"image_ids": [str(uuid.uuid4())], "deadline": time.time() + 5, **kwargs}
    with pytest.raises(BloomInputError) as info:
        BloomImagesTrigger(**args)
    assert info.value.field == field


# --------------------------------------------------------------------------- events


async def test_one_success_event_with_small_records_from_one_long_poll(bloom_conn):
    ids = generate(n=3)
    before = list_calls(bloom_conn)
    events = await events_of(trigger_for(ids))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert [image["id"] for image in event["images"]] == ids
    for image in event["images"]:
        assert set(image) == SLIM_FIELDS
        assert image["status"] == "completed"
        assert image["prompt"] == "a lighthouse at dawn"
        assert image["imageUrl"].endswith(f"/img/{image['id']}")  # the short link, never a signed URL
    assert list_calls(bloom_conn) - before == 1
    assert json.loads(json.dumps(event)) == event


async def test_chunks_of_fifty_are_long_polled_concurrently(bloom_conn):
    ids = [i for _ in range(12) for i in generate(n=5)]  # 60 images -> 2 chunks
    before = list_calls(bloom_conn)
    (event,) = await events_of(trigger_for(ids))
    assert event["status"] == "success"
    assert [image["id"] for image in event["images"]] == ids
    assert list_calls(bloom_conn) - before == 2


async def test_failed_image_gives_a_failed_event_with_the_reason(bloom_conn):
    good = generate("a calm sea")
    bad = generate("a storm [content_safety]")
    (event,) = await events_of(trigger_for(good + bad))
    assert event["status"] == "failed"
    by_id = {image["id"]: image for image in event["images"]}
    assert by_id[good[0]]["status"] == "completed"
    assert by_id[bad[0]]["status"] == "failed"
    assert by_id[bad[0]]["failureReason"] == "content_safety"
    assert "1 of 2" in event["message"]


async def test_deadline_gives_a_timeout_event_with_the_running_images(bloom_conn):
    bloom_conn.configure(generation_seconds=60)
    ids = generate(n=2)
    # 3 s with 1 s long-polls: at least one answer lands before the deadline even on a loaded machine
    # (with 1.2 s, a first poll started late could still be out when the deadline came, status None)
    (event,) = await events_of(trigger_for(ids, seconds=3, poll_timeout=1))
    assert event["status"] == "timeout"
    assert {image["status"] for image in event["images"]} <= {"pending", "generating"}
    assert "2 of 2" in event["message"]


async def test_include_urls_keeps_signed_urls(bloom_conn):
    ids = generate()
    (event,) = await events_of(trigger_for(ids, include_urls=True))
    url = event["images"][0]["imageUrl"]
    assert url and "/img/" not in url  # Bloom's signed download URL, asked for explicitly


async def test_unknown_image_gives_a_permanent_error_event(bloom_conn):
    ghost = str(uuid.uuid4())
    (event,) = await events_of(trigger_for(generate() + [ghost]))
    assert event["status"] == "error"
    assert event["permanent"] is True
    assert ghost in event["message"]


async def test_bad_key_gives_a_permanent_error_event_with_blooms_code(bloom_conn, bloom_api_key, monkeypatch):
    ids = generate()
    bloom_conn.configure(valid_keys=[bloom_api_key])
    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_OTHER", conn_json(bloom_conn.base_url, key="bloom_sk_revoked_0000")
    )
    (event,) = await events_of(trigger_for(ids, bloom_conn_id="bloom_other"))
    assert event["status"] == "error"
    assert event["code"] == "UNAUTHORIZED"
    assert event["permanent"] is True
    assert "bloom_sk_revoked_0000" not in json.dumps(event)


# --------------------------------------------------------------------------- resilience


async def test_a_429_storm_beyond_the_clients_retries_is_outlasted(bloom_conn, monkeypatch):
    """The client gives up at once (max_retries=0); the trigger's own loop re-issues until the storm ends."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    ids = generate(n=2)
    bloom_conn.add_fault("images.list", "status", count=6, status=429, retry_after="0")
    (event,) = await events_of(trigger_for(ids))
    assert event["status"] == "success"
    statuses = bloom_conn.requests()["by_operation_status"]["images.list"]
    assert statuses == {"429": 6, "200": 1}


@pytest.mark.parametrize(("kind", "status"), [("status", 503), ("cut_before", None), ("cut_after", None)])
async def test_server_and_network_errors_are_outlasted(bloom_conn, monkeypatch, kind, status):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    ids = generate()
    bloom_conn.add_fault("images.list", kind, count=2, status=status)
    (event,) = await events_of(trigger_for(ids, retry_delay=0.01))
    assert event["status"] == "success"
    assert list_calls(bloom_conn) == 3


async def test_restart_mid_wait_keeps_the_deadline_and_reads_only(bloom_conn):
    """Cancel the trigger while its long-poll is held (a triggerer going down), rebuild it from its
    serialized kwargs (another triggerer) and let it finish: same deadline, nothing paid again."""
    bloom_conn.configure(generation_seconds=1.5)
    ids = generate(n=2)
    paid = bloom_conn.requests()["paid_posts"]
    first = trigger_for(ids)
    task = asyncio.ensure_future(events_of(first))
    await until(lambda: list_calls(bloom_conn) >= 1, "the first long-poll")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    classpath, kwargs = first.serialize()
    second = import_string(classpath)(**kwargs)
    assert second.deadline == first.deadline
    (event,) = await events_of(second)
    assert event["status"] == "success"
    assert bloom_conn.requests()["paid_posts"] == paid


async def test_two_triggers_on_the_same_ids_both_succeed(bloom_conn):
    bloom_conn.configure(generation_seconds=0.5)
    ids = generate(n=3)
    paid = bloom_conn.requests()["paid_posts"]
    a, b = await asyncio.gather(events_of(trigger_for(ids)), events_of(trigger_for(ids)))
    assert a == b
    assert a[0]["status"] == "success"
    assert bloom_conn.requests()["paid_posts"] == paid


async def test_the_event_loop_keeps_running_while_the_trigger_waits(bloom_conn):
    """Another coroutine makes progress during the long-poll: the trigger never blocks the loop."""
    bloom_conn.configure(generation_seconds=1.0)
    ids = generate()
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.ensure_future(heartbeat())
    (event,) = await events_of(trigger_for(ids))
    done.set()
    await beat
    assert event["status"] == "success"
    assert ticks > 10
