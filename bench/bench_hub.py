"""Benchmark: the triggerer's wait hub at 1, 100 and 1,000 Bloom triggers in one event loop.

Run: ``.venv/bin/python bench/bench_hub.py`` (about 5 minutes, loopback only). It starts the Bloom
emulator as a subprocess **enforcing Bloom's 120 requests per minute per key**, and for each scenario:

1. creates the images with the rate limit off (so that creating 1,000 images takes seconds; the
   limit is switched on, with a fresh window, before waiting starts). Each image finishes at a
   uniformly random time within the scenario's spread (the emulator's ``generation_jitter``);
2. runs N ``BloomImagesTrigger``s exactly as the triggerer does (``async for event in trigger.run()``),
   all in this one event loop, on the connection's defaults (``wait_requests_per_minute`` = 60);
3. halfway through, another process sends a generation POST on the same key (``max_retries=0``, so
   a 429 would show) and reports whether it was accepted on its first try.

Measured: ``images.list`` requests and how many the emulator answered 429; the floor
ceil(images / 50) (one answer per id, packed); the delay from each trigger's last image turning
terminal (the emulator's ``terminal_at``) to its event (p50, p95, max); the longest gap of a 5 ms
heartbeat coroutine (event-loop stall); and the RSS growth of this process while the triggers wait.

Writes ``bench/results/hub.json`` and prints a markdown table. Exits 1 if a target is missed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_sensor  # noqa: E402
from bench_sensor import count, free_port, start_emulator  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "hub.json"
API_KEY = "bloom_sk_bench_hub_0123456789abcdef"

#: (name, triggers, images per trigger (min, max), spread of finish times in s, repeats, p95 target s)
SCENARIOS: list[tuple[str, int, tuple[int, int], float, int, float]] = [
    ("N=1 (1-5 images)", 1, (1, 5), 5.0, 5, 0.1),
    ("N=100 (1 image, over 60 s)", 100, (1, 1), 60.0, 1, 5.0),
    ("N=100 (1-5 images, over 60 s)", 100, (1, 5), 60.0, 1, 5.0),
    ("N=1,000 (1 image, over 120 s)", 1000, (1, 1), 120.0, 1, 30.0),
]

SUBMIT_SCRIPT = """
import json, os, sys
from airflow_provider_bloom.hooks.bloom import BloomHook
sys.stdin.readline()  # the go signal: halfway through the wait
from airflow_provider_bloom.exceptions import BloomError
try:
    BloomHook().generate_images(prompt="submitted mid-wait", variant_count=1)
    print(json.dumps({"ok": True}))
except BloomError as exc:
    print(json.dumps({"ok": False, "error": str(exc)[:200]}))
"""


def set_environment(root_url: str) -> None:
    """bench_sensor's environment, with this benchmark's key and retries off (so a 429 would show)."""
    bench_sensor.set_environment(root_url)
    conn = json.loads(os.environ["AIRFLOW_CONN_BLOOM_DEFAULT"])
    conn["password"] = API_KEY
    conn["extra"]["max_retries"] = 0
    os.environ["AIRFLOW_CONN_BLOOM_DEFAULT"] = json.dumps(conn)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def run_scenario(emulator: Any, n: int, sizes: tuple[int, int], spread: float) -> dict[str, Any]:
    from airflow_provider_bloom.hooks.bloom import BloomHook
    from airflow_provider_bloom.triggers.connections import forget_connections
    from airflow_provider_bloom.triggers.images import BloomImagesTrigger

    forget_connections()
    # The other process starts first (forking it mid-wait would stall this loop) and waits for a signal.
    submitter = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SUBMIT_SCRIPT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    emulator.configure(rate_limit_per_minute=0, generation_seconds=1.0, generation_jitter=spread)
    hook = BloomHook()
    groups = []
    for k in range(n):
        groups.append(hook.generate_images(prompt=f"bench {k}", variant_count=random.randint(*sizes))["ids"])  # noqa: S311
    total = sum(len(g) for g in groups)
    emulator.configure(rate_limit_per_minute=120)  # a fresh window: waiting starts at 0 requests
    lists_before = count(emulator, "images.list")
    limited_before = emulator.requests()["by_operation_status"].get("images.list", {}).get("429", 0)

    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last - 0.005)
            last = now

    fired: dict[int, float] = {}

    async def one(k: int, ids: list[str]) -> dict[str, Any]:
        trigger = BloomImagesTrigger(image_ids=ids, deadline=time.time() + spread + 300)
        async for event in trigger.run():
            fired[k] = time.time()
            return event.payload
        raise AssertionError("no event")

    rss_before = rss_mb()
    peak = rss_before
    beat = asyncio.ensure_future(heartbeat())
    started = time.time()
    tasks = [asyncio.ensure_future(one(k, ids)) for k, ids in enumerate(groups)]
    go_at = time.monotonic() + min(30.0, spread / 2)
    signalled = False

    while not all(t.done() for t in tasks):
        peak = max(peak, rss_mb())
        if not signalled and time.monotonic() >= go_at:
            assert submitter.stdin is not None
            submitter.stdin.write(b"go\n")
            signalled = True
        await asyncio.sleep(0.1)
    if not signalled:
        assert submitter.stdin is not None
        submitter.stdin.write(b"go\n")
    events = [t.result() for t in tasks]
    stop.set()
    await beat
    out, _ = await submitter.communicate()  # the POST was sent mid-wait (or, for N=1, right after)
    submit = json.loads(out.decode().strip().splitlines()[-1])
    elapsed = time.time() - started

    records: dict[str, float] = {}
    all_ids = [i for g in groups for i in g]
    for start in range(0, len(all_ids), 200):
        for r in emulator.image_records(all_ids[start : start + 200]):
            records[r["id"]] = float(r["terminal_at"])
    delays = [fired[k] - max(records[i] for i in ids) for k, ids in enumerate(groups)]
    statuses = emulator.requests()["by_operation_status"].get("images.list", {})
    return {
        "triggers": n,
        "images": total,
        "ok": sum(e["status"] == "success" for e in events),
        "requests": count(emulator, "images.list") - lists_before,
        "answered_429": statuses.get("429", 0) - limited_before,
        "floor": math.ceil(total / 50),
        "delay_p50_s": round(statistics.median(delays), 3),
        "delay_p95_s": round(percentile(delays, 0.95), 3),
        "delay_max_s": round(max(delays), 3),
        "loop_stall_max_ms": round(max(gaps) * 1000, 1),
        "rss_growth_mb": round(peak - rss_before, 1),
        "submit_mid_wait_ok": bool(submit.get("ok")),
        "elapsed_s": round(elapsed, 1),
    }


def main() -> int:
    from airflow_provider_bloom.emulator import EmulatorClient

    random.seed(7)
    port = free_port()
    proc = start_emulator(port)
    root = f"http://127.0.0.1:{port}"
    set_environment(root)
    emulator = EmulatorClient(root)
    results: list[dict[str, Any]] = []
    missed: list[str] = []
    try:
        for _ in range(100):
            try:
                emulator.health()
                break
            except Exception:
                time.sleep(0.1)
        for name, n, sizes, spread, repeats, target in SCENARIOS:
            runs = [asyncio.run(run_scenario(emulator, n, sizes, spread)) for _ in range(repeats)]
            row = dict(runs[len(runs) // 2]) if repeats == 1 else _median_row(runs)
            row["scenario"], row["target_p95_s"], row["runs"] = name, target, repeats
            results.append(row)
            print(json.dumps(row), flush=True)
            if row["answered_429"] or row["delay_p95_s"] > target or not row["submit_mid_wait_ok"]:
                missed.append(name)
            if row["loop_stall_max_ms"] > 100 or row["rss_growth_mb"] > 50 or row["ok"] != n:
                missed.append(name)
    finally:
        proc.terminate()
        proc.wait(10)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(
        "| scenario | images | requests | floor | 429s | delay p50 / p95 / max | loop stall "
        "| RSS growth | POST mid-wait |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---|")
    for r in results:
        print(
            f"| {r['scenario']} | {r['images']:,} | {r['requests']:,} | {r['floor']} | {r['answered_429']} | "
            f"{r['delay_p50_s']:.2f} / {r['delay_p95_s']:.2f} / {r['delay_max_s']:.2f} s | "
            f"{r['loop_stall_max_ms']:.0f} ms | {r['rss_growth_mb']:.0f} MB | "
            f"{'accepted, first try' if r['submit_mid_wait_ok'] else 'REFUSED'} |"
        )
    if missed:
        print(f"\nmissed a target: {sorted(set(missed))}")
    return 1 if missed else 0


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key in (
        "requests",
        "delay_p50_s",
        "delay_p95_s",
        "delay_max_s",
        "loop_stall_max_ms",
        "rss_growth_mb",
        "elapsed_s",
    ):
        row[key] = statistics.median(r[key] for r in runs)
    row["answered_429"] = max(r["answered_429"] for r in runs)
    row["submit_mid_wait_ok"] = all(r["submit_mid_wait_ok"] for r in runs)
    row["ok"] = min(r["ok"] for r in runs)
    return row


if __name__ == "__main__":
    raise SystemExit(main())
