"""The wait hub, the request budget and the shared wait state machine.

The hub tests drive real ``BloomImagesTrigger``s in one event loop (as in one triggerer) against the
emulator over loopback; the budget and the state machine are I/O-free and run on a fake clock.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
import uuid

import pytest
from conftest import API_KEY, conn_json

from airflow_provider_bloom._budget import TokenBucket, credential_fingerprint, take_sync
from airflow_provider_bloom.client import ClientSettings
from airflow_provider_bloom.exceptions import BloomImagesMissingError, BloomRateLimitError, BloomServerError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers.brands import BloomBrandTrigger
from airflow_provider_bloom.triggers.hub import WaitHub, active_hubs, hub_for
from airflow_provider_bloom.triggers.images import BloomImagesTrigger
from airflow_provider_bloom.waiting import ImageWait, is_transient, transient_delay

OTHER_KEY = "bloom_sk_test_another_team_00000"


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


async def until(predicate, what: str, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- the hub, end to end


async def test_one_trigger_is_served_by_one_long_poll_as_before(bloom_conn):
    bloom_conn.configure(generation_seconds=0.5)
    ids = generate(3)
    before = bloom_conn.requests()["by_operation"].get("images.list", 0)
    event = await event_of(trigger_for(ids))
    assert event["status"] == "success"
    assert bloom_conn.requests()["by_operation"]["images.list"] - before == 1
    assert active_hubs() == []  # the last trigger left: the hub and its client are closed


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


# --------------------------------------------------------------------------- the budget (fake clock)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_its_burst_then_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    assert bucket.capacity == 6
    assert [bucket.try_take() for _ in range(6)] == [0.0] * 6
    assert bucket.try_take() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.try_take() == 0.0
    # In any 60 s: at most burst + rate requests.
    clock.now += 100
    sent = 0
    for _ in range(600):
        if bucket.try_take() == 0.0:
            sent += 1
        clock.now += 0.1
    assert sent <= 6 + 60


def test_a_429_pauses_once_then_halves_the_rate_for_a_minute():
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    assert bucket.penalize(retry_after=3.0) is True
    assert bucket.penalize(retry_after=3.0) is False  # answers to requests sent before the pause
    assert bucket.penalties == 1
    assert bucket.try_take() > 3.0
    clock.now += 3.0 + 2.0  # 2 s at half rate = 1 token
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == pytest.approx(2.0)
    clock.now += 120
    assert bucket.penalize() is True
    assert 2.5 <= bucket.paused_until - clock.now <= 5.0  # no Retry-After: a jittered few seconds


def test_bucket_refuses_nonsense():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            TokenBucket(bad)


def test_fingerprints_never_contain_the_secret_and_tell_credentials_apart():
    a = ClientSettings(api_key=API_KEY)
    b = ClientSettings(api_key=OTHER_KEY)
    oauth = ClientSettings(oauth_client_id="client", oauth_client_secret="s3cret-value")
    assert len({a.fingerprint, b.fingerprint, oauth.fingerprint}) == 3
    for settings, secret in ((a, API_KEY), (b, OTHER_KEY), (oauth, "s3cret-value")):
        assert secret not in settings.fingerprint and secret not in repr(settings)
    assert credential_fingerprint("x") == credential_fingerprint("x")


# --------------------------------------------------------------------------- the wait state machine


def test_image_wait_tracks_pending_ids_and_orders_records():
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    state = ImageWait([a, b, c, a])
    assert state.ids == [a, b, c] and state.batches() == [[a, b, c]]
    state.apply(
        [a, b, c],
        {
            "images": [
                {"id": a, "status": "completed"},
                {"id": b, "status": "generating"},
                {"id": c, "status": "failed"},
            ]
        },
    )
    assert state.pending == [b]
    assert [r["id"] for r in state.ordered()] == [a, b, c]
    assert state.event()["status"] == "timeout"
    state.apply(
        [b], {"images": [{"id": b, "status": "completed"}, {"id": "someone-else", "status": "completed"}]}
    )
    assert state.done
    assert state.event()["status"] == "failed"
    assert "1 of 3" in state.event()["message"]


def test_image_wait_names_ids_bloom_did_not_return():
    a, ghost = str(uuid.uuid4()), str(uuid.uuid4())
    state = ImageWait([a, ghost])
    with pytest.raises(BloomImagesMissingError) as err:
        state.apply([a, ghost], {"images": [{"id": a, "status": "completed"}]})
    assert err.value.missing == [ghost] and err.value.permanent
    assert state.pending == [ghost]


def test_image_wait_asks_in_chunks_of_fifty():
    ids = [str(uuid.uuid4()) for _ in range(120)]
    assert [len(b) for b in ImageWait(ids).batches()] == [50, 50, 20]


def test_transient_errors_and_their_backoff():
    limited = BloomRateLimitError(429, "TOO_MANY_REQUESTS", "slow down", retry_after=7.0)
    server = BloomServerError(503, None, "busy")
    assert is_transient(limited) and is_transient(server)
    assert not is_transient(BloomImagesMissingError(["x"]))
    assert transient_delay(limited, 1, 1.0, left=100) == 7.0
    assert transient_delay(limited, 1, 1.0, left=2) == 2.0  # never past the deadline
    delays = [transient_delay(server, n, 1.0, left=100) for n in range(1, 10)]
    assert all(0 <= d <= 30 for d in delays)
    assert delays[-1] >= 15  # grown to the 30 s cap (jitter keeps it within half of it)


def test_event_payloads_are_json_and_small():
    a = str(uuid.uuid4())
    state = ImageWait([a])
    state.apply(
        [a],
        {
            "images": [
                {
                    "id": a,
                    "status": "completed",
                    "imageUrl": "https://signed.example/x?sig=1",
                    "extra": "x" * 1000,
                }
            ]
        },
    )
    event = state.event()
    assert json.loads(json.dumps(event)) == event
    assert "extra" not in event["images"][0] and event["images"][0]["imageUrl"] is None


def test_a_task_that_deletes_many_images_is_paced_by_its_bucket(bloom_conn, monkeypatch):
    """DeleteImagesOperator over 200 ids (4 requests) with requests_per_minute=2 (burst 1): the first
    request goes at once, each later one waits for a token (~30 s, on a fake clock here)."""
    import airflow_provider_bloom.operators._base as base
    from airflow_provider_bloom.operators.image_tools import DeleteImagesOperator

    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, requests_per_minute=2))
    clock = FakeClock()
    bucket = TokenBucket(2, burst=1, clock=clock)
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(base, "sync_bucket", lambda url, fingerprint, per_minute: bucket)
    monkeypatch.setattr(base, "take_sync", functools.partial(take_sync, sleep=fake_sleep))
    ids = [str(uuid.uuid4()) for _ in range(200)]
    result = DeleteImagesOperator(task_id="cleanup", image_ids=ids).execute({})
    assert result == {"requested": 200, "deleted_count": 0}
    assert bloom_conn.requests()["by_operation"]["images.deleteMany"] == 4
    assert len(sleeps) == 3 and all(s == pytest.approx(30.0) for s in sleeps)
    assert bucket.sent == 4
