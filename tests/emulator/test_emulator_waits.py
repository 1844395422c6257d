"""Long-poll waits: early return, timeout, limits, batch waits, latency, no threads, shutdown."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import httpx

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID, EmulatorConfig
from airflow_provider_bloom.emulator.server import EmulatorServer

from ._helpers import data, error, generate


def test_wait_returns_as_soon_as_the_image_is_terminal(
    api: httpx.Client, bloom_emulator: EmulatorServer
) -> None:
    bloom_emulator.configure(generation_seconds=0.3)
    (image_id,) = generate(api)["ids"]
    started = time.monotonic()
    image = data(api.get(f"/images/{image_id}", params={"wait": "true", "timeout": 20}))
    elapsed = time.monotonic() - started
    assert image["status"] == "completed"
    assert 0.2 <= elapsed < 1.5
    (record,) = bloom_emulator.image_records([image_id])
    assert time.time() - record["terminal_at"] < 1.0


def test_rescheduled_images_end_soon_and_wake_held_long_polls(
    api: httpx.Client, bloom_emulator: EmulatorServer
) -> None:
    """The admin tool tests use to hold images running until their setup is done, then finish them."""
    bloom_emulator.configure(generation_seconds=600)
    ids = generate(api, variant_count=2)["ids"]
    done = generate(api)["ids"]
    result: dict[str, float] = {}

    def hold() -> None:
        started = time.monotonic()
        page = data(api.get("/images", params={"ids": ",".join(ids), "wait": "true", "timeout": 30}))
        assert {image["status"] for image in page["images"]} == {"completed"}
        result["held"] = time.monotonic() - started

    waiter = threading.Thread(target=hold)
    waiter.start()
    time.sleep(0.3)
    assert bloom_emulator.reschedule_images(0.5, ids=ids) == ids
    waiter.join(10)
    assert 0.3 <= result["held"] < 3.0
    assert bloom_emulator.image_records(done)[0]["status"] in ("pending", "generating")  # others untouched


def test_wait_timeout_answers_200_with_the_current_state(
    api: httpx.Client, bloom_emulator: EmulatorServer
) -> None:
    bloom_emulator.configure(generation_seconds=60)
    (image_id,) = generate(api)["ids"]
    started = time.monotonic()
    image = data(api.get(f"/images/{image_id}", params={"wait": "1", "timeout": 1}))
    assert 0.9 <= time.monotonic() - started < 2.0
    assert image["status"] in ("pending", "generating")
    # wait=false (default) answers at once
    started = time.monotonic()
    assert data(api.get(f"/images/{image_id}", params={"timeout": 200}))["status"] in (
        "pending",
        "generating",
    )
    assert time.monotonic() - started < 0.5


def test_wait_limits(api: httpx.Client) -> None:
    (image_id,) = generate(api)["ids"]
    for path in (f"/images/{image_id}", "/images", f"/brands/{DEFAULT_BRAND_ID}"):
        body = error(api.get(path, params={"wait": "true", "timeout": 296}), 400, "BAD_REQUEST")
        assert body["data"]["issues"][0]["path"] == ["timeout"]
        error(api.get(path, params={"wait": "true", "timeout": 0}), 400, "BAD_REQUEST")
        error(api.get(path, params={"wait": "maybe"}), 400, "BAD_REQUEST")
    assert (
        data(api.get(f"/images/{image_id}", params={"wait": "true", "timeout": 295}))["status"] == "completed"
    )


def test_batch_wait_holds_until_every_image_is_terminal(
    api: httpx.Client, bloom_emulator: EmulatorServer
) -> None:
    bloom_emulator.configure(generation_seconds=0.1, generation_jitter=0.4)
    ids = generate(api, variantCount=5)["ids"]
    images = data(api.get("/images", params={"ids": ",".join(ids), "wait": "true", "timeout": 10}))["images"]
    assert {i["status"] for i in images} == {"completed"} and len(images) == 5
    latest = max(r["terminal_at"] for r in bloom_emulator.image_records(ids))
    assert time.time() >= latest


def test_brand_wait(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(brand_ready_seconds=0.3)
    brand_id = data(api.post("/brands", json={"url": "https://waiting.example"}), 202)["id"]
    started = time.monotonic()
    assert data(api.get(f"/brands/{brand_id}", params={"wait": "true", "timeout": 1}))["status"] == "ready"
    assert 0.2 <= time.monotonic() - started < 1.0


def test_deleting_an_image_wakes_its_waiter(
    api: httpx.Client, bloom_emulator: EmulatorServer, bloom_api_key: str
) -> None:
    bloom_emulator.configure(generation_seconds=60)
    (image_id,) = generate(api)["ids"]
    result: dict[str, object] = {}

    def wait() -> None:
        with httpx.Client(
            base_url=bloom_emulator.base_url, headers={"x-api-key": bloom_api_key}, timeout=30
        ) as c:
            started = time.monotonic()
            response = c.get(f"/images/{image_id}", params={"wait": "true", "timeout": 30})
            result.update(status=response.status_code, elapsed=time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    data(api.delete(f"/images/{image_id}"))
    waiter.join(5)
    assert result["status"] == 404
    assert isinstance(result["elapsed"], float) and result["elapsed"] < 2


async def test_many_waits_share_the_loop_and_wake_fast(
    bloom_emulator: EmulatorServer, bloom_api_key: str
) -> None:
    """300 concurrent long-polls: no thread each, all woken by the image turning terminal (not by their
    30 s timeout). How fast is the benchmark's business (bench/bench_emulator.py), not this test's."""
    bloom_emulator.configure(generation_seconds=5.0)
    headers = {"x-api-key": bloom_api_key}
    # httpx scans its whole pool per request: shard the connections over several clients.
    clients = [
        httpx.AsyncClient(
            base_url=bloom_emulator.base_url,
            headers=headers,
            timeout=30,
            limits=httpx.Limits(max_connections=10),
        )
        for _ in range(30)
    ]
    try:
        response = await clients[0].post(
            "/images/generations", json={"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID}
        )
        (image_id,) = response.json()["data"]["ids"]
        threads_before = threading.active_count()

        async def wait_once(client: httpx.AsyncClient) -> float:
            r = await client.get(f"/images/{image_id}", params={"wait": "true", "timeout": 30})
            assert r.json()["data"]["status"] == "completed"
            return time.time()

        tasks = [asyncio.create_task(wait_once(clients[i % 30])) for i in range(300)]
        deadline = time.monotonic() + 4.0
        waiting = 0
        while waiting < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            waiting = bloom_emulator.health()["waiting"]  # its own connection, not a busy pool
        assert waiting == 300
        assert threading.active_count() <= threads_before + 2
        finished = await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()
    (record,) = bloom_emulator.image_records([image_id])
    latencies = sorted(t - record["terminal_at"] for t in finished)
    assert latencies[0] >= -0.01  # nobody answered before the image was terminal
    assert latencies[-1] < 10.0  # all woken by the image, long before their 30 s timeout


async def test_wake_latency_median_is_small(bloom_emulator: EmulatorServer, bloom_api_key: str) -> None:
    bloom_emulator.configure(generation_seconds=0.3, generation_jitter=0.3)
    headers = {"x-api-key": bloom_api_key}
    async with httpx.AsyncClient(base_url=bloom_emulator.base_url, headers=headers, timeout=30) as client:
        response = await client.post(
            "/images/generations", json={"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID, "variantCount": 5}
        )
        ids = response.json()["data"]["ids"]

        async def wait_once(image_id: str) -> tuple[str, float]:
            r = await client.get(f"/images/{image_id}", params={"wait": "true", "timeout": 30})
            assert r.json()["data"]["status"] == "completed"
            return image_id, time.time()

        finished = await asyncio.gather(*(wait_once(ids[i % 5]) for i in range(20)))
    terminal = {r["id"]: r["terminal_at"] for r in bloom_emulator.image_records(ids)}
    latencies = [at - terminal[image_id] for image_id, at in finished]
    assert min(latencies) >= -0.01
    assert statistics.median(latencies) < 5.0  # woken by the status change, not the 30 s timeout


def test_stop_answers_waits_in_flight_quickly(bloom_api_key: str) -> None:
    config = EmulatorConfig(generation_seconds=120, rate_limit_per_minute=None)
    server = EmulatorServer(config).start()
    headers = {"x-api-key": bloom_api_key}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as c:
        (image_id,) = data(
            c.post("/images/generations", json={"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID}), 202
        )["ids"]
    answers: list[int] = []

    def wait() -> None:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as c:
            answers.append(c.get(f"/images/{image_id}", params={"wait": "true", "timeout": 295}).status_code)

    waiters = [threading.Thread(target=wait) for _ in range(5)]
    for t in waiters:
        t.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    for t in waiters:
        t.join(5)
    assert answers == [200] * 5
