"""The wait hub: real ``BloomImagesTrigger``s in one event loop (as in one triggerer) against the
emulator over loopback. (The request budget: tests/unit/test_budget.py; the shared wait state machine:
tests/unit/test_waiting.py.)
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers.brands import BloomBrandTrigger
from airflow_provider_bloom.triggers.hub import WaitHub, active_hubs, hub_for
from airflow_provider_bloom.triggers.images import BloomImagesTrigger
from tests.helpers import API_KEY, OTHER_KEY, conn_json, until


def generate(
    n_images: int = 1, prompt: str = "a lighthouse at dawn", conn_id: str = "bloom_default"
) -> list[str]:
    return list(
        BloomHook(bloom_conn_id=conn_id).generate_images(prompt=prompt, variant_count=n_images)["ids"]
    )


def trigger_for(ids: list[str], seconds: float = 60, **kwargs) -> BloomImagesTrigger:
    return BloomImagesTrigger(image_ids=ids, deadline=time.time() + seconds, **kwargs)


async def event_of(trigger) -> dict:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    return events[0]


def list_statuses(emulator) -> dict[str, int]:
    return emulator.requests()["by_operation_status"].get("images.list", {})


def hub_conn(
    monkeypatch, emulator, per_minute: int, conn_id: str = "BLOOM_DEFAULT", key: str = API_KEY
) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id}",
        conn_json(emulator.base_url, key=key, wait_requests_per_minute=per_minute, max_retries=0),
    )


# --------------------------------------------------------------------------- the hub, end to end


async def test_one_trigger_is_served_by_one_long_poll_as_before(bloom_conn):
    bloom_conn.configure(generation_seconds=0.5)
    ids = generate(3)
    before = bloom_conn.requests()["by_operation"].get("images.list", 0)
    event = await event_of(trigger_for(ids))
    assert event["status"] == "success"
    assert bloom_conn.requests()["by_operation"]["images.list"] - before == 1
    assert active_hubs() == []  # the last trigger left: the hub and its client are closed


async def test_the_hub_logs_outside_the_log_context_of_the_trigger_that_started_it(bloom_conn):
    """Airflow's triggerer files a log line under the trigger id bound in its context (structlog
    contextvars); a line for a trigger that has ended re-creates, and so empties, that trigger's log file.
    The hub is shared and outlives the trigger that started it: its lines carry no trigger's id."""
    import logging

    from structlog.contextvars import bind_contextvars, get_contextvars

    seen: list[tuple[str, dict]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), get_contextvars()))

    hub_log = logging.getLogger("airflow_provider_bloom.triggers.hub")
    handler, level = Capture(), hub_log.level
    hub_log.addHandler(handler)
    hub_log.setLevel(logging.INFO)

    async def as_the_triggerer_runs_it(trigger_id: int, ids: list[str]) -> dict:
        bind_contextvars(trigger_id=trigger_id)  # what the triggerer binds in each trigger's task
        return await event_of(trigger_for(ids))

    bloom_conn.configure(generation_seconds=0.5)
    try:
        first, second = generate(1), generate(1)
        events = await asyncio.gather(
            asyncio.create_task(as_the_triggerer_runs_it(1, first)),
            asyncio.create_task(as_the_triggerer_runs_it(2, second)),
        )
    finally:
        hub_log.removeHandler(handler)
        hub_log.setLevel(level)
    assert [e["status"] for e in events] == ["success", "success"]
    assert any("started" in message for message, _ in seen) and any("closed" in m for m, _ in seen)
    assert [(m, bound) for m, bound in seen if "trigger_id" in bound] == []


async def test_one_trigger_of_many_groups_gets_a_long_poll_per_group(bloom_conn, monkeypatch):
    """One trigger of 350 images (7 groups of 50) on a budget of 60/min (burst 6): the burst cannot
    cover a sweep round of the others, but a full group fills a sweep alone, so each group is
    long-polled: 7 requests in all, none of them a sweep (sweeping took 18 requests and ~9 s)."""
    hub_conn(monkeypatch, bloom_conn, 60)
    bloom_conn.configure(generation_seconds=1.0)
    ids = [i for n in range(70) for i in generate(5, prompt=f"catalogue {n}")]
    sweeps: list[int] = []
    sweep = WaitHub._sweep

    async def spy_sweep(self, jobs):
        sweeps.append(sum(len(j.ids) for j in jobs))
        await sweep(self, jobs)

    monkeypatch.setattr(WaitHub, "_sweep", spy_sweep)
    before = bloom_conn.requests()["by_operation"].get("images.list", 0)
    event = await event_of(trigger_for(ids))
    assert event["status"] == "success"
    assert [image["id"] for image in event["images"]] == ids
    assert sweeps == []
    assert bloom_conn.requests()["by_operation"]["images.list"] - before == 7


async def test_many_triggers_share_sweeps_of_at_most_fifty_ids_within_the_budget(bloom_conn, monkeypatch):
    """120 triggers of one image each, a budget of 60/min (burst 6): a few long-polls, then sweeps."""
    hub_conn(monkeypatch, bloom_conn, 60)
    bloom_conn.configure(generation_seconds=2.0)
    ids = [generate(1, prompt=f"tile {n}")[0] for n in range(120)]
    bloom_conn.reset_counters() if hasattr(bloom_conn, "reset_counters") else None
    before = bloom_conn.requests()["by_operation"].get("images.list", 0)
    started = time.monotonic()
    events = await asyncio.gather(*(event_of(trigger_for([i])) for i in ids))
    elapsed = time.monotonic() - started
    assert [e["status"] for e in events] == ["success"] * 120
    assert [e["images"][0]["id"] for e in events] == ids
    sent = bloom_conn.requests()["by_operation"]["images.list"] - before
    # Never more than the bucket allows: its burst plus its rate over the time taken.
    assert sent <= 6 + math.ceil(elapsed) + 1
    # And far fewer than one request per trigger: the ids were packed.
    assert sent < 40
    assert "429" not in list_statuses(bloom_conn)


async def test_the_sweep_packs_at_most_fifty_ids_per_request(bloom_conn, monkeypatch):
    """24 triggers of 5 images on a budget of 60/min (burst 6): long-polls while a token is left over
    for one sweep round of the others, then sweeps of whole groups, at most 50 ids each."""
    hub_conn(monkeypatch, bloom_conn, 60)
    bloom_conn.configure(generation_seconds=0.2)
    ids = [i for _ in range(24) for i in generate(5)]  # 120 images
    swept: list[int] = []
    long_polled: list[int] = []
    sweep, long_poll = WaitHub._sweep, WaitHub._long_poll

    async def spy_sweep(self, jobs):
        swept.append(sum(len(j.ids) for j in jobs))
        await sweep(self, jobs)

    async def spy_long_poll(self, job):
        long_polled.append(len(job.ids))
        await long_poll(self, job)

    monkeypatch.setattr(WaitHub, "_sweep", spy_sweep)
    monkeypatch.setattr(WaitHub, "_long_poll", spy_long_poll)
    await asyncio.sleep(0.5)  # every image is terminal: each id needs one answer
    events = await asyncio.gather(*(event_of(trigger_for(ids[k : k + 5])) for k in range(0, 120, 5)))
    assert all(e["status"] == "success" for e in events)
    assert swept and max(swept) <= 50
    assert swept[0] == 50  # whole groups of 5 fill a request exactly
    assert sum(swept) + sum(long_polled) == 120  # each id asked once
    assert 1 <= len(long_polled) <= 6  # no more long-polls than the burst
    assert len(swept) + len(long_polled) <= 6 + 4  # ~ the floor ceil(120/50) plus the burst's long-polls


async def test_a_429_slows_the_whole_hub_once_and_nothing_fails(bloom_conn, monkeypatch):
    hub_conn(monkeypatch, bloom_conn, 60)
    bloom_conn.configure(generation_seconds=1.0)
    ids = [generate(1, prompt=f"storm {n}")[0] for n in range(10)]
    bloom_conn.add_fault("images.list", "status", count=6, status=429)
    events = await asyncio.gather(*(event_of(trigger_for([i])) for i in ids))
    assert [e["status"] for e in events] == ["success"] * 10
    statuses = list_statuses(bloom_conn)
    assert statuses.get("429") == 6


async def test_a_cancelled_trigger_leaves_and_the_others_finish(bloom_conn):
    bloom_conn.configure(generation_seconds=1.5)
    keep = [generate(2, prompt=f"keep {n}") for n in range(3)]
    leave = generate(2, prompt="leave")
    tasks = [asyncio.ensure_future(event_of(trigger_for(ids))) for ids in keep]
    leaving = asyncio.ensure_future(event_of(trigger_for(leave)))
    await until(lambda: bool(active_hubs()) and active_hubs()[0].users == 4, "four triggers in the hub")
    hub = active_hubs()[0]
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert hub.users == 3
    assert all(leave[0] not in job.ids for job in hub._jobs)
    events = await asyncio.gather(*tasks)
    assert [e["status"] for e in events] == ["success"] * 3
    assert active_hubs() == []


async def test_one_triggers_missing_image_fails_only_that_trigger(bloom_conn, monkeypatch):
    hub_conn(monkeypatch, bloom_conn, 60)  # burst 6: most waits share sweeps
    bloom_conn.configure(generation_seconds=1.0)
    healthy = [generate(1, prompt=f"ok {n}") for n in range(12)]
    ghost = [str(uuid.uuid4())]
    events = await asyncio.gather(*(event_of(trigger_for(ids)) for ids in [*healthy, ghost]))
    assert [e["status"] for e in events[:12]] == ["success"] * 12
    assert events[12]["status"] == "error" and events[12]["permanent"] is True
    assert ghost[0] in events[12]["message"]


async def test_a_permanent_error_on_a_shared_sweep_is_asked_again_per_trigger(bloom_conn, monkeypatch):
    """Whose error is a 400 on a sweep of several triggers' ids? Each is asked alone: nobody fails blindly.

    12 triggers on 60/min (burst 6): five long-polls, then one sweep of the other seven. The first six
    requests are answered 400: each long-polled trigger fails with Bloom's code (it is its own error);
    the seven swept ones are asked alone and succeed.
    """
    hub_conn(monkeypatch, bloom_conn, 60)
    bloom_conn.configure(generation_seconds=0.2)
    groups = [generate(1, prompt=f"g {n}") for n in range(12)]
    await asyncio.sleep(0.5)
    bloom_conn.add_fault("images.list", "status", count=6, status=400)
    events = await asyncio.gather(*(event_of(trigger_for(ids)) for ids in groups))
    statuses = [e["status"] for e in events]
    assert statuses.count("error") == 5, statuses
    assert statuses.count("success") == 7, statuses
    failed = [e for e in events if e["status"] == "error"]
    assert all(e["code"] and e["permanent"] is True for e in failed)
    assert list_statuses(bloom_conn) == {"400": 6, "200": 7}


async def test_two_keys_never_share_a_hub_or_a_request(bloom_conn, monkeypatch):
    bloom_conn.configure(generation_seconds=1.0)
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_OTHER", conn_json(bloom_conn.base_url, key=OTHER_KEY))
    mine = generate(2, prompt="mine")
    theirs = generate(2, prompt="theirs", conn_id="bloom_other")
    before = dict(bloom_conn.requests()["by_key"])
    tasks = [
        asyncio.ensure_future(event_of(trigger_for(mine))),
        asyncio.ensure_future(event_of(trigger_for(theirs, bloom_conn_id="bloom_other"))),
    ]
    await until(lambda: len(active_hubs()) == 2, "two hubs")
    names = {hub.name for hub in active_hubs()}
    assert len(names) == 2
    assert not any(
        API_KEY in n or OTHER_KEY in n or API_KEY in repr(h) for h in active_hubs() for n in [h.name]
    )
    events = await asyncio.gather(*tasks)
    assert [e["status"] for e in events] == ["success", "success"]
    after = bloom_conn.requests()["by_key"]
    grew = {k for k, v in after.items() if v > before.get(k, 0)}
    assert len(grew) == 2  # each key sent its own long-poll
    assert active_hubs() == []


async def test_the_brand_trigger_waits_through_the_hub(bloom_conn):
    bloom_conn.configure(brand_ready_seconds=0.5)
    brand = BloomHook().create_brand(url="https://acme.example.com")
    trigger = BloomBrandTrigger(brand_id=brand["id"], deadline=time.time() + 30)
    seen: list[str] = []
    task = asyncio.ensure_future(event_of(trigger))
    await until(lambda: bool(active_hubs()), "the hub")
    seen.append(active_hubs()[0].name)
    event = await task
    assert event["status"] == "success"
    assert event["brand"]["status"] == "ready"
    assert seen and active_hubs() == []


async def test_the_event_is_held_until_not_before(bloom_conn):
    bloom_conn.configure(generation_seconds=0.1)
    ids = generate(1)
    await asyncio.sleep(0.3)
    started = time.time()
    event = await event_of(trigger_for(ids, not_before=started + 1.5))
    assert event["status"] == "success"
    assert time.time() - started >= 1.4


async def test_a_thousand_triggers_start_without_stalling_the_loop(bloom_conn, monkeypatch):
    """1,000 triggers start at once on one key: one connection lookup, one client, the loop stays live."""
    hub_conn(monkeypatch, bloom_conn, 60)
    bloom_conn.configure(generation_seconds=0.1)
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    lookups = 0
    original = BloomHook.aget_settings

    async def counting(self):
        nonlocal lookups
        lookups += 1
        return await original(self)

    monkeypatch.setattr(BloomHook, "aget_settings", counting)
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.ensure_future(heartbeat())
    tasks = [asyncio.ensure_future(event_of(trigger_for([i], seconds=3))) for i in ids]
    await until(
        lambda: bool(active_hubs()) and active_hubs()[0].users == 1000, "1,000 triggers in one hub", 20
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    done.set()
    await beat
    assert lookups == 1
    assert active_hubs() == []
    # Per-trigger blocking work (an SSL context each: ~25 ms x 1,000) would stall it for tens of seconds.
    # The bound is loose for a loaded 2-core machine (and Python's own GC pauses); the benchmark in
    # bench/bench_hub.py reports the real figure.
    assert max(gaps) < 3.0


async def test_hub_for_closes_the_client_when_the_last_user_leaves():
    settings = ClientSettings(base_url="http://127.0.0.1:9/api/v1", api_key=API_KEY)
    async with hub_for(settings) as one, hub_for(settings) as two:
        assert one is two and one.users == 2
        client = await one._get_client()
    assert active_hubs() == []
    assert client.http.is_closed
    assert API_KEY not in repr(one) and settings.fingerprint in one.name
